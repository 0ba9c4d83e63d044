"""What a plugin registers: samplers, schedules, guidance rules and checkpoints, with the metadata the harness relies
on."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any, Generic, Protocol, TypeVar

from torch import Tensor

from .denoiser import Checkpoint
from .errors import RegistrationError, SamplerzooError, UnknownNameError, UnreachableNFEError
from .schedules import HasSigmaRange
from .signatures import check_options, keyword_names

SamplerFn = Callable[..., Tensor]
"""``fn(denoiser, x, sigmas, *, noise=None, callback=None, **options) -> Tensor`` (k-diffusion's convention)."""


ScheduleFn = Callable[..., Tensor]
"""``schedule(n, model, **options) -> sigmas``: n decreasing levels followed by 0, float64 on the CPU."""

NAME = re.compile(r"^[a-z][a-z0-9_-]*$")
SAMPLER_ARGUMENTS = ("model", "x", "sigmas", "noise", "callback")
"""What the driver passes to every sampler function; the rest of its keyword parameters are its options."""
SCHEDULE_ARGUMENTS = ("n", "model")
"""What the driver passes to every schedule function; the rest of its keyword parameters are its options."""


def _check_name(kind: str, name: str, aliases: Iterable[str]) -> None:
    if not NAME.match(name):
        raise RegistrationError(f"{kind} name {name!r} must be lower-case letters, digits, '_' and '-'")
    for alias in aliases:
        if not alias or any(c.isspace() for c in alias):
            raise RegistrationError(f"{kind} {name!r} has a blank or spaced alias {alias!r}")


def steps_for_budget(name: str, nfe: int, per_step: int, offset: int = 0, cost: str = "", min_steps: int = 1) -> int:
    """The number of steps n >= min_steps with per_step * n + offset == nfe; else UnreachableNFEError naming the
    nearest reachable budgets. Serves the default cost and the ``steps_fn`` of option-dependent samplers."""
    n, rest = divmod(nfe - offset, per_step)
    if n >= min_steps and rest == 0:
        return n
    reachable = [per_step * m + offset for m in (n, n + 1) if m >= min_steps]
    raise UnreachableNFEError(f"sampler {name!r} spends {cost} evaluations, so NFE {nfe} is unreachable; "
                              f"nearest reachable: {', '.join(map(str, reachable))}")


@dataclass(frozen=True)
class SamplerSpec:
    """A sampler and what it costs.

    By default a step costs ``evals_per_step`` denoiser calls, except a step that lands on sigma = 0,
    which costs ``final_step_evals`` (Heun and DPM-Solver-2 take a plain Euler step there: N steps cost
    2N - 1). A sampler whose cost depends on its options declares ``nfe_fn(sigmas, **options)`` and its
    inverse ``steps_fn(nfe, to_zero, **options)`` and a readable ``cost_formula`` instead; an ``adaptive`` one
    chooses its own steps, so
    only its counted NFE is known. A ``brownian`` sampler asks for noise over overlapping intervals and
    needs it from one Brownian path per sample (:class:`samplerzoo.noise.BrownianTreeNoise`).
    """

    name: str
    fn: SamplerFn
    order: int
    stochastic: bool
    evals_per_step: int = 1
    final_step_evals: int | None = None
    aliases: tuple[str, ...] = ()
    paper: str = ""
    reference: str = ""
    plugin: str = ""
    nfe_fn: Callable[..., int] | None = None
    steps_fn: Callable[..., int] | None = None
    cost_formula: str = ""
    adaptive: bool = False
    brownian: bool = False
    needs_unconditional: bool = False
    """The sampler takes the unconditional prediction beside the guided one (CFG++): it runs only under
    classifier-free guidance (``guidance.py``) and refuses other models in one line before any work."""
    check: Callable[..., None] | None = None
    """``check(sample_shape, *, model, sigmas, **options)`` raises a SamplerzooError where the sampler cannot serve
    that model, its samples' shape and those levels with those options (a plugin's trained layer made for another
    model, amed's predictor fitted to other levels); ``generate()`` and ``zoo bench`` call it before any work with
    every option the run was given, the levels the sampler will get (None where the NFE is unreachable) and, from
    ``zoo bench``, ``compiled`` (``--compile``)."""
    global_order: int | None = None
    """The order at which the global error falls as steps grow, where it is below the nominal ``order`` of the
    method's steps; None when they agree. A multistep method that starts from one first-order step (it has no
    history yet) carries that step's O(h^2) local error into the result, so its global order is at most 2
    however high its later steps' order; fixed-coefficient Adams-Bashforth on a non-uniform grid and
    DPM-Solver++(3M)'s published second difference (half the Taylor weight) are second order too."""
    starts_at_infinity: bool = False
    """The sampler takes the step from sigma = inf itself (given x = the unit start noise, the state normalised by
    sigma): flow samplers published in flow time t, which start at t = 1. Otherwise ``generate()`` takes that step
    (one evaluation, in data-prediction form) and hands the sampler the rest of the schedule."""
    weak_order: int = 1
    """A stochastic sampler's weak order: the rate at which the law of its output approaches the target law as steps
    grow (Kloeden & Platen 1992, Sec. 14.1; 1 for Euler-Maruyama-type schemes). The conformance kit checks it on
    the exact law of a Gaussian target."""
    reverse_sde: bool = False
    """True when the stochastic sampler (at ``law_options``) discretises the reverse-time SDE, dx = -2 sigma score
    dsigma + sqrt(2 sigma) dW backwards in sigma (Anderson 1982; Song et al. 2021, Eq. 6): its output given its start
    then follows the forward process's posterior p(x_0 | x_T), which the kit checks, not only the marginal. False for
    samplers whose noise only preserves the marginals (EDM's churn, Restart, Langevin, eta < 1) and for ODE solvers."""
    analytic_first_step: bool = False
    """The sampler takes the option ``afs`` (AMED's analytical first step, diff-sampler's ``afs``): with afs=True its
    first evaluation is a closed form (``samplers.wrappers.AnalyticFirstStep``), so a run costs one call less and a
    budget buys one more step's worth (``nfe`` and ``steps_for_nfe`` count it)."""
    kit_options: Mapping[str, Any] = field(default_factory=dict)
    """Options under which the conformance kit (``testing``, ``conformance``, ``laws``) runs the sampler, where its
    defaults need something fitted to a real network: amed's predictor, replaced there by its fixed midpoint rule."""
    law_options: Mapping[str, Any] = field(default_factory=dict)
    """Options under which the law checks run, where the defaults deliberately miss the target law: EDM's S_noise > 1
    adds excess noise, Restart's default backward passes take a fixed number of steps whatever the schedule."""

    def __post_init__(self) -> None:
        _check_name("sampler", self.name, self.aliases)
        if not callable(self.fn):
            raise RegistrationError(f"sampler {self.name!r}: fn is not callable")
        final = self.final_evals
        if self.order < 1 or self.evals_per_step < 1 or not 0 < final <= self.evals_per_step:
            raise RegistrationError(
                f"sampler {self.name!r}: need order >= 1 and 1 <= final_step_evals <= evals_per_step, got "
                f"order={self.order}, evals_per_step={self.evals_per_step}, final_step_evals={final}")
        if (self.nfe_fn is None) != (self.steps_fn is None):
            raise RegistrationError(f"sampler {self.name!r}: declare both nfe_fn and steps_fn, or neither")
        if self.nfe_fn is not None and not self.cost_formula:
            raise RegistrationError(f"sampler {self.name!r}: an nfe_fn needs a cost_formula for users to read")
        if self.analytic_first_step and (self.nfe_fn is not None or self.adaptive):
            raise RegistrationError(f"sampler {self.name!r}: analytic_first_step needs the default per-step cost")

    def option_names(self) -> tuple[str, ...] | None:
        """The sampler's options (its function's keyword parameters); ``None`` when it takes any (``**options``)."""
        return keyword_names(self.fn, SAMPLER_ARGUMENTS)

    def check_options(self, options: Mapping[str, Any]) -> None:
        """Refuse an option the sampler does not take (naming the ones it does), or a value of the wrong type."""
        check_options(self.fn, options, f"sampler {self.name!r}", SAMPLER_ARGUMENTS)

    @property
    def convergence_order(self) -> int:
        """The slope of log global error against log steps that the conformance checks expect."""
        return self.order if self.global_order is None else self.global_order

    @property
    def final_evals(self) -> int:
        return self.evals_per_step if self.final_step_evals is None else self.final_step_evals

    @property
    def cost(self) -> str:
        """The NFE of N steps ending at sigma = 0, as a formula."""
        if self.adaptive:
            return "adaptive"
        if self.cost_formula:
            return self.cost_formula
        e, saved = self.evals_per_step, self.evals_per_step - self.final_evals
        steps = "steps" if e == 1 else f"{e}*steps"
        return steps if saved == 0 else f"{steps}-{saved}"

    def nfe(self, sigmas: Tensor, **options: Any) -> int | None:
        """Denoiser calls this sampler makes on ``sigmas`` (declared; the harness also counts them).

        ``None`` for an adaptive sampler, whose calls are only known once it has run.
        """
        if self.adaptive:
            return None
        if self.nfe_fn is not None:
            return self.nfe_fn(sigmas, **options)
        steps = len(sigmas) - 1
        saved = self.evals_per_step - self.final_evals if float(sigmas[-1]) == 0 else 0
        return self.evals_per_step * steps - saved - self.analytic_evals(options)

    def analytic_evals(self, options: Mapping[str, Any]) -> int:
        """1 when ``options`` turn on the analytical first step (``afs``), which answers one call without the model."""
        return int(self.analytic_first_step and bool(options.get("afs", False)))

    def steps_for_nfe(self, nfe: int, to_zero: bool = True, **options: Any) -> int:
        """Number of steps whose schedule (ending at 0 when ``to_zero``) costs exactly ``nfe`` calls."""
        if self.adaptive:
            raise UnreachableNFEError(
                f"sampler {self.name!r} is adaptive: it chooses its own steps from its error tolerances, "
                "so it cannot be held to an NFE budget; its counted NFE is reported instead")
        if self.steps_fn is not None:
            return self.steps_fn(nfe, to_zero, **options)
        # N steps cost evals_per_step * N, less what a final step onto sigma = 0 saves
        saved = (self.evals_per_step - self.final_evals if to_zero else 0) + self.analytic_evals(options)
        return steps_for_budget(self.name, nfe, self.evals_per_step, -saved,
                                f"{self.cost}-1 (afs)" if self.analytic_evals(options) else self.cost)


@dataclass(frozen=True)
class ScheduleSpec:
    """A sampling schedule; ``needs_table`` marks DDIM-style spacings over a discrete model's trained levels.

    A schedule that needs one value to be named (the model Align Your Steps was fitted for, a schedule file's path)
    declares ``argument``: it turns the text after ``NAME:`` (``ays:sdxl``, ``file:PATH``) into the options it sets,
    raising a one-line error for a bad value, and ``argument_help`` says what is accepted.
    """

    name: str
    fn: ScheduleFn
    description: str = ""
    aliases: tuple[str, ...] = ()
    needs_table: bool = False
    plugin: str = ""
    paper: str = ""
    reference: str = ""
    argument: Callable[[str], dict[str, Any]] | None = None
    argument_help: str = ""

    def __post_init__(self) -> None:
        _check_name("schedule", self.name, self.aliases)
        if not callable(self.fn):
            raise RegistrationError(f"schedule {self.name!r}: fn is not callable")

    def __call__(self, n: int, model: HasSigmaRange, **options: Any) -> Tensor:
        return self.fn(n, model, **options)

    def with_argument(self, text: str) -> ScheduleSpec:
        """This schedule with the options that ``NAME:text`` sets bound (validated now, before any work)."""
        if self.argument is None:
            raise SamplerzooError(f"schedule {self.name!r} takes no ':' argument (got {self.name}:{text})")
        return replace(self, fn=partial(self.fn, **self.argument(text)))

    def check_options(self, options: Mapping[str, Any]) -> None:
        """Refuse an option the schedule does not take (naming the ones it does), or a value of the wrong type."""
        check_options(self.fn, options, f"schedule {self.name!r}", SCHEDULE_ARGUMENTS)


@dataclass(frozen=True)
class GuidanceSpec:
    """A classifier-free guidance rule: ``build(**options)`` returns a fresh ``rule(cond, uncond, scale, sigma)``
    (samplerzoo.guidance_rules); ``space`` is where it acts unless asked otherwise (``denoised``, ``noise`` or
    ``prediction``). Every rule also takes the options ``space`` and ``rescale`` (Lin et al. 2024's phi)."""

    name: str
    build: Callable[..., Callable[..., Tensor]]
    description: str = ""
    space: str = "denoised"
    aliases: tuple[str, ...] = ()
    paper: str = ""
    reference: str = ""
    plugin: str = ""

    def __post_init__(self) -> None:
        _check_name("guidance", self.name, self.aliases)
        if not callable(self.build):
            raise RegistrationError(f"guidance {self.name!r}: build is not callable")

    def check_options(self, options: Mapping[str, Any]) -> None:
        """Refuse an option the rule does not take (naming the ones it does), or a value of the wrong type."""
        check_options(self.build, options, f"guidance {self.name!r}")


@dataclass(frozen=True)
class CheckpointSpec:
    """A named checkpoint: how to load it and what it is."""

    name: str
    load: Callable[[], Checkpoint]
    description: str = ""
    prediction: str = ""
    schedule: str = ""
    size: str = ""
    aliases: tuple[str, ...] = ()
    plugin: str = ""

    def __post_init__(self) -> None:
        if not NAME.match(self.name):
            raise RegistrationError(f"checkpoint name {self.name!r} must be lower-case letters, digits, '_' and '-'")
        if not callable(self.load):
            raise RegistrationError(f"checkpoint {self.name!r}: load is not callable")


class NamedSpec(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def aliases(self) -> tuple[str, ...]: ...

    @property
    def plugin(self) -> str: ...


Spec = TypeVar("Spec", bound=NamedSpec)


@dataclass
class Catalogue(Generic[Spec]):
    """Registered specs of one kind, looked up by name or alias (case-insensitive)."""

    kind: str
    specs: dict[str, Spec] = field(default_factory=dict)
    names: dict[str, str] = field(default_factory=dict)

    def add(self, spec: Spec) -> None:
        keys = [spec.name, *spec.aliases]
        for key in keys:
            owner = self.names.get(key.lower())
            if owner is not None:
                raise RegistrationError(
                    f"{self.kind} {spec.name!r} from {spec.plugin!r}: name {key!r} is already taken by "
                    f"{owner!r} from {self.specs[owner].plugin!r}")
        self.specs[spec.name] = spec
        self.names.update({key.lower(): spec.name for key in keys})

    def get(self, name: str) -> Spec:
        canonical = self.names.get(name.lower())
        if canonical is None:
            raise UnknownNameError(self.kind, name, self.specs)
        return self.specs[canonical]

    def as_dict(self) -> Mapping[str, Spec]:
        return dict(self.specs)

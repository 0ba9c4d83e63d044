"""A sweep's grid: the points (checkpoint, sampler, schedule, NFE and everything else a result depends on), each
identified by its JSON key in the results file, and all of them checked before any work."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

from ..checks import positive, unique
from ..errors import SamplerzooError, UnknownNameError
from ..guidance import check_guidance
from ..noise import NOISE_SOURCES
from ..plugins import get_sampler, get_schedule, guidance_method, schedule_name
from ..sampling import FINAL_STEPS
from .extractors import check_extractor
from .metrics import DIGITS_EXTRACTOR, ISC_SPLITS, METRICS, PRC_NEIGHBOURS
from .references import resolve

__all__ = ["KEY_DEFAULTS", "Point", "option_sets", "points"]

KEY_DEFAULTS: dict[str, Any] = {"extractor_weights": None, "schedule_options": {}, "reference_id": "", "labels": None,
                                "prompts": None, "distilled_guidance": None, "guidance": "cfg",
                                "guidance_options": {}}
"""Fields a point's key leaves out at these values, so results files written before the fields existed resume."""


@dataclass(frozen=True)
class Point:
    """One cell of a sweep; its JSON is the key that identifies a finished point in the results file."""

    checkpoint: str
    sampler: str
    schedule: str
    nfe: int
    samples: int
    seed: int
    final_step: str = "auto"
    metric_names: tuple[str, ...] = ("fid", "kid")
    extractor: str = DIGITS_EXTRACTOR
    reference: str = "digits-train"
    dtype: str = "float32"
    guidance_scale: float | None = None
    options: dict[str, Any] = field(default_factory=dict)
    noise: str = "counter"
    """generate()'s per-sample noise source (samplerzoo.noise.NOISE_SOURCES); rows without it were drawn by "torch"."""
    extractor_weights: str | None = None
    """The extractor's weights file as given (``None``: shipped, or torch-fidelity's download)."""
    schedule_options: dict[str, Any] = field(default_factory=dict)
    reference_id: str = ""
    """A folder's or npz's content hash (references.py): a changed reference is a different point."""
    labels: tuple[int, ...] | None = None
    """Class labels, sample with seed s taking labels[s % L]; None: a class-conditional model's seed % classes."""
    prompts: str | None = None
    """The identity (``PromptSet.identity``, a hash) of the sweep's prompts and negative prompts; None: no prompts."""
    distilled_guidance: float | None = None
    """The guidance scale a guidance-distilled network embeds (Flux dev; None: its default), not CFG."""
    guidance: str = "cfg"
    """How classifier-free guidance combines its two predictions: a registered rule (samplerzoo.guidance_rules)."""
    guidance_options: dict[str, Any] = field(default_factory=dict)

    def key(self) -> str:
        fields = {k: v for k, v in asdict(self).items() if k not in KEY_DEFAULTS or v != KEY_DEFAULTS[k]}
        return json.dumps(fields, sort_keys=True)


def option_sets(options: dict[str, Any] | list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    """One set of options, or a list of them (an axis of the sweep, like NFE)."""
    if options is None:
        return [{}]
    return [options] if isinstance(options, dict) else list(options) or [{}]


def points(checkpoint: str, samplers: list[str], schedules: list[str], nfes: list[int], samples: int, seed: int,
           **common: Any) -> Iterator[Point]:
    """The sweep's grid, checked before any work: names resolved (an alias, or a name given twice, runs once), NFE
    positive, the options taken by every sampler and schedule (with values of the types their signatures
    declare), the final step, noise source, metrics, extractor and reference known. ``options`` and
    ``schedule_options`` may be lists of option sets: sweep axes, like NFE."""
    sampler_names = unique("sampler", samplers, lambda name: get_sampler(name).name)
    schedule_names = unique("schedule", schedules, schedule_name)
    budgets = unique("NFE", [positive("NFE", nfe, "network evaluations") for nfe in nfes])
    sampler_sets, schedule_sets = option_sets(common.pop("options", None)), option_sets(
        common.pop("schedule_options", None))
    guidance_names = unique("guidance", common.pop("guidance", None) or ["cfg"],
                            lambda name: guidance_method(name).name)
    guidance_sets = option_sets(common.pop("guidance_options", None))
    guidances = [(name, options) for name in guidance_names for options in guidance_sets]
    for name, options in guidances:
        check_guidance(guidance_method(name, options), common.get("guidance_scale"))
    for name in sampler_names:
        for options in sampler_sets:
            get_sampler(name).check_options(options)
    for name in schedule_names:
        for options in schedule_sets:
            get_schedule(name).check_options(options)
    if common.get("final_step", "auto") not in FINAL_STEPS:
        raise UnknownNameError("final step", common["final_step"], FINAL_STEPS)
    if common.get("noise", "counter") not in NOISE_SOURCES:
        raise UnknownNameError("noise source", common["noise"], NOISE_SOURCES)
    for metric in common.get("metric_names", ()):
        if metric not in METRICS:
            raise UnknownNameError("metric", metric, METRICS)
    if "prc" in common.get("metric_names", ()) and samples <= PRC_NEIGHBOURS:
        raise SamplerzooError(f"--samples {samples}: prc (precision / recall, k = {PRC_NEIGHBOURS}) needs at least "
                              f"{PRC_NEIGHBOURS + 1} samples a point")
    if "isc" in common.get("metric_names", ()) and samples < ISC_SPLITS:
        raise SamplerzooError(f"--samples {samples}: isc (the Inception Score, over {ISC_SPLITS} splits) needs at "
                              f"least {ISC_SPLITS} samples a point")
    check_extractor(common.get("extractor", DIGITS_EXTRACTOR), common.get("extractor_weights"))
    reference = resolve(common.get("reference", "digits-train"))
    identity = reference.identity if reference.kind in ("folder", "npz") else ""
    for sampler in sampler_names:
        for options in sampler_sets:
            for schedule in schedule_names:
                for schedule_options in schedule_sets:
                    for nfe in budgets:
                        for guidance, guidance_options in guidances:
                            yield Point(checkpoint, sampler, schedule, nfe, samples, seed, options=options,
                                        schedule_options=schedule_options, reference_id=identity, guidance=guidance,
                                        guidance_options=guidance_options, **common)

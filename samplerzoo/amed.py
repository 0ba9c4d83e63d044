"""AMED-Solver's learned part: the predictor of each step's mean direction, the U-Net bottleneck it reads, and its
file (Zhou, Chen, Chen & Wang 2024, Fast ODE-based Sampling for Diffusion Models in Around 5 Steps, CVPR,
arXiv:2312.00094).

The predictor g maps the network's bottleneck features at (x_n, sigma_n) and the two levels sigma_n, sigma_{n+1} to
r_n in (0, 1) (the intermediate level s_n = sigma_{n+1}^r sigma_n^(1-r)), the direction scale c_n in
[1 - scale_dir, 1 + scale_dir] and the time scale a_n in [1 - scale_time, 1 + scale_time] (diff-sampler's
AMED_predictor: positional embeddings of both levels, a two-layer encoder of the channel-mean bottleneck, sigmoid
heads). :mod:`samplerzoo.samplers.amed` takes the step; :mod:`samplerzoo.amed_training` fits g to a teacher.

A predictor is fitted to one solver (amed or ipndm_amed), checkpoint, sample shape and schedule: its file records them
(and a fingerprint of the bottleneck's weights), and a run with another of them is refused before any work.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from .denoiser import Denoiser
from .errors import SamplerzooError, first_line
from .files import atomic_write

SHIPPED = Path(__file__).resolve().parent / "weights" / "amed"
"""The predictors samplerzoo ships (``zoo train-amed`` made them; the command is in each file)."""
MAX_POSITIONS = 10000
COMPILED = ("amed reads the network's bottleneck through a forward hook, which a torch.compile'd network does not run; "
            "accepted: amed without --compile")


@dataclass(frozen=True)
class PredictorInfo:
    """What a predictor was fitted to and how: stored in its file's metadata."""

    checkpoint: str
    sample_shape: tuple[int, ...]
    sigmas: tuple[float, ...]
    fingerprint: tuple[float, ...]
    bottleneck_dim: int
    hidden_dim: int = 128
    bottleneck_out: int = 4
    noise_channels: int = 8
    scale_dir: float = 0.01
    scale_time: float = 0.0
    afs: bool = False
    training: dict[str, Any] | None = None
    solver: str = "amed"
    """The sampler whose steps it was fitted to: amed (AMED-Solver) or ipndm_amed (AMED-Plugin on iPNDM)."""


def positional_embedding(sigma: Tensor, channels: int) -> Tensor:
    """[sin, cos] of sigma times frequencies MAX_POSITIONS^(-k / (channels / 2 - 1)), k = 0 .. channels / 2 - 1
    (NVlabs/edm's PositionalEmbedding with endpoint=True, its halves swapped, as diff-sampler's predictor uses it)."""
    half = channels // 2
    freqs = (1 / MAX_POSITIONS) ** (torch.arange(half, dtype=torch.float32, device=sigma.device) / (half - 1))
    angles = sigma.float().reshape(-1, 1) * freqs
    return torch.cat([angles.sin(), angles.cos()], dim=1)


def scaled_sigmoid(logit: Tensor, half_range: float) -> Tensor:
    """A factor in [1 - half_range, 1 + half_range]: 1 - half_range + 2 half_range sigmoid(logit)."""
    return 1 - half_range + 2 * half_range * torch.sigmoid(logit)


class AmedPredictor(nn.Module):
    """g(h, sigma_n, sigma_{n+1}) -> (r_n, c_n, a_n), one of each per sample (Zhou et al. 2024; diff-sampler's
    AMED_predictor)."""

    def __init__(self, info: PredictorInfo) -> None:
        super().__init__()
        self.info = info
        self.map_level = nn.Linear(info.noise_channels, info.noise_channels)
        self.encode = nn.Sequential(nn.Linear(info.bottleneck_dim, info.hidden_dim), nn.SiLU(),
                                    nn.Linear(info.hidden_dim, info.bottleneck_out))
        width = 2 * info.noise_channels + info.bottleneck_out
        self.head_r = nn.Linear(width, 1)
        self.head_dir = nn.Linear(width, 1) if info.scale_dir else None
        self.head_time = nn.Linear(width, 1) if info.scale_time else None

    def level_embedding(self, sigma: Tensor, rows: int, device: torch.device) -> Tensor:
        embedded = positional_embedding(sigma.to(device), self.info.noise_channels)
        return nn.functional.silu(self.map_level(embedded)).expand(rows, -1)

    def forward(self, features: Tensor, sigma: Tensor, sigma_next: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        rows = features.shape[0]
        out = torch.cat([self.encode(features.float()), self.level_embedding(sigma, rows, features.device),
                         self.level_embedding(sigma_next, rows, features.device)], dim=1)
        ones = out.new_ones(rows)
        r = torch.sigmoid(self.head_r(out))[:, 0]
        c = ones if self.head_dir is None else scaled_sigmoid(self.head_dir(out), self.info.scale_dir)[:, 0]
        a = ones if self.head_time is None else scaled_sigmoid(self.head_time(out), self.info.scale_time)[:, 0]
        return r, c, a


def bottleneck_module(model: Denoiser) -> nn.Module:
    """The module AMED reads: a U-Net's ``mid_block`` (diffusers' UNet2DModel, UNet2DConditionModel), else the middle
    block of a transformer's ``transformer_blocks`` (DiT, SD3, Flux); a one-line error for a model with neither."""
    network = getattr(model, "net", None)
    if hasattr(network, "_orig_mod"):
        raise SamplerzooError(COMPILED)
    if isinstance(network, nn.Module):
        for name, module in network.named_modules():
            if name.rsplit(".", 1)[-1] == "mid_block":
                return module
        for name, module in network.named_modules():
            if name.rsplit(".", 1)[-1] == "transformer_blocks" and isinstance(module, nn.ModuleList) and len(module):
                return module[len(module) // 2]
    raise SamplerzooError("amed reads the network's bottleneck (a U-Net's mid_block or a transformer's middle block), "
                          "and this model has neither; accepted: checkpoints with a UNet or transformer network")


def features_of(output: Any) -> Tensor:
    """The predictor's input from the bottleneck's output: the channel mean of a feature map [B, C, H, W] (as
    diff-sampler) or the token-wise mean of a transformer's [B, N, D] (the image tokens of a (text, image) pair)."""
    tensor = output[-1] if isinstance(output, tuple) else output
    return tensor.float().mean(dim=1 if tensor.ndim == 4 else -1).flatten(1)


class BottleneckTap:
    """Keeps the bottleneck features of the first network forward after each ``reset()``, its first ``rows`` rows
    (classifier-free guidance runs the conditional half first, which diff-sampler also reads)."""

    def __init__(self, rows: int) -> None:
        self.rows = rows
        self.seen: Tensor | None = None

    def reset(self) -> None:
        self.seen = None

    def __call__(self, module: nn.Module, inputs: Any, output: Any) -> None:
        if self.seen is None:
            self.seen = features_of(output)[: self.rows]

    def features(self, dim: int, device: torch.device, analytic: bool = False) -> Tensor:
        """The features seen; zeros for the analytical first step, where no forward ran (as in diff-sampler)."""
        if analytic:
            return torch.zeros(self.rows, dim, device=device)
        if self.seen is None:
            raise SamplerzooError("amed: the network ran without passing through its bottleneck module; accepted: a "
                                  "network whose forward runs its mid_block or transformer_blocks")
        return self.seen


@contextmanager
def tapped(model: Denoiser, rows: int) -> Iterator[BottleneckTap]:
    tap = BottleneckTap(rows)
    handle = bottleneck_module(model).register_forward_hook(tap)
    try:
        yield tap
    finally:
        handle.remove()


def fingerprint(model: Denoiser) -> tuple[float, ...]:
    """Per-parameter sums of the bottleneck's weights: tells one checkpoint's network from another of its shape."""
    with torch.no_grad():
        return tuple(float(p.double().sum()) for p in bottleneck_module(model).parameters())


def same_network(recorded: Sequence[float], measured: Sequence[float]) -> bool:
    """Equal within a cast to bfloat16 (1% of each sum, or of the largest where a sum is near zero)."""
    if len(recorded) != len(measured):
        return False
    scale = max((abs(v) for v in recorded), default=1.0)
    return all(math.isclose(a, b, rel_tol=1e-2, abs_tol=1e-4 * scale) for a, b in zip(recorded, measured, strict=True))


def save_predictor(path: Path, predictor: AmedPredictor) -> None:
    """Write the predictor (weights and info) as one safetensors file, all at once."""
    from safetensors.torch import save

    state = {k: v.detach().cpu().contiguous() for k, v in predictor.state_dict().items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, save(state, metadata={"amed": json.dumps(asdict(predictor.info))}))


@lru_cache(maxsize=16)
def _read(path: str, mtime: float) -> AmedPredictor:
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(path, framework="pt") as file:
            raw, state = (file.metadata() or {}).get("amed"), {k: file.get_tensor(k) for k in file.keys()}  # noqa: SIM118
    except (SafetensorError, OSError) as exc:
        raise SamplerzooError(f"predictor {path}: not a safetensors file ({exc})") from None
    if raw is None:
        raise SamplerzooError(f"predictor {path}: no AMED metadata; accepted: a file zoo train-amed wrote")
    try:
        fields = json.loads(raw)
        info = PredictorInfo(**{**fields, **{k: tuple(fields[k]) for k in ("sample_shape", "sigmas", "fingerprint")}})
        predictor = AmedPredictor(info)
        predictor.load_state_dict(state)
    except (ValueError, TypeError, KeyError, RuntimeError) as exc:
        raise SamplerzooError(f"predictor {path}: its AMED metadata or weights are malformed ({first_line(exc)}); "
                              "accepted: a file zoo train-amed wrote") from None
    return predictor.eval().requires_grad_(False)


def load_predictor(path: Path) -> AmedPredictor:
    if not path.is_file():
        raise SamplerzooError(f"predictor {path}: no such file; accepted: a file zoo train-amed wrote, or a shipped "
                              f"name ({', '.join(shipped_names()) or 'none shipped'})")
    return _read(str(path.resolve()), path.stat().st_mtime)


def predictor_name(checkpoint: str, solver: str, afs: bool, nfe: int) -> str:
    """``digits-nfe5``, ``digits-afs-nfe5``, ``digits-ipndm_amed-afs-nfe5``: how predictors are named (and shipped)."""
    return "-".join([checkpoint, *([solver] if solver != "amed" else []), *(["afs"] if afs else []), f"nfe{nfe}"])


def shipped_files() -> list[Path]:
    return sorted(SHIPPED.glob("*.safetensors"))


def shipped_names() -> list[str]:
    return [path.stem for path in shipped_files()]


def named_predictor(name: str | Path) -> AmedPredictor:
    """A shipped predictor by name (``digits-nfe5``) or a predictor file by path."""
    shipped = SHIPPED / f"{name}.safetensors"
    return load_predictor(shipped if shipped.is_file() and str(name) == shipped.stem else Path(name))


def mismatch(predictor: AmedPredictor, sample_shape: Sequence[int], sigmas: Tensor | None, afs: bool,
             prints: Sequence[float] | None, solver: str = "amed") -> str | None:
    """Why ``predictor`` cannot serve this run (another solver, another sample shape, other levels, the analytical
    first step on or off, another network), or None."""
    info = predictor.info
    if solver != info.solver:
        return f"it was fitted to {info.solver}'s steps, not {solver}'s"
    if tuple(sample_shape) != info.sample_shape:
        return f"it was fitted to samples of shape {info.sample_shape} ({info.checkpoint}), got {tuple(sample_shape)}"
    if sigmas is not None:
        given = sigmas.detach().double().cpu()
        if len(given) != len(info.sigmas) or not torch.allclose(given, torch.tensor(info.sigmas, dtype=torch.float64),
                                                                rtol=1e-5):
            return (f"it was fitted to the levels [{levels(info.sigmas)}] ({len(info.sigmas) - 1} steps), and this run "
                    f"takes [{levels(given.tolist())}] ({len(given) - 1} steps)")
    if afs != info.afs:
        return f"it was fitted with afs={str(info.afs).lower()}, and this run has afs={str(afs).lower()}"
    if prints is not None and not same_network(info.fingerprint, prints):
        return f"it was fitted to {info.checkpoint}'s network, and this model's bottleneck weights differ"
    return None


def levels(sigmas: Sequence[float]) -> str:
    return ", ".join(f"{s:.4g}" for s in sigmas)


def resolve_predictor(predictor: str | Path | AmedPredictor | None, model: Denoiser | None,
                      sample_shape: Sequence[int], sigmas: Tensor | None, afs: bool = False, solver: str = "amed"
                      ) -> AmedPredictor:
    """The predictor a run uses: the one given (a module, a shipped name or a file), else the shipped one fitted to
    this model, these levels and ``afs``; a one-line error when it cannot serve them (without ``model``, its network
    is not compared)."""
    prints = None if model is None else fingerprint(model)
    if predictor is None:
        found = next((p for p in map(load_predictor, shipped_files())
                      if mismatch(p, sample_shape, sigmas, afs, prints, solver) is None), None)
        if found is None:
            raise SamplerzooError(f"{solver}: no shipped predictor was fitted to this model and these levels (shipped: "
                                  f"{', '.join(shipped_names()) or 'none'}); fit one with zoo train-amed and pass "
                                  "predictor=PATH")
        return found
    chosen = predictor if isinstance(predictor, AmedPredictor) else named_predictor(predictor)
    reason = mismatch(chosen, sample_shape, sigmas, afs, prints, solver)
    if reason is not None:
        name = "" if isinstance(predictor, AmedPredictor) else f" {predictor}"
        raise SamplerzooError(f"{solver} predictor{name}: {reason}; fit one to this run with zoo train-amed")
    return chosen

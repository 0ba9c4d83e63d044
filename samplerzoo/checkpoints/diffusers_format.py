"""Local diffusers model directories: a pipeline (``model_index.json``, loaded by its family in ``families/``),
a bare UNet2DModel with its scheduler config, and the legacy root layout of google/ddpm-cifar10-32
(``GaussianDDPMScheduler``, ``timesteps``). The scheduler config names the noise schedule: DDPM-style betas
(``rescale_betas_zero_snr`` included), EDM, FlowMatch* (rectified flow) or SCM (TrigFlow)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from torch import Tensor, nn

from ..adapters import NetworkDenoiser, parameterization
from ..errors import CheckpointError, UnknownNameError
from ..files import read_json_object
from ..flow import FLOW_SCHEDULERS, TRIGFLOW_SCHEDULERS, flow_match_from_config, trigflow_from_config
from ..noise_schedules import EDM, ConsistencyEDM, DiscreteVP, NoiseSchedule, SigmaToT
from .betas import alphas_cumprod
from .weights import load_state_dict

WEIGHT_FILES = ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.bin")
EXTRA = "samplerzoo.json"
"""Optional file beside a diffusers model for what its configs cannot say: ``{"null_label": k}`` marks class
embedding k as the unconditional label a model was trained with (label dropout), for classifier-free guidance."""
EDM_SCHEDULERS = ("EDMEulerScheduler", "EDMDPMSolverMultistepScheduler")


def read_json(path: Path) -> dict[str, Any]:
    return read_json_object(path, str(path), CheckpointError)


class UNetNetwork(nn.Module):
    """A diffusers UNet2DModel as ``net(x_in, c_noise, class_labels=None)``; a learned-variance half
    (2C output channels for C input channels, Nichol & Dhariwal 2021) is dropped."""

    def __init__(self, unet: Any) -> None:
        super().__init__()
        self.unet: Any = unet
        self.channels = int(unet.config.in_channels)

    def forward(self, x: Tensor, c_noise: Tensor, class_labels: Tensor | None = None) -> Tensor:
        return self.unet(x, c_noise, class_labels=class_labels).sample[:, : self.channels]


def build_unet(directory: Path) -> UNetNetwork:
    from diffusers import UNet2DModel

    config_path = directory / "config.json"
    config = read_json(config_path)
    if config.get("_class_name", "UNet2DModel") != "UNet2DModel":
        raise CheckpointError(f"{config_path}: model class {config['_class_name']!r} is not supported; "
                              "supported: UNet2DModel")
    try:
        unet = UNet2DModel.from_config(config)
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"{config_path}: invalid UNet2DModel config ({exc})") from None
    weights = next((directory / f for f in WEIGHT_FILES if (directory / f).is_file()), None)
    if weights is None:
        raise CheckpointError(f"{directory}: no weights file; expected one of {', '.join(WEIGHT_FILES)}")
    load_state_dict(unet, weights)
    return UNetNetwork(unet.eval())


def noise_schedule(config: dict[str, Any], source: str, sigma_to_t: SigmaToT,
                   image_seq_len: int | None = None) -> tuple[NoiseSchedule, str]:
    """The noise schedule and parameterization a scheduler config describes (``image_seq_len`` sets a flow
    model's dynamic shift)."""
    if config.get("_class_name") in FLOW_SCHEDULERS or config.get("use_flow_sigmas"):
        if config.get("prediction_type", "flow_prediction") not in ("flow_prediction", "flow"):
            raise CheckpointError(f"{source}: a rectified-flow scheduler config needs prediction_type "
                                  f"flow_prediction, got {config['prediction_type']!r}")
        if config.get("use_flow_sigmas"):  # DPMSolver / UniPC configs of flow models (SANA, Wan): flow_shift
            config = {"num_train_timesteps": config.get("num_train_timesteps", 1000),
                      "shift": config.get("flow_shift", 1.0)}
        return flow_match_from_config(config, source, image_seq_len), "flow"
    if config.get("_class_name") in TRIGFLOW_SCHEDULERS:
        return trigflow_from_config(config, source), "trigflow"
    if config.get("_class_name") == "CMStochasticIterativeScheduler":  # consistency models (Song et al. 2023)
        return ConsistencyEDM(float(config.get("sigma_min", 0.002)), float(config.get("sigma_max", 80.0)),
                              float(config.get("sigma_data", 0.5))), "consistency"
    if config.get("_class_name") in EDM_SCHEDULERS:
        # diffusers' EDM schedulers call EDM's raw F "epsilon" (c_out = +sigma*sd/sqrt(sigma^2+sd^2)).
        prediction = {"epsilon": "edm", "v_prediction": "v"}.get(config.get("prediction_type", "epsilon"), "?")
        if prediction == "?":
            raise CheckpointError(f"{source}: unknown prediction_type {config['prediction_type']!r} for an EDM "
                                  "scheduler; known: epsilon, v_prediction")
        return EDM(float(config.get("sigma_min", 0.002)), float(config.get("sigma_max", 80.0)),
                   float(config.get("sigma_data", 0.5))), prediction
    try:
        prediction = parameterization(config.get("prediction_type", "epsilon"))
    except UnknownNameError:
        raise CheckpointError(f"{source}: unknown prediction_type {config['prediction_type']!r}; known: epsilon, "
                              "v_prediction, sample") from None
    if prediction == "flow":
        raise CheckpointError(f"{source}: prediction_type {config['prediction_type']!r} is a flow velocity; it needs "
                              f"a FlowMatch* scheduler ({', '.join(FLOW_SCHEDULERS)}) or use_flow_sigmas")
    return DiscreteVP(alphas_cumprod(config, source), sigma_to_t), prediction


def load_unet_denoiser(unet_dir: Path, scheduler_path: Path, sigma_to_t: SigmaToT = "log") -> NetworkDenoiser:
    """A pixel-space Denoiser from a UNet2DModel folder and its scheduler config."""
    scheduler = read_json(scheduler_path)
    network = build_unet(unet_dir)
    unet_config = network.unet.config
    # Under dynamic shifting mu follows the image sequence length: (H/2)(W/2), the 2x2-patch count of Flux and SD3.
    schedule, prediction = noise_schedule(scheduler, str(scheduler_path), sigma_to_t,
                                          (int(unet_config.sample_size) // 2) ** 2)
    embeddings = int(unet_config.num_class_embeds or 0)
    extra = read_json(unet_dir / EXTRA) if (unet_dir / EXTRA).is_file() else {}
    null_label = extra.get("null_label")
    if null_label is not None and not 0 <= int(null_label) < embeddings:
        raise CheckpointError(f"{unet_dir / EXTRA}: null_label {null_label} is not one of the model's {embeddings} "
                              "class embeddings")
    shape = (int(unet_config.in_channels), int(unet_config.sample_size), int(unet_config.sample_size))
    return NetworkDenoiser(network, prediction, schedule, sample_shape=shape,
                           num_classes=embeddings - (null_label is not None),
                           null_label=None if null_label is None else int(null_label))


def save_diffusers(denoiser: NetworkDenoiser, directory: Path, scheduler_config: dict[str, Any]) -> None:
    """Write a bare UNet2DModel directory (config.json, safetensors weights, scheduler_config.json)."""
    network = denoiser.net
    if not isinstance(network, UNetNetwork):
        raise CheckpointError(f"{directory}: only UNet2DModel denoisers can be saved in diffusers format")
    directory.mkdir(parents=True, exist_ok=True)
    network.unet.save_pretrained(directory, safe_serialization=True)
    (directory / "scheduler_config.json").write_text(json.dumps(scheduler_config, indent=2) + "\n")
    if denoiser.null_label is not None:
        (directory / EXTRA).write_text(json.dumps({"null_label": denoiser.null_label}) + "\n")

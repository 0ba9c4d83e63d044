"""``zoo stats``: the FID statistics (mu, sigma) of a reference, as an .npz that ``zoo bench --reference`` takes."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..errors import SamplerzooError
from .output import stdout


def stats(
    source: Annotated[str, typer.Argument(help="digits-train, digits-test, a torch-fidelity dataset (cifar10-train, "
                                               "...) or a folder of images.")],
    out: Annotated[Path, typer.Option("--out", "-o", help=".npz file to write (mu, sigma: NVlabs/edm's and "
                                                          "pytorch-fid's format).")],
    extractor: Annotated[str, typer.Option(help="Feature extractor (inception-v3-compat for the standard FID).")]
    = "digits-classifier",
    extractor_weights: Annotated[Path | None, typer.Option(help="The extractor's weights file instead of its "
                                                                "download.")] = None,
    device: Annotated[str, typer.Option(help="cpu or cuda.")] = "cpu",
) -> None:
    """Write the mean and covariance of SOURCE's features as an .npz (the same features cache zoo bench uses)."""
    if out.suffix.lower() != ".npz":
        raise SamplerzooError(f"-o {out}: accepted: an .npz file path")

    from ..bench.metrics import reference_statistics
    from ..files import check_writable

    check_writable(out, "-o")
    statistics, count = reference_statistics(source, out, extractor, str(extractor_weights) if extractor_weights
                                             else None, cuda=device.startswith("cuda"))
    stdout.print(f"wrote {out}: mu ({statistics.dims},), sigma ({statistics.dims}, {statistics.dims}) of {count} "
                 f"images of {source}, {extractor} features", highlight=False, soft_wrap=True)


def add_commands(app: typer.Typer) -> None:
    app.command("stats")(stats)

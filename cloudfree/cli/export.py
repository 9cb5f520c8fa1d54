"""``cloudfree export``: a trained model's network as ONNX or TorchScript, checked.

cloudfree export MODEL --format onnx|torchscript --out FILE [--tolerance 1e-4]

Reads a model file of the train rule (``model.pt``); writes FILE (under a temporary name,
moved into place only once checked): the network taking the tensors the predictor feeds it,
with a dynamic batch, number of dates and window size, and in its metadata what
``cloudfree predict FILE ...`` needs beside it (:mod:`cloudfree.models.export`).  The check
runs PyTorch and the exported file (onnxruntime, ``torch.jit.load``) on deterministic inputs
of two shapes and fails when their outputs differ by more than the tolerance.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from cloudfree.errors import CloudfreeError, ModelFileError
from cloudfree.extras import missing_extra
from cloudfree.io import atomic_path
from cloudfree.modelfile import read_model_file
from cloudfree.models.export import (
    FORMATS,
    check_export,
    export_metadata,
    export_onnx,
    export_torchscript,
)
from cloudfree.models.registry import is_trainable

try:
    import torch
except ImportError as exc:
    raise missing_extra("torch", "train") from exc

log = logging.getLogger("cloudfree.cli")
TOLERANCE = 1e-4  # max abs difference of the normalised outputs


def _parser(prog: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description=(__doc__ or "").split("\n")[0])
    p.add_argument("model", type=Path, help="model file of the train rule (model.pt)")
    p.add_argument("--format", choices=FORMATS, default="onnx", help="default %(default)s")
    p.add_argument("--out", type=Path, required=True, help="file to write (.onnx, .ts)")
    p.add_argument(
        "--tolerance", type=float, default=TOLERANCE,
        help="largest max abs difference to PyTorch accepted (default %(default)g)",
    )  # fmt: skip
    return p


def export_model(
    model_path: Path, out: Path, fmt: str, tolerance: float
) -> list[tuple[tuple[int, int, int, int], float]]:
    """Export and check; returns (shape, max abs difference) of each check."""
    if not tolerance >= 0:
        raise ModelFileError(f"--tolerance {tolerance}: must be a number >= 0")
    model, meta = read_model_file(model_path)
    if not is_trainable(model):
        raise ModelFileError(
            f"{model_path} is the baseline {meta['model']['name']!r}, not a network; "
            "cloudfree predict runs it as it is"
        )
    model.eval()
    metadata = export_metadata(meta, model, fmt)
    with atomic_path(out) as tmp:
        start = time.perf_counter()
        (export_onnx if fmt == "onnx" else export_torchscript)(model, tmp, metadata)
        log.info("exported %s as %s in %.1f s", model_path, fmt, time.perf_counter() - start)
        found = check_export(model, tmp, fmt, tolerance)
    for shape, diff in found:
        log.info("check (B, T, H, W) = %s: max abs difference %.3g", shape, diff)
    return found


def main(argv: Sequence[str] | None = None, prog: str = "cloudfree export") -> int:
    args = _parser(prog).parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("cloudfree").setLevel(logging.INFO)
    try:
        with torch.no_grad():
            export_model(args.model, args.out, args.format, args.tolerance)
    except CloudfreeError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 1
    log.info("wrote %s", args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())

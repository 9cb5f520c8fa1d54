"""A model file in the train.py format built directly (untrained weights), for inference tests."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

from cloudfree.bands import S2_L1C_BANDS
from cloudfree.modelfile import MODEL_FORMAT_VERSION
from cloudfree.models.registry import build_model


def write_model_file(
    path: str | Path,
    *,
    bands: Sequence[str] = S2_L1C_BANDS,
    widths: Sequence[int] = (8, 16),
    heads: int = 2,
    seed: int = 0,
    **extra: object,
) -> Path:
    """Save an untrained ``utilise`` network with plausible normalisation stats."""
    torch.manual_seed(seed)
    kwargs = {"in_channels": len(bands), "widths": list(widths), "heads": heads}
    model = build_model("utilise", **kwargs)
    blob = {
        "format_version": MODEL_FORMAT_VERSION,
        "model": {"name": "utilise", "kwargs": kwargs},
        "state_dict": model.state_dict(),
        "norm": {"mean": [0.15] * len(bands), "std": [0.08] * len(bands)},
        "bands": list(bands),
        "params": {"crop": 16, "amp": True},
        **extra,
    }
    torch.save(blob, path)
    return Path(path)

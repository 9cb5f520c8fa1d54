"""Model files for inference tests (untrained weights), and predictors with the schema's
``infer`` settings."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from cloudfree.bands import S2_L1C_BANDS
from cloudfree.config import section
from cloudfree.infer.predictor import Predictor, load_model
from cloudfree.modelfile import save_model_file
from cloudfree.models.registry import build_model


def write_model_file(
    path: str | Path,
    *,
    bands: Sequence[str] = S2_L1C_BANDS,
    widths: Sequence[int] = (8, 16),
    heads: int = 2,
    seed: int = 0,
    prior: str = "none",
) -> Path:
    """Save an untrained ``utilise`` network with plausible normalisation stats."""
    torch.manual_seed(seed)
    kwargs = {"in_channels": len(bands), "widths": list(widths), "heads": heads, "prior": prior}
    model = build_model("utilise", **kwargs)
    return save_model_file(
        path, name="utilise", kwargs=kwargs, state_dict=model.state_dict(),
        mean=[0.15] * len(bands), std=[0.08] * len(bands), bands=bands, regions=["synth"],
        params={"crop": 16, "amp": True},
    )  # fmt: skip


def infer_settings(**changes: Any) -> dict[str, Any]:
    """The ``infer`` section on the CPU, with ``changes``, the schema's defaults for the rest."""
    return section("infer", {"device": "cpu", **changes})


def load_predictor(path: str | Path, **changes: Any) -> Predictor:
    """:func:`load_model` with :func:`infer_settings`."""
    s = infer_settings(**changes)
    return load_model(
        path, s["device"], window=s["window"], overlap=s["overlap"], batch_size=s["batch_size"],
        amp=s["amp"],
    )  # fmt: skip

"""Fixtures shared by the training, inference and model tests: small packed files, tiny
training settings (resolved by the schema) and one model trained on them."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from cloudfree.config import section
from cloudfree.train.loop import train_model

from .packed import make_packed

# A few steps of a very small network: enough to train, checkpoint, resume and stop early.
TINY_TRAIN: dict[str, Any] = {
    "model": {"name": "utilise", "widths": [4, 8], "heads": 2},
    "steps": 12,
    "batch_size": 2,
    "crop": 8,
    "lr": 0.01,
    "warmup_steps": 2,
    "val_every": 6,
    "checkpoint_every": 4,
    "device": "cpu",
    "tensorboard": False,
}

# The training run whose model the loop, monitor and predictor tests look at: a network
# learning from scratch (no prior, no radiometric jitter), so its loss must fall.
TRAINED: dict[str, Any] = {
    "model": {"name": "utilise", "widths": [8, 16], "heads": 2, "prior": "none"},
    "augment": {"gain": 0.0, "offset": 0.0, "doy_shift": 0},
    "steps": 60,
    "crop": 16,
    "warmup_steps": 5,
    "val_every": 20,
    "checkpoint_every": 100,
    "tensorboard": True,
}


@pytest.fixture(scope="session")
def packed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Five 32 px tiles with six dates (three train, one val, one test)."""
    return make_packed(tmp_path_factory.mktemp("packed") / "r.h5", n_tiles=5, size=32, dates=6)


@pytest.fixture(scope="session")
def small_packed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Five 16 px tiles with four dates: the cheapest file training runs on."""
    return make_packed(tmp_path_factory.mktemp("small") / "r.h5", n_tiles=5, size=16, dates=4)


@pytest.fixture(scope="session")
def tiny_params() -> Callable[..., dict[str, Any]]:
    """``tiny_params(**changes)``: :data:`TINY_TRAIN` with ``changes``, as a resolved train
    section (the schema's defaults for the rest)."""

    def make(**changes: Any) -> dict[str, Any]:
        return section("train", {**TINY_TRAIN, **changes})

    return make


@pytest.fixture(scope="session")
def trained_params(tiny_params: Callable[..., dict[str, Any]]) -> dict[str, Any]:
    return tiny_params(**TRAINED)


@pytest.fixture(scope="session")
def trained(
    packed: Path, trained_params: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    """60 steps on :func:`packed`: the summary, the model file and the history CSV."""
    out = tmp_path_factory.mktemp("model")
    summary = train_model([packed], out / "model.pt", out / "history.csv", trained_params, 2)
    return {"summary": summary, "model": out / "model.pt", "history": out / "history.csv"}

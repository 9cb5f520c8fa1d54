"""The train section's parameters, resolved and checked."""

from __future__ import annotations

import copy
import logging
from collections.abc import Mapping
from typing import Any

from cloudfree.errors import ConfigError

log = logging.getLogger("cloudfree.train")


DEFAULT_PARAMS: dict[str, Any] = {
    "model": {"name": "utilise", "widths": [16, 32, 64], "heads": 4},
    "steps": 300,
    "batch_size": 4,
    "crop": 32,
    "lr": 0.003,
    "weight_decay": 0.01,
    "warmup_steps": 20,
    "grad_clip": 1.0,
    "masked_weight": 1.0,
    "observed_weight": 0.5,
    "val_every": 50,
    "seed": 0,
    "device": "auto",
    "amp": True,
    "num_workers": 0,
    "checkpoint_every": 100,
    "patience": 5,
    "min_delta": 0.0,
    "compile": False,
    "tensorboard": True,
    "sampling": {},  # TrainDataset keywords: seq_len, min_len, max_gap_days, date_classes, ...
}


def resolve_params(params: Mapping[str, Any]) -> dict[str, Any]:
    """Defaults filled in and types checked; errors name the key (``train.<key>``)."""
    out = copy.deepcopy(DEFAULT_PARAMS)
    for key, value in params.items():
        if key == "model":
            if not isinstance(value, Mapping):
                raise ConfigError(f"train.model must be a mapping, got {value!r}")
            out["model"].update(copy.deepcopy(dict(value)))
        else:
            if key not in DEFAULT_PARAMS:
                log.warning("train.%s: unknown parameter, ignored", key)
            out[key] = copy.deepcopy(value)
    ints = (
        "steps", "batch_size", "crop", "warmup_steps", "val_every", "seed",
        "checkpoint_every", "patience",
    )  # fmt: skip
    for key in ints:
        if isinstance(out[key], bool) or not isinstance(out[key], int):
            raise ConfigError(f"train.{key} must be an integer, got {out[key]!r}")
    workers = out["num_workers"]
    if workers != "auto" and (
        isinstance(workers, bool) or not isinstance(workers, int) or workers < 0
    ):
        raise ConfigError(f"train.num_workers must be an integer >= 0 or 'auto', got {workers!r}")
    floats = ("lr", "weight_decay", "grad_clip", "masked_weight", "observed_weight", "min_delta")
    for key in floats:
        if isinstance(out[key], bool) or not isinstance(out[key], (int, float)):
            raise ConfigError(f"train.{key} must be a number, got {out[key]!r}")
        out[key] = float(out[key])
    for key in ("steps", "batch_size", "crop", "val_every", "checkpoint_every"):
        if out[key] < 1:
            raise ConfigError(f"train.{key} must be >= 1, got {out[key]}")
    nonneg = (
        "warmup_steps", "weight_decay", "masked_weight", "observed_weight",
        "patience", "min_delta",
    )  # fmt: skip
    for key in nonneg:
        if out[key] < 0:
            raise ConfigError(f"train.{key} must be >= 0, got {out[key]}")
    if out["lr"] <= 0 or out["grad_clip"] <= 0:
        raise ConfigError("train.lr and train.grad_clip must be > 0")
    if out["masked_weight"] + out["observed_weight"] <= 0:
        raise ConfigError("train.masked_weight + train.observed_weight must be > 0")
    for key in ("amp", "compile", "tensorboard"):
        if not isinstance(out[key], bool):
            raise ConfigError(f"train.{key} must be true or false, got {out[key]!r}")
    if not isinstance(out["model"].get("name"), str):
        raise ConfigError("train.model.name must be a string")
    return out

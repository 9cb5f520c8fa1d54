"""Load a trained model file and reconstruct whole tiles with it.

A model file (written by :func:`cloudfree.train.loop.train_model`) is a ``torch.save`` of plain
tensors, lists, dicts and scalars, so it loads with ``torch.load(..., weights_only=True)``::

    {"format_version": 1, "model": {"name", "kwargs"}, "state_dict", "norm": {"mean", "std"},
     "bands", "params", "regions", "best_step", "val_mae_masked"}
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from cloudfree.packed import PackedMeta

MODEL_FORMAT_VERSION = 1


REQUIRED_KEYS = ("format_version", "model", "state_dict", "norm", "bands")


def _to_plain(value: Any) -> Any:
    """JSON-able copy (tuples -> lists, numpy scalars -> Python)."""
    if isinstance(value, Mapping):
        return {str(k): _to_plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_to_plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def _model_blob(
    name: str,
    kwargs: Mapping[str, Any],
    state: Mapping[str, torch.Tensor],
    mean: np.ndarray,
    std: np.ndarray,
    meta: PackedMeta,
    p: Mapping[str, Any],
    **extra: Any,
) -> dict[str, Any]:
    return {
        "format_version": MODEL_FORMAT_VERSION,
        "model": {"name": name, "kwargs": dict(kwargs)},
        "state_dict": dict(state),
        "norm": {"mean": [float(v) for v in mean], "std": [float(v) for v in std]},
        "bands": list(meta.bands),
        "params": _to_plain(p),
        "regions": list(meta.regions),
        **extra,
    }

"""The model file: what training writes and inference reads back.

A model file is a ``torch.save`` of plain tensors, lists, dicts and scalars, so it loads with
``torch.load(..., weights_only=True)`` (nothing in it can run code)::

    {"format_version": 2, "model": {"name", "kwargs"}, "state_dict", "norm": {"mean", "std"},
     "bands", "params", "regions", "best_step", "val_mae_masked", ...}

``model`` names a registered model (:mod:`cloudfree.models.registry`) and the keyword arguments
that build it; ``norm`` holds the per-band reflectance mean and std the inputs are normalised
with; ``bands`` the band names it was trained on; ``params`` the train section.  Training adds
``best_step``, ``val_mae_masked``, ``steps_done`` and, for trained networks, ``stopped_early``
and ``world_size``.  :func:`save_model_file` writes one atomically; :func:`read_model_file`
reads and checks it and builds the module.

A network trained with Sentinel-1 input has ``s1_channels`` 2 in its kwargs and
``params["inputs"]["s1"]`` true (``train.inputs.s1``); a file written before S1 input
existed has neither and reads as a model without it (``s1_channels`` 0, the returned
``params`` get ``inputs: {s1: false}``).

Both refuse (ModelFileError naming the file, and the tensor or band) weights with a NaN or
infinite value and a normalisation whose mean is not finite or whose std is not a positive
finite number: such a model would reconstruct every pixel as the same value.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from cloudfree.errors import CloudfreeError, ModelFileError
from cloudfree.extras import missing_extra
from cloudfree.io import atomic_path

try:
    import torch
    from torch import nn
except ImportError as exc:
    raise missing_extra("torch", "train") from exc

from cloudfree.models.registry import build_model

MODEL_FORMAT_VERSION = 2  # 2: networks name their prior (models of 1 must be trained again)
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


def value_problem(
    state_dict: Mapping[str, Any],
    mean: Sequence[float],
    std: Sequence[float],
    bands: Sequence[str],
) -> str | None:
    """What makes the weights or the normalisation unusable, naming the first offending
    tensor or band: a NaN or infinite floating-point weight, a mean that is not finite, a
    std that is not a positive finite number.  None when all are usable."""
    for key, value in state_dict.items():
        if isinstance(value, torch.Tensor) and value.is_floating_point():
            bad = int((~torch.isfinite(value.detach())).sum())
            if bad:
                return (
                    f"weight tensor {key!r} has {bad} non-finite (NaN or infinite) of "
                    f"{value.numel()} values"
                )
    names = list(bands) + [f"#{i}" for i in range(len(bands), max(len(mean), len(std)))]
    for what, values in (("mean", mean), ("std", std)):
        for band, v in zip(names, values, strict=False):
            v = float(v)
            if not np.isfinite(v):
                return f"normalisation {what} of band {band} is {v}"
            if what == "std" and v <= 0.0:
                return f"normalisation std of band {band} is {v}, not positive"
    return None


def save_model_file(
    path: str | os.PathLike[str],
    *,
    name: str,
    kwargs: Mapping[str, Any],
    state_dict: Mapping[str, torch.Tensor],
    mean: Sequence[float],
    std: Sequence[float],
    bands: Sequence[str],
    regions: Sequence[str],
    params: Mapping[str, Any],
    **extra: Any,
) -> Path:
    """Write a model file atomically; ``extra`` keys (``best_step``, ...) are stored as given.

    Raises ModelFileError naming ``path`` (and writes nothing) when the weights or the
    normalisation are not finite or a std is not positive (:func:`value_problem`).
    """
    problem = value_problem(state_dict, mean, std, bands)
    if problem:
        raise ModelFileError(f"not writing model file {path}: {problem}")
    blob = {
        "format_version": MODEL_FORMAT_VERSION,
        "model": {"name": name, "kwargs": _to_plain(kwargs)},
        "state_dict": dict(state_dict),
        "norm": {"mean": [float(v) for v in mean], "std": [float(v) for v in std]},
        "bands": list(bands),
        "params": _to_plain(params),
        "regions": list(regions),
        **extra,
    }
    with atomic_path(path) as tmp:
        torch.save(blob, tmp)
    return Path(path)


def read_model_file(
    path: str | os.PathLike[str], bands: Sequence[str] | None = None
) -> tuple[nn.Module, dict[str, Any]]:
    """The module a model file describes (its weights loaded, on the CPU) and the file's other
    keys (everything but ``state_dict``).

    Raises ModelFileError naming the file when it is missing, unreadable, of another
    ``format_version``, lacks keys, holds non-finite weights or normalisation or a std that
    is not positive (:func:`value_problem`), or (with ``bands``, the data's band names) was
    trained on other bands.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"model file {path} does not exist")
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # unpickling errors come in many types
        raise ModelFileError(f"cannot read model file {path}: {exc}") from exc
    if not isinstance(blob, dict):
        raise ModelFileError(f"model file {path}: expected a dict, got {type(blob).__name__}")
    missing = [k for k in REQUIRED_KEYS if k not in blob]
    if missing:
        raise ModelFileError(f"model file {path}: missing keys {missing}")
    if blob["format_version"] != MODEL_FORMAT_VERSION:
        raise ModelFileError(
            f"model file {path}: format_version {blob['format_version']!r}, "
            f"expected {MODEL_FORMAT_VERSION}; train the model again (rule train)"
        )
    if bands is not None and list(blob["bands"]) != list(bands):
        raise ModelFileError(
            f"model file {path} was trained on bands {list(blob['bands'])}, but the data has "
            f"bands {list(bands)}; retrain on these bands or use a matching model"
        )
    try:
        spec, norm = blob["model"], blob["norm"]
        mean, std = list(norm["mean"]), list(norm["std"])
        if len(mean) != len(blob["bands"]) or len(std) != len(blob["bands"]):
            raise ModelFileError(
                f"model file {path}: normalisation of {len(mean)} bands for bands {blob['bands']}"
            )
        if not isinstance(blob["state_dict"], Mapping):
            raise TypeError(f"state_dict is a {type(blob['state_dict']).__name__}, not a dict")
        problem = value_problem(blob["state_dict"], mean, std, blob["bands"])
        if problem:
            raise ModelFileError(
                f"model file {path}: {problem}; it cannot reconstruct anything: train the "
                "model again (rule train)"
            )
        model = build_model(spec["name"], **spec["kwargs"])
        model.load_state_dict(blob["state_dict"])
    except ModelFileError:
        raise
    except (CloudfreeError, KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise ModelFileError(f"model file {path}: {exc}") from exc
    meta = {k: v for k, v in blob.items() if k != "state_dict"}
    params = meta.get("params")
    if isinstance(params, Mapping) and "inputs" not in params:  # written before S1 input
        meta["params"] = {**params, "inputs": {"s1": False}}
    return model, meta

"""Predictors for a model file or its export (``cloudfree export``): ONNX run by onnxruntime,
TorchScript by ``torch.jit``.

An exported network is wrapped as a module with the networks' call signature
(``model(x, avail, doy, *, s1=None)``, :mod:`cloudfree.models.network`), so the same
:class:`~cloudfree.infer.predictor.Predictor` and sliding windows run it: the network call is
the only thing that differs.  Its normalisation, bands and size multiple come from the
metadata the export stored (:func:`cloudfree.models.export.export_metadata`), checked here
like a model file's (:func:`cloudfree.modelfile.value_problem`) before use.  Reads the file;
writes nothing.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from cloudfree.device import select_device
from cloudfree.errors import ConfigError, ModelFileError
from cloudfree.extras import import_optional
from cloudfree.infer.predictor import Predictor, load_model
from cloudfree.modelfile import value_problem
from cloudfree.models.export import (
    EXPORT_VERSION,
    load_torchscript,
    onnx_session,
    read_onnx_metadata,
)

ONNX_SUFFIXES = (".onnx",)
TORCHSCRIPT_SUFFIXES = (".ts", ".torchscript", ".jit")
MAX_MULTIPLE = 1 << 10


def model_format(path: str | os.PathLike[str]) -> str:
    """``onnx``, ``torchscript`` or ``model`` (a model file of the train rule), by suffix."""
    suffix = Path(path).suffix.lower()
    if suffix in ONNX_SUFFIXES:
        return "onnx"
    if suffix in TORCHSCRIPT_SUFFIXES:
        return "torchscript"
    return "model"


def checked_metadata(path: str | os.PathLike[str], meta: Mapping[str, Any]) -> dict[str, Any]:
    """An export's metadata after the checks a model file gets (ModelFileError naming it)."""
    if meta.get("export_version") != EXPORT_VERSION:
        raise ModelFileError(
            f"{path}: export_version {meta.get('export_version')!r}, expected "
            f"{EXPORT_VERSION}; export the model again (cloudfree export)"
        )
    try:
        bands = [str(b) for b in meta["bands"]]
        mean = [float(v) for v in meta["norm"]["mean"]]
        std = [float(v) for v in meta["norm"]["std"]]
        multiple, s1 = int(meta["multiple"]), int(meta["s1_channels"])
        max_dates = None if meta.get("max_dates") is None else int(meta["max_dates"])
        widths = [int(w) for w in meta["model"]["kwargs"].get("widths", [0])]
        model = {"name": str(meta["model"]["name"]), "kwargs": {"widths": widths}}
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ModelFileError(f"{path}: metadata lacks or mangles {exc}") from exc
    if not bands or len(mean) != len(bands) or len(std) != len(bands):
        raise ModelFileError(f"{path}: normalisation of {len(mean)} bands for bands {bands}")
    problem = value_problem({}, mean, std, bands)
    if problem:
        raise ModelFileError(f"{path}: {problem}")
    if not 1 <= multiple <= MAX_MULTIPLE or s1 < 0 or (max_dates is not None and max_dates < 1):
        raise ModelFileError(
            f"{path}: size multiple {multiple}, s1_channels {s1} or max_dates {max_dates} invalid"
        )
    norm = {"mean": mean, "std": std}
    return {**meta, "bands": bands, "norm": norm, "multiple": multiple, "s1_channels": s1,
            "max_dates": max_dates, "model": model}  # fmt: skip


class OnnxNetwork(nn.Module):
    """An ONNX export run by onnxruntime, called like the network it was made from."""

    def __init__(self, path: str | os.PathLike[str], providers: Sequence[str]) -> None:
        super().__init__()
        self.path = str(path)
        self.session = onnx_session(path, providers)
        self.meta = checked_metadata(path, read_onnx_metadata(path, self.session))
        self.names = [i.name for i in self.session.get_inputs()]
        self.multiple = self.meta["multiple"]
        self.s1_channels = self.meta["s1_channels"]
        self.in_channels = len(self.meta["bands"])
        self.max_dates = self.meta["max_dates"]

    def forward(
        self, x: torch.Tensor, avail: torch.Tensor, doy: torch.Tensor, *, s1: Any = None
    ) -> torch.Tensor:
        if self.max_dates is not None and x.shape[1] > self.max_dates:
            raise ModelFileError(
                f"{self.path} takes at most {self.max_dates} dates, got {x.shape[1]}"
            )
        tensors = [x.float(), avail.float(), doy.long()] + ([s1.float()] if s1 is not None else [])
        if len(tensors) != len(self.names):
            raise ModelFileError(f"{self.path} takes inputs {self.names}, got {len(tensors)}")
        feed = {n: t.detach().cpu().numpy() for n, t in zip(self.names, tensors, strict=True)}
        out = self.session.run(None, feed)[0]
        return torch.from_numpy(np.asarray(out, dtype=np.float32))


class TorchScriptNetwork(nn.Module):
    """A TorchScript export, called like the network it was made from."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        super().__init__()
        module, meta = load_torchscript(path)
        self.meta = checked_metadata(path, meta)
        self.module = module
        self.multiple = self.meta["multiple"]
        self.s1_channels = self.meta["s1_channels"]
        self.in_channels = len(self.meta["bands"])

    def forward(
        self, x: torch.Tensor, avail: torch.Tensor, doy: torch.Tensor, *, s1: Any = None
    ) -> torch.Tensor:
        inputs = [x, avail, doy] + ([s1] if s1 is not None else [])
        return self.module(*inputs)


def onnx_providers(device: str) -> list[str]:
    """onnxruntime's execution providers for an ``infer.device`` value: the CPU, or CUDA
    first when asked (``cuda``, ``cuda:N``, ``auto``) and onnxruntime has it."""
    available = import_optional("onnxruntime", "export").get_available_providers()
    if device.startswith("cuda") and "CUDAExecutionProvider" not in available:
        raise ConfigError(
            f"--device {device}: onnxruntime has no CUDAExecutionProvider (providers: "
            f"{', '.join(available)}); install onnxruntime-gpu, or use --device cpu"
        )
    if device.startswith("cuda") or (device == "auto" and "CUDAExecutionProvider" in available):
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    if device not in ("auto", "cpu"):
        raise ConfigError(f"--device {device}: an ONNX model runs on cpu or cuda")
    return ["CPUExecutionProvider"]


def load_predictor(
    path: str | os.PathLike[str],
    device: str,
    *,
    window: int,
    overlap: int,
    batch_size: int,
    amp: bool,
) -> Predictor:
    """A :class:`Predictor` for a model file, an ONNX or a TorchScript export
    (:func:`model_format`); ``device`` an ``infer.device`` value."""
    fmt = model_format(path)
    if fmt == "model":
        return load_model(
            path, device, window=window, overlap=overlap, batch_size=batch_size, amp=amp
        )
    if not Path(path).is_file():
        raise ModelFileError(f"model file {path} does not exist")
    network: OnnxNetwork | TorchScriptNetwork
    if fmt == "onnx":
        network, dev = OnnxNetwork(path, onnx_providers(device)), torch.device("cpu")
    else:
        network, dev = TorchScriptNetwork(path), select_device(device, "--device")
    meta = network.meta
    return Predictor(
        network, mean=meta["norm"]["mean"], std=meta["norm"]["std"], bands=meta["bands"],
        device=dev, meta=meta, window=window, overlap=overlap, batch_size=batch_size,
        amp=amp and fmt != "onnx",
    )  # fmt: skip

"""A trained network exported to ONNX or TorchScript, checked against PyTorch.

The exported graph is the network alone, taking exactly the tensors the predictor gives it
(:func:`cloudfree.infer.predictor.run_products`) for a batch of windows::

    x     (B, T, C, H, W) float32  normalised reflectance, 0 where not available
    avail (B, T, H, W)    float32  1 where the pixel is observed and clear
    doy   (B, T)          int64    day of year of each date
    s1    (B, T, 3, H, W) float32  scaled Sentinel-1 and its availability (only a network
                                   trained with it)
    ->  pred (B, T, C, H, W) float32  normalised reconstruction

with B, T, H and W dynamic (H and W multiples of the network's ``multiple``; T at most
:data:`~cloudfree.models.onnx_ops.MAX_SCAN_LENGTH` for ONNX).  What the predictor does
around it (normalisation, sliding windows, padding) needs the model file's metadata, stored
in the exported file as JSON (:func:`export_metadata`): ONNX ``metadata_props`` key
:data:`METADATA_KEY`, TorchScript extra file :data:`EXTRA_FILE`.

ONNX uses the dynamo exporter (``torch.onnx.export(..., dynamo=True)``, onnxscript) with
translations of the operators ONNX lacks (:mod:`cloudfree.models.onnx_ops`); TorchScript a
trace.  While exporting, the skip mixing runs as one batched product instead of chunks of
query dates (``cloudfree.models.network.ONE_PRODUCT``, the same values): a chunk count that
depends on the input's size would fix the number of dates of the exported graph.

:func:`check_export` runs PyTorch and the exported file (onnxruntime, ``torch.jit.load``) on
deterministic inputs of two shapes and raises ModelFileError when they differ by more than
the tolerance.  onnx, onnxscript and onnxruntime are the ``export`` extra, imported on use.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import warnings
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any
from unittest import mock

import numpy as np

from cloudfree.errors import ModelFileError
from cloudfree.extras import import_optional, missing_extra
from cloudfree.models import network
from cloudfree.models.onnx_ops import MAX_SCAN_LENGTH, translation_table

try:
    import torch
    from torch import nn
except ImportError as exc:
    raise missing_extra("torch", "train") from exc

FORMATS = ("onnx", "torchscript")
EXPORT_VERSION = 1
METADATA_KEY = "cloudfree"
EXTRA_FILE = "cloudfree.json"
INPUTS = ("x", "avail", "doy")
OPSET = 18


class ExportedNetwork(nn.Module):
    """The network's call with positional tensors only (the exporters' calling form)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.with_s1 = bool(getattr(model, "s1_channels", 0))

    def forward(
        self,
        x: torch.Tensor,
        avail: torch.Tensor,
        doy: torch.Tensor,
        s1: torch.Tensor | None = None,
    ) -> torch.Tensor:
        if self.with_s1:
            return self.model(x, avail, doy, s1=s1)
        return self.model(x, avail, doy)


@contextlib.contextmanager
def exporting() -> Iterator[None]:
    """The networks' skip mixing in one product (``network.ONE_PRODUCT``) while the block
    runs."""
    with mock.patch.object(network, "ONE_PRODUCT", True):
        yield


def input_names(model: nn.Module) -> list[str]:
    """The exported graph's inputs, in order."""
    return [*INPUTS, "s1"] if getattr(model, "s1_channels", 0) else list(INPUTS)


def sample_shapes(multiple: int) -> list[tuple[int, int, int, int]]:
    """Two (B, T, H, W) shapes of the check: a square window and a wider, shorter batch."""
    return [(1, 6, 8 * multiple, 8 * multiple), (2, 4, 4 * multiple, 6 * multiple)]


def sample_inputs(model: nn.Module, shape: tuple[int, int, int, int], seed: int) -> list:
    """Deterministic network inputs of (B, T, H, W) ``shape`` for the model's bands."""
    b, t, h, w = shape
    channels = int(model.in_channels)
    g = torch.Generator().manual_seed(seed)
    avail = (torch.rand(b, t, h, w, generator=g) > 0.3).float()
    x = torch.randn(b, t, channels, h, w, generator=g) * avail[:, :, None]
    doy = torch.sort(torch.randint(1, 366, (b, t), generator=g), dim=1).values
    out = [x, avail, doy]
    if getattr(model, "s1_channels", 0):
        radar = torch.rand(b, t, int(model.s1_channels) + 1, h, w, generator=g)
        radar[:, :, -1] = (radar[:, :, -1] > 0.2).float()
        out.append(radar)
    return out


def export_metadata(meta: Mapping[str, Any], model: nn.Module, fmt: str) -> dict[str, Any]:
    """What a predictor needs beside the graph of format ``fmt``, from a model file's keys
    (``meta``)."""
    return {
        "export_version": EXPORT_VERSION,
        "model": dict(meta["model"]),
        "norm": {"mean": list(meta["norm"]["mean"]), "std": list(meta["norm"]["std"])},
        "bands": list(meta["bands"]),
        "multiple": int(getattr(model, "multiple", 1)),
        "s1_channels": int(getattr(model, "s1_channels", 0)),
        "inputs": input_names(model),
        "outputs": ["pred"],
        "doy": "day of year of each date (1..366), int64 (B, T)",
        "format": fmt,
        "max_dates": MAX_SCAN_LENGTH if fmt == "onnx" else None,
        "regions": list(meta.get("regions", [])),
        "params": meta.get("params", {}),
    }


def _dynamic_shapes(model: nn.Module) -> dict[str, dict[int, Any]]:
    multiple = int(getattr(model, "multiple", 1))
    dim = torch.export.Dim
    b, t, h, w = dim("batch"), dim("dates"), dim("height"), dim("width")
    hh, ww = (h, w) if multiple == 1 else (multiple * h, multiple * w)
    shapes = {
        "x": {0: b, 1: t, 3: hh, 4: ww},
        "avail": {0: b, 1: t, 2: hh, 3: ww},
        "doy": {0: b, 1: t},
    }
    if getattr(model, "s1_channels", 0):
        shapes["s1"] = {0: b, 1: t, 3: hh, 4: ww}
    return shapes


def export_onnx(model: nn.Module, path: Path, metadata: Mapping[str, Any]) -> None:
    """Write ``model`` as an ONNX file at ``path`` (not atomic: give a temporary name)."""
    onnx = import_optional("onnx", "export")
    import_optional("onnxscript", "export")  # the exporter needs it: fail before the work
    wrapped = ExportedNetwork(model).eval()
    # a batch and dates of at least 2: the exporter fixes a size of 1 as a constant
    sample = sample_inputs(model, sample_shapes(int(getattr(model, "multiple", 1)))[1], 0)
    names = input_names(model)
    try:
        with exporting(), torch.no_grad(), _quiet_onnx():
            program = torch.onnx.export(
                wrapped, tuple(sample), dynamo=True, dynamic_shapes=_dynamic_shapes(model),
                input_names=names, output_names=["pred"], opset_version=OPSET,
                custom_translation_table=translation_table(), verbose=False,
            )  # fmt: skip
    except Exception as exc:  # the exporter raises many types; its summary is the message
        summary = str(exc).split("## Exception summary")[-1].strip()
        raise ModelFileError(f"cannot export the network to ONNX ({path}): {summary}") from exc
    if program is None:
        raise ModelFileError(f"the ONNX exporter returned no program for {path}")
    program.save(str(path))
    proto = onnx.load(str(path))
    entry = proto.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, json.dumps(metadata)
    onnx.save(proto, str(path))


def export_torchscript(model: nn.Module, path: Path, metadata: Mapping[str, Any]) -> None:
    """Write ``model`` as a traced TorchScript file at ``path`` (give a temporary name)."""
    wrapped = ExportedNetwork(model).eval()
    sample = sample_inputs(model, sample_shapes(int(getattr(model, "multiple", 1)))[0], 0)
    with exporting(), torch.no_grad(), _quiet_trace():
        traced = torch.jit.trace(wrapped, tuple(sample), check_trace=False)
        torch.jit.save(traced, str(path), _extra_files={EXTRA_FILE: json.dumps(metadata)})


@contextlib.contextmanager
def _quiet_onnx() -> Iterator[None]:
    """The exporter logs packages it skips (torchvision's operators) and warns of its
    internals (axis names it merges); the check afterwards is what counts."""
    registry = logging.getLogger("torch.onnx._internal.exporter._registration")
    level = registry.level
    registry.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=UserWarning, message=".*axis name")
            warnings.filterwarnings("ignore", category=FutureWarning, message=".*LeafSpec")
            yield
    finally:
        registry.setLevel(level)


@contextlib.contextmanager
def _quiet_trace() -> Iterator[None]:
    """Tracing warns of the shape checks it fixes (they hold for every padded window)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        warnings.filterwarnings("ignore", message=r".*torch\.jit\.\w+` is deprecated")
        yield


def onnx_session(path: str | os.PathLike[str], providers: Sequence[str]) -> Any:
    """An onnxruntime session of an ONNX file (ModelFileError naming it when it fails)."""
    onnxruntime = import_optional("onnxruntime", "export")
    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3
    try:
        return onnxruntime.InferenceSession(str(path), options, providers=list(providers))
    except Exception as exc:  # onnxruntime raises its own exception types
        raise ModelFileError(f"onnxruntime cannot load {path}: {exc}") from exc


def run_exported(
    path: Path, fmt: str, inputs: Sequence[torch.Tensor], session: Any = None
) -> np.ndarray:
    """The exported file's output on ``inputs``."""
    if fmt == "onnx":
        session = session or onnx_session(path, ["CPUExecutionProvider"])
        names = [i.name for i in session.get_inputs()]
        return session.run(None, {n: t.numpy() for n, t in zip(names, inputs, strict=True)})[0]
    with _quiet_trace():
        loaded = torch.jit.load(str(path), map_location="cpu")
    with torch.no_grad():
        return loaded(*inputs).numpy()


def check_export(
    model: nn.Module, path: Path, fmt: str, tolerance: float
) -> list[tuple[tuple[int, int, int, int], float]]:
    """(shape, max abs difference) of PyTorch and the exported file at the
    :func:`sample_shapes`; ModelFileError naming the file, shape and difference when one
    exceeds ``tolerance`` or is not finite."""
    model = model.eval()
    session = onnx_session(path, ["CPUExecutionProvider"]) if fmt == "onnx" else None
    wrapped = ExportedNetwork(model).eval()
    found = []
    for k, shape in enumerate(sample_shapes(int(getattr(model, "multiple", 1)))):
        inputs = sample_inputs(model, shape, seed=k + 1)
        with torch.no_grad():
            want = wrapped(*inputs).numpy()
        try:
            got = run_exported(path, fmt, inputs, session)
        except ModelFileError:
            raise
        except Exception as exc:  # the runtimes raise their own exception types
            raise ModelFileError(
                f"{path}: the exported model fails on shape {shape}: {exc}"
            ) from exc
        if got.shape != want.shape:
            raise ModelFileError(
                f"{path}: exported output of shape {got.shape} on inputs (B, T, H, W) = "
                f"{shape}, PyTorch {want.shape}"
            )
        diff = float(np.max(np.abs(got.astype(np.float64) - want)))
        if not diff <= tolerance:
            raise ModelFileError(
                f"{path}: the exported {fmt} model differs from PyTorch by {diff:.3g} (max abs) "
                f"on inputs (B, T, H, W) = {shape}, above the tolerance {tolerance:g}"
            )
        found.append((shape, diff))
    return found


def read_onnx_metadata(path: str | os.PathLike[str], session: Any) -> dict[str, Any]:
    """The :data:`METADATA_KEY` JSON of an ONNX session's model (unchecked)."""
    props = session.get_modelmeta().custom_metadata_map
    if METADATA_KEY not in props:
        raise ModelFileError(
            f"{path}: no {METADATA_KEY!r} metadata: not exported by cloudfree export"
        )
    return _json(path, props[METADATA_KEY])


def load_torchscript(path: str | os.PathLike[str]) -> tuple[torch.jit.ScriptModule, dict]:
    """A TorchScript export and its :data:`EXTRA_FILE` JSON (unchecked)."""
    extra = {EXTRA_FILE: ""}
    try:
        with _quiet_trace():
            module = torch.jit.load(str(path), map_location="cpu", _extra_files=extra)
    except Exception as exc:  # torch.jit raises RuntimeError and others
        raise ModelFileError(f"cannot load TorchScript file {path}: {exc}") from exc
    if not extra[EXTRA_FILE]:
        raise ModelFileError(f"{path}: no {EXTRA_FILE}: not exported by cloudfree export")
    return module, _json(path, extra[EXTRA_FILE])


def _json(path: str | os.PathLike[str], text: str | bytes) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise ModelFileError(f"{path}: metadata is not JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise ModelFileError(f"{path}: metadata is a {type(value).__name__}, not an object")
    return value

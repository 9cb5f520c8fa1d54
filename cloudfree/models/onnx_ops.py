"""ONNX translations of the PyTorch operators the networks use that ONNX lacks.

The temporal prior (:mod:`cloudfree.models.prior`) takes cumulative maxima and minima over
the dates (``torch.cummax``/``torch.cummin``) and a median ignoring NaN
(``torch.nanmedian``); ONNX has none of them.  :func:`translation_table` maps them to
functions built from ONNX operators, for ``torch.onnx.export(..., dynamo=True,
custom_translation_table=...)``:

- cumulative max/min: a parallel prefix scan (Hillis-Steele) of :data:`SCAN_STEPS` doubling
  steps, each a shift along the axis (edge padding: the first element is in every prefix)
  and an element-wise max/min; exact for axes of up to ``2 ** SCAN_STEPS`` elements (the
  number of dates, :data:`MAX_SCAN_LENGTH`), with the index of the last occurrence of the
  extremum as torch gives it;
- ``nanmedian`` along an axis: NaN replaced by +inf, sorted (TopK), the element at
  ``(n - 1) // 2`` of the ``n`` values that are not NaN (the lower median, as torch), NaN
  where all are.

onnxscript (the ``export`` extra) is imported when a translation is first built.  Reads and
writes nothing.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from cloudfree.extras import import_optional, missing_extra

try:
    import torch
except ImportError as exc:
    raise missing_extra("torch", "train") from exc

SCAN_STEPS = 10
MAX_SCAN_LENGTH = 1 << SCAN_STEPS  # dates an exported network takes at most


def opset() -> Any:
    """onnxscript's ONNX opset 18 (the export extra)."""
    return import_optional("onnxscript", "export").opset18


def _int64() -> Any:
    return import_optional("onnxscript", "export").ir.DataType.INT64


def _positions(op: Any, x: Any, dim: int) -> tuple[Any, Any]:
    """The index along ``dim`` of every element of ``x``, and the axis length (1-D)."""
    rank = len(x.shape)
    length = op.Shape(x, start=dim, end=dim + 1)
    index = op.Range(op.Constant(value_int=0), op.Squeeze(length), op.Constant(value_int=1))
    shape = [1] * rank
    shape[dim] = -1
    index = op.Reshape(index, op.Constant(value_ints=shape))
    return op.Expand(index, op.Shape(x)), length


def _scan(x: Any, dim: int, better: Callable[[Any, Any], Any]) -> tuple[Any, Any]:
    """Cumulative extremum of ``x`` along ``dim`` and its (last) index; ``better(a, b)``:
    a replaces b."""
    op = opset()
    dim = dim % len(x.shape)
    index, length = _positions(op, x, dim)
    axes = op.Constant(value_ints=[dim])
    start = op.Constant(value_ints=[0])
    for step in range(SCAN_STEPS):
        pads = op.Constant(value_ints=[1 << step, 0])
        shifted = op.Slice(op.Pad(x, pads, None, axes, mode="edge"), start, length, axes)
        shifted_index = op.Slice(op.Pad(index, pads, None, axes, mode="edge"), start, length, axes)
        take = better(shifted, x)  # ties keep the own, later index
        x = op.Where(take, shifted, x)
        index = op.Where(take, shifted_index, index)
    return x, index


def aten_cummax(self: Any, dim: int) -> tuple[Any, Any]:
    """``torch.cummax(self, dim)``: values and indices."""
    return _scan(self, dim, opset().Greater)


def aten_cummin(self: Any, dim: int) -> tuple[Any, Any]:
    """``torch.cummin(self, dim)``: values and indices."""
    return _scan(self, dim, opset().Less)


def aten_nanmedian_dim(self: Any, dim: int, keepdim: bool = False) -> tuple[Any, Any]:
    """``torch.nanmedian(self, dim, keepdim)``: the lower median of the values that are not
    NaN (NaN where all are), and its index."""
    op = opset()
    dim = dim % len(self.shape)
    axes = op.Constant(value_ints=[dim])
    nan = op.IsNaN(self)
    filled = op.Where(nan, op.CastLike(op.Constant(value_float=math.inf), self), self)
    count = op.ReduceSum(op.Cast(op.Not(nan), to=_int64()), axes, keepdims=1)
    length = op.Shape(self, start=dim, end=dim + 1)
    values, indices = op.TopK(filled, length, axis=dim, largest=0, sorted=1)
    middle = op.Div(op.Sub(count, op.Constant(value_int=1)), op.Constant(value_int=2))
    middle = op.Max(middle, op.Constant(value_int=0))
    median = op.GatherElements(values, middle, axis=dim)
    index = op.GatherElements(indices, middle, axis=dim)
    none = op.Equal(count, op.Constant(value_int=0))
    median = op.Where(none, op.CastLike(op.Constant(value_float=math.nan), self), median)
    if not keepdim:
        median, index = op.Squeeze(median, axes), op.Squeeze(index, axes)
    return median, index


def translation_table() -> dict[Any, Callable[..., Any]]:
    """``custom_translation_table`` of ``torch.onnx.export`` for the operators above."""
    return {
        torch.ops.aten.cummax.default: aten_cummax,
        torch.ops.aten.cummin.default: aten_cummin,
        torch.ops.aten.nanmedian.dim: aten_nanmedian_dim,
    }

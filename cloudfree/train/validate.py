"""Validation scores on the val tiles' fixed evaluation gaps (reads the tiles, writes nothing).

One call reconstructs each val tile that has gap pixels once, over all its dates; the first
tile's reconstruction can be kept (``keep``) for the example images of
:mod:`cloudfree.train.monitor`, which then need no second pass through the network.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from cloudfree.extras import missing_extra
from cloudfree.infer.predictor import run_model
from cloudfree.train.dataset import EvalTiles

try:
    import torch
    from torch import nn
except ImportError as exc:
    raise missing_extra("torch", "train") from exc

# Val tiles go through the network in windows of a fixed size, whatever infer.window says:
# the scores, and the best weights they pick, must not depend on an inference setting.
VAL_WINDOW, VAL_OVERLAP, VAL_BATCH = 256, 32, 4


def reconstruct(
    model: nn.Module, item: Mapping[str, Any], amp_dtype: torch.dtype | None
) -> torch.Tensor:
    """(T, C, H, W) normalised reconstruction of one :class:`EvalTiles` item (with its
    Sentinel-1 input ``s1`` when it has one)."""
    return run_model(
        model, item["x"], item["avail"], item["doy"], window=VAL_WINDOW, overlap=VAL_OVERLAP,
        batch_size=VAL_BATCH, amp_dtype=amp_dtype, s1=item.get("s1"),
    )  # fmt: skip


def evaluate(
    model: nn.Module,
    tiles: EvalTiles,
    std: np.ndarray,
    amp_dtype: torch.dtype | None,
    keep: dict[str, Any] | None = None,
) -> dict[str, float]:
    """Masked-pixel MAE and PSNR (reflectance units, data range 1) over the tiles' gaps.

    With ``keep`` (a dict) the first tile's item and reconstruction go to ``keep["item"]``
    and ``keep["pred"]`` (a pred of None when that tile has no gap pixel to score)."""
    was_training = model.training
    model.eval()
    abs_sum = sq_sum = 0.0
    count = 0
    s = torch.as_tensor(std, dtype=torch.float32)[:, None, None]
    for i, item in enumerate(tiles):
        hidden = item["hidden"]
        if keep is not None and i == 0:
            keep.update(item=item, pred=None)
        if not hidden.any():
            continue
        pred = reconstruct(model, item, amp_dtype)
        if keep is not None and i == 0:
            keep["pred"] = pred
        err = (pred - item["target"]) * s  # normalised -> reflectance difference
        sel = err.permute(1, 0, 2, 3)[:, hidden]  # (C, N)
        abs_sum += float(sel.abs().sum(dtype=torch.float64))
        sq_sum += float((sel.double() ** 2).sum())
        count += sel.numel()
    model.train(was_training)
    if count == 0:
        return {"mae": math.nan, "psnr": math.nan, "count": 0}
    mse = sq_sum / count
    psnr = 10.0 * math.log10(1.0 / mse) if mse > 0 else math.inf
    return {"mae": abs_sum / count, "psnr": psnr, "count": count}

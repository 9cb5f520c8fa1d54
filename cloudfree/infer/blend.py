"""Sliding windows with smooth blending weights, so large rasters show no seams.

A raster larger than the window is cut into overlapping windows of one size; each window's
output is weighted by a separable ramp (a raised cosine, i.e. half a Hann window) that goes
from 0 to 1 inside the ``overlap`` pixels on every side facing another window (after a
zero margin of a quarter of the overlap, where the window lacks context), and stays 1 on the
sides at the raster's edge.  The blended output is ``sum(w * out) / sum(w)``: in an overlap the
two ramps cross-fade (sin^2 + cos^2 = 1), so no window boundary shows as a step.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator

import numpy as np
import torch


def window_length(size: int, window: int, overlap: int, multiple: int = 1) -> int:
    """The window length actually used along an axis of ``size`` px.

    As few windows as cover the axis with at least ``overlap`` px (at most a quarter of the
    window) between neighbours, each
    shrunk to the shortest length (rounded up to ``multiple``, at most ``window``) that
    still does: a 512 px axis with 256 px windows and 32 px overlap gets three 192 px
    windows, not three of 256.
    """
    if window < 1:
        raise ValueError(f"window must be >= 1, got {window}")
    if size <= window:
        return size
    overlap = max(0, min(overlap, window // 4))
    n = math.ceil((size - overlap) / (window - overlap))
    length = math.ceil((size + (n - 1) * overlap) / n)
    length = -(-length // multiple) * multiple
    return min(window, size, length)


def window_starts(size: int, window: int, overlap: int) -> list[int]:
    """Start offsets of windows of ``window`` px covering ``range(size)``, evenly spread and
    overlapping by at least ``overlap`` px (one window when ``size <= window``)."""
    if window < 1:
        raise ValueError(f"window must be >= 1, got {window}")
    if size <= window:
        return [0]
    overlap = max(0, min(overlap, window // 4))
    n = math.ceil((size - overlap) / (window - overlap))
    return sorted({round(i * (size - window) / (n - 1)) for i in range(n)})


def ramp(length: int, overlap: int, rise: bool, fall: bool) -> np.ndarray:
    """1-D weights of one window along an axis.

    On a side facing another window: 0 over the outer ``overlap // 4`` px (pixels that lack
    context there, better seen by the neighbour), then a raised-cosine rise over the next
    ``overlap - 2 * (overlap // 4)`` px, then 1.  Neighbours ``length - overlap`` px apart
    cross-fade exactly (sin^2 + cos^2 = 1).  Sides at the raster's edge stay 1.
    """
    w = np.ones(length, dtype=np.float32)
    overlap = min(overlap, length // 2)
    margin = overlap // 4
    n = overlap - 2 * margin
    if n > 0:
        t = (np.arange(n, dtype=np.float64) + 0.5) / n
        up = np.concatenate([np.zeros(margin), np.sin(0.5 * math.pi * t) ** 2])
        if rise:
            w[: margin + n] = up
        if fall:
            w[length - margin - n :] = up[::-1]
    return w


def window_weights(
    shape: tuple[int, int], starts: tuple[list[int], list[int]], size: tuple[int, int], overlap: int
) -> Iterator[tuple[int, int, np.ndarray]]:
    """(y0, x0, (h, w) weights) of every window of a grid of ``starts``."""
    h, w = shape
    for y0 in starts[0]:
        wy = ramp(size[0], overlap, rise=y0 > 0, fall=y0 + size[0] < h)
        for x0 in starts[1]:
            wx = ramp(size[1], overlap, rise=x0 > 0, fall=x0 + size[1] < w)
            yield y0, x0, wy[:, None] * wx[None, :]


def blend(
    fn: Callable[[list[tuple[int, int]], tuple[int, int]], dict[str, torch.Tensor]],
    shape: tuple[int, int],
    *,
    window: int,
    overlap: int,
    batch_size: int,
    multiple: int = 1,
) -> dict[str, torch.Tensor]:
    """Run ``fn`` on batches of windows and blend its outputs over the whole raster.

    ``fn(offsets, size)`` gets a list of (y0, x0) window offsets and the (h, w) size all
    windows share (see :func:`window_length`) and returns ``{name: (B, ..., h, w) tensor}``
    for the batch.  Returns ``{name: (..., H, W) float32 tensor}`` on the CPU.
    """
    h, w = shape
    size = (
        window_length(h, window, overlap, multiple),
        window_length(w, window, overlap, multiple),
    )
    starts = (window_starts(h, size[0], overlap), window_starts(w, size[1], overlap))
    wins = list(window_weights(shape, starts, size, overlap))
    total = torch.zeros((h, w), dtype=torch.float32)
    acc: dict[str, torch.Tensor] = {}
    for i in range(0, len(wins), max(1, batch_size)):
        batch = wins[i : i + max(1, batch_size)]
        out = fn([(y0, x0) for y0, x0, _ in batch], size)
        for j, (y0, x0, wt) in enumerate(batch):
            weight = torch.from_numpy(wt)
            ys, xs = slice(y0, y0 + size[0]), slice(x0, x0 + size[1])
            total[ys, xs] += weight
            for name, value in out.items():
                v = value[j].float().cpu()
                if name not in acc:
                    acc[name] = torch.zeros((*v.shape[:-2], h, w), dtype=torch.float32)
                acc[name][..., ys, xs] += v * weight
    return {name: value / total for name, value in acc.items()}

"""Gap-filling baselines: simple per-pixel reconstructions of a cloudy time series.

Every baseline has one signature::

    f(refl: (T, C, H, W) float32, available: (T, H, W) bool, days: (T,) int)
        -> (T, C, H, W) float32

``available`` marks the observations a baseline may use (e.g. ``clear & ~gap``); a pixel
whose reflectance is not finite in every band is treated as unavailable as well.
``days`` are the dates as day numbers (ascending, e.g. :attr:`TileSeries.days`).

- ``linear``: per pixel, linear interpolation in time between the previous and the next
  available date, weighted by the days between them; constant extrapolation before the
  first and after the last available date.  Returns the input at available pixels.
- ``closest``: the value of the available date nearest in days (ties go to the earlier
  date).  Returns the input at available pixels.
- ``last``: the value of the latest available date at or before each date (persistence of
  the last clear observation); before the first available date, the first one.  Returns
  the input at available pixels.
- ``mean``: the per-pixel mean of the available observations, the same at every date,
  **including at available pixels** (it is a composite, not a gap filler).
- ``least_cloudy``: the date with the largest available fraction over the tile (ties go to
  the earlier date); where that date is unavailable at a pixel, the ``closest`` value to
  that date.  The same image at every date, **including at available pixels**.

Pixels with no available date at all get, at each date, the per-band mean of all
available pixels of that date in the tile; at dates without any available pixel, the
per-band mean of all available pixels of the whole tile.  They stay NaN only if the tile
has no available pixel at all.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn

from cloudfree.errors import ConfigError

Baseline = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]


def _prepare(
    refl: np.ndarray, available: np.ndarray, days: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    refl = np.ascontiguousarray(refl, dtype=np.float32)
    available = np.asarray(available, dtype=bool)
    days = np.asarray(days, dtype=np.float64)
    if refl.ndim != 4:
        raise ValueError(f"refl must be (T, C, H, W), got shape {refl.shape}")
    t, _, h, w = refl.shape
    if available.shape != (t, h, w):
        raise ValueError(f"available has shape {available.shape}, expected {(t, h, w)}")
    if days.shape != (t,):
        raise ValueError(f"days has shape {days.shape}, expected {(t,)}")
    if t > 1 and np.any(np.diff(days) < 0):
        raise ValueError("days must be ascending")
    available = available & np.isfinite(refl).all(axis=1)
    return refl, available, days


def _neighbours(available: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(T, H, W) index of the previous / next available date (inclusive); -1 / T if none."""
    t = available.shape[0]
    index = np.arange(t)[:, None, None]
    prev = np.maximum.accumulate(np.where(available, index, -1), axis=0)
    nxt = np.minimum.accumulate(np.where(available, index, t)[::-1], axis=0)[::-1]
    return prev, nxt


def _flat_index(refl: np.ndarray, index: np.ndarray) -> np.ndarray:
    """Flat positions in band 0 of ``refl`` of (date index[t, y, x], y, x); clipped to range."""
    _, c, h, w = refl.shape
    index = np.clip(index, 0, refl.shape[0] - 1).astype(np.intp)
    return index * (c * h * w) + np.arange(h * w, dtype=np.intp).reshape(h, w)


def _gather(refl: np.ndarray, index: np.ndarray) -> np.ndarray:
    """refl[index[t, y, x], :, y, x] for every (t, y, x); refl must be C-contiguous.

    A loop over bands with flat indices: much faster than one broadcast take_along_axis.
    """
    flat, band = refl.reshape(-1), refl.shape[2] * refl.shape[3]
    base = _flat_index(refl, index)
    out = np.empty((index.shape[0], *refl.shape[1:]), dtype=refl.dtype)
    for c in range(refl.shape[1]):
        out[:, c] = flat[base + c * band]
    return out


def _fill_never_available(out: np.ndarray, refl: np.ndarray, available: np.ndarray) -> None:
    """Give pixels without any available date the date's (else the tile's) band means."""
    never = ~available.any(axis=0)
    if not never.any():
        return
    date_sum = np.stack(  # (T, C), one band at a time to keep memory low
        [np.where(available, refl[:, c], 0.0).sum(axis=(1, 2), dtype=np.float64)
         for c in range(refl.shape[1])],
        axis=1,
    )  # fmt: skip
    date_n = available.sum(axis=(1, 2)).astype(np.float64)[:, None]  # (T, 1)
    tile_n = date_n.sum()
    tile_mean = date_sum.sum(axis=0) / tile_n if tile_n > 0 else np.full(refl.shape[1], np.nan)
    date_mean = np.where(date_n > 0, date_sum / np.maximum(date_n, 1.0), tile_mean[None])
    out[:, :, never] = date_mean.astype(np.float32)[:, :, None]


def linear(refl: np.ndarray, available: np.ndarray, days: np.ndarray) -> np.ndarray:
    """Linear interpolation in time per pixel, constant extrapolation at both ends."""
    refl, available, days = _prepare(refl, available, days)
    if refl.shape[0] == 0:
        return refl.copy()
    t = refl.shape[0]
    prev, nxt = _neighbours(available)
    prev = np.where(prev >= 0, prev, nxt)  # before the first available date: use the next
    nxt = np.where(nxt < t, nxt, prev)  # after the last one: use the previous
    prev_c, nxt_c = np.clip(prev, 0, t - 1), np.clip(nxt, 0, t - 1)
    d_prev, d_next = days[prev_c], days[nxt_c]
    span = d_next - d_prev
    weight = np.where(span > 0, (days[:, None, None] - d_prev) / np.where(span > 0, span, 1), 0)
    weight = weight.astype(np.float32)
    flat, band = refl.reshape(-1), refl.shape[2] * refl.shape[3]
    i_prev, i_next = _flat_index(refl, prev_c), _flat_index(refl, nxt_c)
    out = np.empty_like(refl)
    for c in range(refl.shape[1]):  # per band: vectorised over dates and pixels
        v_prev = flat[i_prev + c * band]
        out[:, c] = v_prev + weight * (flat[i_next + c * band] - v_prev)
    _fill_never_available(out, refl, available)
    return out.astype(np.float32, copy=False)


def _closest_index(available: np.ndarray, days: np.ndarray) -> np.ndarray:
    """(T, H, W) index of the available date nearest in days (ties: earlier), T if none."""
    t = available.shape[0]
    prev, nxt = _neighbours(available)
    has_prev, has_next = prev >= 0, nxt < t
    here = days[:, None, None]
    to_prev = here - days[np.clip(prev, 0, t - 1)]
    to_next = days[np.clip(nxt, 0, t - 1)] - here
    use_prev = has_prev & (~has_next | (to_prev <= to_next))
    return np.where(use_prev, prev, nxt)


def closest(refl: np.ndarray, available: np.ndarray, days: np.ndarray) -> np.ndarray:
    """The value of the available date nearest in days (ties go to the earlier date)."""
    refl, available, days = _prepare(refl, available, days)
    if refl.shape[0] == 0:
        return refl.copy()
    out = _gather(refl, _closest_index(available, days))
    _fill_never_available(out, refl, available)
    return out


def last(refl: np.ndarray, available: np.ndarray, days: np.ndarray) -> np.ndarray:
    """The latest available value at or before each date (before the first: the first)."""
    refl, available, days = _prepare(refl, available, days)
    if refl.shape[0] == 0:
        return refl.copy()
    prev, nxt = _neighbours(available)
    out = _gather(refl, np.where(prev >= 0, prev, nxt))
    _fill_never_available(out, refl, available)
    return out


def mean(refl: np.ndarray, available: np.ndarray, days: np.ndarray) -> np.ndarray:
    """Per-pixel mean of the available observations, repeated at every date."""
    refl, available, days = _prepare(refl, available, days)
    if refl.shape[0] == 0:
        return refl.copy()
    total = np.where(available[:, None], refl, 0.0).sum(axis=0, dtype=np.float64)
    n = available.sum(axis=0)
    composite = (total / np.maximum(n, 1)).astype(np.float32)  # (C, H, W)
    out = np.broadcast_to(composite, refl.shape).copy()
    _fill_never_available(out, refl, available)
    return out


def least_cloudy(refl: np.ndarray, available: np.ndarray, days: np.ndarray) -> np.ndarray:
    """The least cloudy date (gaps there filled by ``closest``), repeated at every date."""
    refl, available, days = _prepare(refl, available, days)
    if refl.shape[0] == 0:
        return refl.copy()
    best = int(np.argmax(available.mean(axis=(1, 2))))  # argmax: ties go to the earlier date
    index = _closest_index(available, days)[best]  # (H, W); T where never available
    image = _gather(refl, index[None])[0]  # (C, H, W)
    out = np.broadcast_to(image, refl.shape).copy()
    _fill_never_available(out, refl, available)
    return out


BASELINES: dict[str, Baseline] = {
    "linear": linear,
    "closest": closest,
    "last": last,
    "mean": mean,
    "least_cloudy": least_cloudy,
}


def get_baseline(name: str) -> Baseline:
    """A baseline by name; unknown names raise :class:`ConfigError` listing the known ones."""
    try:
        return BASELINES[name]
    except KeyError:
        raise ConfigError(
            f"unknown baseline {name!r}; known baselines: {', '.join(BASELINES)}"
        ) from None


def doy_to_days(doy: np.ndarray) -> np.ndarray:
    """Day-of-year values of an ordered series as ascending day numbers (year wraps unrolled)."""
    doy = np.asarray(doy, dtype=np.int64)
    wraps = np.concatenate(([0], np.cumsum(np.diff(doy) < 0)))
    return doy + 365 * wraps


class BaselineModel(nn.Module):
    """A gap filler of :data:`BASELINES` behind the network interface (no training).

    Works in any units (every baseline commutes with the per-band normalisation); runs on
    the CPU with numpy, sample by sample, and returns on the input's device.  Padding
    dates are left out and get zeros; pixels with nothing available at all get 0 (the
    band mean in normalised units).  Network settings (``widths``, ``heads``, ...) are
    accepted and ignored: the config fills them in whatever the model name.
    """

    method = "linear"
    trainable = False

    def __init__(self, in_channels: int, **network: Any) -> None:
        super().__init__()
        del network
        if in_channels < 1:
            raise ValueError(f"in_channels must be >= 1, got {in_channels}")
        self.in_channels = in_channels
        self.multiple = 1
        # Empty, frozen: gives callers a device (``next(model.parameters())``), nothing to learn.
        self.anchor = nn.Parameter(torch.zeros(0), requires_grad=False)

    def forward(
        self,
        x: torch.Tensor,
        avail: torch.Tensor,
        doy: torch.Tensor,
        pad: torch.Tensor | None = None,
    ) -> torch.Tensor:
        b, t, c, _, _ = x.shape
        if c != self.in_channels:
            raise ValueError(f"expected {self.in_channels} bands, got {c}")
        fill = BASELINES[self.method]
        xs = x.detach().float().cpu().numpy()
        av = avail.detach().cpu().numpy() > 0
        days = doy.detach().cpu().numpy()
        keep = np.ones((b, t), dtype=bool) if pad is None else ~pad.detach().cpu().numpy()
        out = np.zeros(xs.shape, dtype=np.float32)
        for i in range(b):
            k = keep[i]
            if k.any():
                filled = fill(xs[i][k], av[i][k], doy_to_days(days[i][k]))
                out[i, k] = np.nan_to_num(filled, nan=0.0)
        return torch.from_numpy(out).to(x.device)


# One model class per baseline, registered by name in cloudfree.models.registry.
BASELINE_MODELS: dict[str, type[BaselineModel]] = {
    name: type(f"Baseline_{name}", (BaselineModel,), {"method": name}) for name in BASELINES
}

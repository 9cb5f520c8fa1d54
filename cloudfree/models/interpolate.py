"""Per-pixel temporal interpolation of a cloudy series: the interpolating baselines.

Kernels on arrays (no files): ``refl`` (T, C, H, W) float32, ``available`` (T, H, W) bool,
``days`` (T,) ascending day numbers; see :mod:`cloudfree.models.baselines` for what each
baseline returns.
"""

from __future__ import annotations

import numpy as np

# Fewest observed pixels of a date from which ``linear_offset`` measures that date's offset.
OFFSET_MIN_PIXELS = 16


def prepare(
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


def neighbours(available: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(T, H, W) index of the previous / next available date (inclusive); -1 / T if none."""
    t = available.shape[0]
    index = np.arange(t)[:, None, None]
    prev = np.maximum.accumulate(np.where(available, index, -1), axis=0)
    nxt = np.minimum.accumulate(np.where(available, index, t)[::-1], axis=0)[::-1]
    return prev, nxt


def flat_index(refl: np.ndarray, index: np.ndarray) -> np.ndarray:
    """Flat positions in band 0 of ``refl`` of (date index[t, y, x], y, x); clipped to range."""
    _, c, h, w = refl.shape
    index = np.clip(index, 0, refl.shape[0] - 1).astype(np.intp)
    return index * (c * h * w) + np.arange(h * w, dtype=np.intp).reshape(h, w)


def gather(refl: np.ndarray, index: np.ndarray) -> np.ndarray:
    """refl[index[t, y, x], :, y, x] for every (t, y, x); refl must be C-contiguous.

    A loop over bands with flat indices: much faster than one broadcast take_along_axis.
    """
    flat, band = refl.reshape(-1), refl.shape[2] * refl.shape[3]
    base = flat_index(refl, index)
    out = np.empty((index.shape[0], *refl.shape[1:]), dtype=refl.dtype)
    for c in range(refl.shape[1]):
        out[:, c] = flat[base + c * band]
    return out


def fill_never_available(out: np.ndarray, refl: np.ndarray, available: np.ndarray) -> None:
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
    refl, available, days = prepare(refl, available, days)
    if refl.shape[0] == 0:
        return refl.copy()
    t = refl.shape[0]
    prev, nxt = neighbours(available)
    prev = np.where(prev >= 0, prev, nxt)  # before the first available date: use the next
    nxt = np.where(nxt < t, nxt, prev)  # after the last one: use the previous
    prev_c, nxt_c = np.clip(prev, 0, t - 1), np.clip(nxt, 0, t - 1)
    d_prev, d_next = days[prev_c], days[nxt_c]
    span = d_next - d_prev
    weight = np.where(span > 0, (days[:, None, None] - d_prev) / np.where(span > 0, span, 1), 0)
    weight = weight.astype(np.float32)
    flat, band = refl.reshape(-1), refl.shape[2] * refl.shape[3]
    i_prev, i_next = flat_index(refl, prev_c), flat_index(refl, nxt_c)
    out = np.empty_like(refl)
    for c in range(refl.shape[1]):  # per band: vectorised over dates and pixels
        v_prev = flat[i_prev + c * band]
        out[:, c] = v_prev + weight * (flat[i_next + c * band] - v_prev)
    fill_never_available(out, refl, available)
    return out.astype(np.float32, copy=False)


def _closest_index(available: np.ndarray, days: np.ndarray) -> np.ndarray:
    """(T, H, W) index of the available date nearest in days (ties: earlier), T if none."""
    t = available.shape[0]
    prev, nxt = neighbours(available)
    has_prev, has_next = prev >= 0, nxt < t
    here = days[:, None, None]
    to_prev = here - days[np.clip(prev, 0, t - 1)]
    to_next = days[np.clip(nxt, 0, t - 1)] - here
    use_prev = has_prev & (~has_next | (to_prev <= to_next))
    return np.where(use_prev, prev, nxt)


def closest(refl: np.ndarray, available: np.ndarray, days: np.ndarray) -> np.ndarray:
    """The value of the available date nearest in days (ties go to the earlier date)."""
    refl, available, days = prepare(refl, available, days)
    if refl.shape[0] == 0:
        return refl.copy()
    out = gather(refl, _closest_index(available, days))
    fill_never_available(out, refl, available)
    return out


def last(refl: np.ndarray, available: np.ndarray, days: np.ndarray) -> np.ndarray:
    """The latest available value at or before each date (before the first: the first)."""
    refl, available, days = prepare(refl, available, days)
    if refl.shape[0] == 0:
        return refl.copy()
    prev, nxt = neighbours(available)
    out = gather(refl, np.where(prev >= 0, prev, nxt))
    fill_never_available(out, refl, available)
    return out


def mean(refl: np.ndarray, available: np.ndarray, days: np.ndarray) -> np.ndarray:
    """Per-pixel mean of the available observations, repeated at every date."""
    refl, available, days = prepare(refl, available, days)
    if refl.shape[0] == 0:
        return refl.copy()
    total = np.where(available[:, None], refl, 0.0).sum(axis=0, dtype=np.float64)
    n = available.sum(axis=0)
    composite = (total / np.maximum(n, 1)).astype(np.float32)  # (C, H, W)
    out = np.broadcast_to(composite, refl.shape).copy()
    fill_never_available(out, refl, available)
    return out


def least_cloudy(refl: np.ndarray, available: np.ndarray, days: np.ndarray) -> np.ndarray:
    """The least cloudy date (gaps there filled by ``closest``), repeated at every date."""
    refl, available, days = prepare(refl, available, days)
    if refl.shape[0] == 0:
        return refl.copy()
    best = int(np.argmax(available.mean(axis=(1, 2))))  # argmax: ties go to the earlier date
    index = _closest_index(available, days)[best]  # (H, W); T where never available
    image = gather(refl, index[None])[0]  # (C, H, W)
    out = np.broadcast_to(image, refl.shape).copy()
    fill_never_available(out, refl, available)
    return out


def interpolate_between(
    refl: np.ndarray, prev: np.ndarray, nxt: np.ndarray, days: np.ndarray
) -> np.ndarray:
    """(T, C, H, W) linear interpolation at each date between the dates ``prev`` and ``nxt``
    (T, H, W) of each pixel (-1 / T: none on that side: the other one's value; none at all:
    NaN)."""
    t = refl.shape[0]
    has_prev, has_next = prev >= 0, nxt < t
    p = np.clip(np.where(has_prev, prev, nxt), 0, t - 1)
    n = np.clip(np.where(has_next, nxt, prev), 0, t - 1)
    span = days[n] - days[p]
    weight = np.where(span > 0, (days[:, None, None] - days[p]) / np.where(span > 0, span, 1), 0)
    weight = weight.astype(np.float32)
    flat, band = refl.reshape(-1), refl.shape[2] * refl.shape[3]
    i_prev, i_next = flat_index(refl, p), flat_index(refl, n)
    out = np.empty_like(refl)
    for c in range(refl.shape[1]):
        v_prev = flat[i_prev + c * band]
        out[:, c] = v_prev + weight * (flat[i_next + c * band] - v_prev)
    none = ~(has_prev | has_next)
    out[np.broadcast_to(none[:, None], out.shape)] = np.nan
    return out


def linear_offset(refl: np.ndarray, available: np.ndarray, days: np.ndarray) -> np.ndarray:
    """``linear`` plus, at the hidden pixels of each date, that date's radiometric offset per
    band: the median over the date's observed pixels of (observed - the interpolation between
    the neighbouring dates without it).  A date with fewer than OFFSET_MIN_PIXELS such pixels
    gets no offset.  Returns the input at available pixels."""
    refl, available, days = prepare(refl, available, days)
    t = refl.shape[0]
    out = linear(refl, available, days)
    if t < 2:
        return out
    prev, nxt = neighbours(available)
    before = np.concatenate([np.full((1, *prev.shape[1:]), -1), prev[:-1]])
    after = np.concatenate([nxt[1:], np.full((1, *nxt.shape[1:]), t)])
    without = interpolate_between(refl, before, after, days)  # each date left out
    for d in range(t):
        hidden = ~available[d]
        seen = available[d] & np.isfinite(without[d, 0])
        if not hidden.any() or seen.sum() < OFFSET_MIN_PIXELS:
            continue
        offset = np.median(refl[d][:, seen] - without[d][:, seen], axis=1).astype(np.float32)
        out[d][:, hidden] += offset[:, None]
    return out

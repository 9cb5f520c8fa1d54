"""The samples the training datasets yield: normalised tensors of one crop or tile.

Every sample is a dict of tensors (T dates, C bands, h x w pixels):

- ``x`` (T, C, h, w) float32: normalised reflectance, 0 where not available;
- ``avail`` (T, h, w) float32: 1 where the model sees the pixel (clear and not in a gap);
- ``target`` (T, C, h, w) float32: normalised reflectance of the truth, 0 where unknown;
- ``known`` (T, h, w) bool: the truth is known (the pixel is clear);
- ``hidden`` (T, h, w) bool: known but hidden by the gap (the pixels scored as "masked");
- ``doy`` (T,) int64: day of year of each date (0 on padding);
- ``gap`` (T, h, w) bool: the synthetic (training) or fixed (evaluation) gap mask;
- ``cloud`` (T, h, w) bool: the real cloud/shadow mask of the dates;
- ``pad`` (T,) bool: padding dates of a short training sequence (no data, never hidden);
- ``s1`` (T, 3, h, w) float32, only for a model with Sentinel-1 input: VV and VH scaled to
  [0, 1] and their availability (:func:`cloudfree.models.s1.scale_s1`; 0 on padding).

Reads and writes nothing.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from cloudfree.errors import ConfigError
from cloudfree.extras import missing_extra

try:
    import torch
except ImportError as exc:
    raise missing_extra("torch", "train") from exc


def sample_dict(
    s2: np.ndarray,
    clear: np.ndarray,
    gap: np.ndarray,
    doy: np.ndarray,
    mean: np.ndarray,
    std: np.ndarray,
    scale: float,
    cloud: np.ndarray | None = None,
    pad: np.ndarray | None = None,
    jitter: tuple[np.ndarray, np.ndarray] | None = None,
    s1: np.ndarray | None = None,
) -> dict[str, torch.Tensor]:
    """The sample of DN ``s2`` (T, C, h, w) with its clear pixels, gaps and dates; ``jitter``
    a (T, 1) gain and (T, C) offset applied to the reflectance of input and target alike
    (never to ``s1``, the scaled (T, 3, h, w) Sentinel-1 input, stored as given)."""
    refl = s2.astype(np.float32) / np.float32(scale)
    if jitter is not None:
        gain, offset = jitter
        refl = refl * gain[:, :, None, None] + offset[:, :, None, None]
    norm = (refl - mean[None, :, None, None]) / std[None, :, None, None]
    avail = clear & ~gap
    x = np.where(avail[:, None], norm, np.float32(0))
    target = np.where(clear[:, None], norm, np.float32(0))
    t = clear.shape[0]
    out = {
        "x": torch.from_numpy(x.astype(np.float32, copy=False)),
        "avail": torch.from_numpy(avail.astype(np.float32)),
        "target": torch.from_numpy(target.astype(np.float32, copy=False)),
        "known": torch.from_numpy(clear.copy()),
        "hidden": torch.from_numpy(clear & gap),
        "doy": torch.from_numpy(doy.astype(np.int64)),
        "gap": torch.from_numpy(gap.copy()),
        "cloud": torch.from_numpy(
            np.zeros(clear.shape, dtype=bool) if cloud is None else cloud.copy()
        ),
        "pad": torch.from_numpy(np.zeros(t, dtype=bool) if pad is None else pad.copy()),
    }
    if s1 is not None:
        out["s1"] = torch.from_numpy(np.ascontiguousarray(s1, dtype=np.float32))
    return out


def norm_arrays(
    norm: tuple[Sequence[float], Sequence[float]], c: int
) -> tuple[np.ndarray, np.ndarray]:
    """Per-band mean and std as float32 arrays; ConfigError unless each has ``c`` values."""
    mean = np.asarray(norm[0], dtype=np.float32)
    std = np.asarray(norm[1], dtype=np.float32)
    if mean.shape != (c,) or std.shape != (c,):
        raise ConfigError(f"norm stats must have {c} values per band, got {mean.shape}")
    return mean, std


def rotate_flip(arrays: list[np.ndarray], k: int, flip: bool) -> list[np.ndarray]:
    """The same ``k`` quarter turns (and left-right flip) of the last two axes of each array."""
    out = []
    for a in arrays:
        a = np.rot90(a, k, axes=(-2, -1))
        if flip:
            a = a[..., ::-1]
        out.append(np.ascontiguousarray(a))
    return out

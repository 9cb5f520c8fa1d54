"""The cloud detector's working grid: a tile's grid coarsened by an integer factor.

s2cloudless was trained for a coarse grid (its authors recommend 60 m or 160 m).  The
detector evaluates its model on the tile averaged over ``factor x factor`` blocks, then
brings the probabilities back to the tile's grid.  Pure numpy, on arrays of any size:

- :func:`pixel_size_metres`, :func:`working_factor` and :func:`tile_factor`: the factor of a
  working resolution in metres for a tile's pixel size (in degrees for a geographic CRS:
  converted at the tile's centre latitude);
- :func:`downsample`: block means of the valid pixels (the last block row and column may be
  partial when the size is not a multiple of the factor);
- :func:`upsample`: bilinear interpolation between block centres, weighted by whether a
  block holds any valid pixel, back onto the tile grid.

With a factor of 1 both return their input unchanged.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from cloudfree.errors import InputDataError

# Mean Earth radius (IUGG), for the length of a degree on a geographic grid.
EARTH_RADIUS_M = 6_371_008.8


def pixel_size_metres(
    res_x: float,
    res_y: float,
    *,
    geographic: bool,
    centre_latitude: float = 0.0,
    unit_metres: float = 1.0,
) -> float:
    """Side in metres of a square with a tile pixel's area.

    ``res_x``, ``res_y``: the pixel size in CRS units; degrees when ``geographic`` (converted
    at ``centre_latitude``: a degree of longitude spans cos(latitude) of a degree of
    latitude), else ``unit_metres`` metres each.
    """
    if geographic:
        degree = math.pi / 180.0 * EARTH_RADIUS_M
        dx = abs(res_x) * degree * math.cos(math.radians(centre_latitude))
        dy = abs(res_y) * degree
    else:
        dx, dy = abs(res_x) * unit_metres, abs(res_y) * unit_metres
    return math.sqrt(dx * dy)


def working_factor(resolution: float | None, pixel_size: float) -> int:
    """Integer coarsening factor: ``resolution / pixel_size`` rounded, at least 1; 1 when
    ``resolution`` is None (the tile's own grid)."""
    if resolution is None:
        return 1
    if not pixel_size > 0:
        raise ValueError(f"pixel size {pixel_size} m: must be positive")
    return max(1, round(resolution / pixel_size))


def tile_factor(resolution: float | None, profile: Mapping[str, Any], where: str) -> int:
    """:func:`working_factor` of a raster (its rasterio ``profile``: CRS, transform, size);
    a raster without CRS is an error naming ``where`` unless ``resolution`` is None."""
    if resolution is None:
        return 1
    crs, t = profile.get("crs"), profile["transform"]
    if crs is None:
        raise InputDataError(
            f"{where}: the file has no CRS, so its pixel size in metres is unknown; give it "
            "one, or set clouds.detector.resolution: null to detect on its own grid"
        )
    res_x, res_y = math.hypot(t.a, t.d), math.hypot(t.b, t.e)
    if crs.is_geographic:
        latitude = t.f + t.d * profile["width"] / 2 + t.e * profile["height"] / 2
        size = pixel_size_metres(res_x, res_y, geographic=True, centre_latitude=latitude)
    else:
        unit = crs.linear_units_factor[1]
        size = pixel_size_metres(res_x, res_y, geographic=False, unit_metres=unit)
    return working_factor(resolution, size)


def coarse_shape(shape: tuple[int, int], factor: int) -> tuple[int, int]:
    """Height and width of the working grid of a ``shape`` tile (partial blocks count)."""
    return -(-shape[0] // factor), -(-shape[1] // factor)


def downsample(image: np.ndarray, valid: np.ndarray, factor: int) -> tuple[np.ndarray, np.ndarray]:
    """Block means of an ``(H, W, C)`` image over its ``(H, W)`` valid pixels.

    Returns the ``(h, w, C)`` float32 means (0 in blocks without a valid pixel) and the
    ``(h, w)`` share of valid pixels in each block (float32, 0 to 1; the area a partial block
    covers counts as its size).  ``factor`` 1: the image itself and ``valid`` as 0/1.
    """
    if image.ndim != 3 or image.shape[:2] != valid.shape:
        raise ValueError(f"image {image.shape} and valid {valid.shape}: expected (H, W, C), (H, W)")
    if factor == 1:
        return image, valid.astype(np.float32)
    height, width = valid.shape
    h, w = coarse_shape((height, width), factor)
    pad = ((0, h * factor - height), (0, w * factor - width))
    weight = np.pad(valid.astype(np.float64), pad)
    data = np.pad(np.where(valid[..., None], image, 0).astype(np.float64), (*pad, (0, 0)))
    sums = data.reshape(h, factor, w, factor, -1).sum(axis=(1, 3))
    counts = weight.reshape(h, factor, w, factor).sum(axis=(1, 3))
    means = sums / np.maximum(counts, 1.0)[..., None]
    rows = np.minimum(np.arange(1, h + 1) * factor, height) - np.arange(h) * factor
    cols = np.minimum(np.arange(1, w + 1) * factor, width) - np.arange(w) * factor
    share = counts / (rows[:, None] * cols[None, :])
    return means.astype(np.float32), share.astype(np.float32)


def _axis_weights(size: int, factor: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each tile pixel along one axis: the two block indexes around it and the weight
    of the second (linear interpolation between block centres, constant past the ends)."""
    n = -(-size // factor)
    starts = np.arange(n) * factor
    centres = (starts + np.minimum(starts + factor, size) - 1) / 2.0
    position = np.interp(np.arange(size, dtype=np.float64), centres, np.arange(n, dtype=float))
    lower = np.floor(position).astype(np.intp)
    upper = np.minimum(lower + 1, n - 1)
    return lower, upper, position - lower


def upsample(
    values: np.ndarray, weight: np.ndarray, shape: tuple[int, int], factor: int
) -> np.ndarray:
    """Bilinear interpolation of ``(h, w)`` block ``values`` onto a ``shape`` tile grid.

    Blocks are weighted by ``weight`` (their share of valid pixels): a block without valid
    pixels does not reach its neighbours.  Tile pixels whose surrounding blocks all have
    weight 0 (nodata) get the plain bilinear value.  Returns float32; ``factor`` 1 gives
    ``values`` unchanged.
    """
    if factor == 1:
        if values.shape != tuple(shape):
            raise ValueError(f"values {values.shape} do not match the tile grid {shape}")
        return values
    if values.shape != coarse_shape(shape, factor) or weight.shape != values.shape:
        raise ValueError(
            f"values {values.shape}, weight {weight.shape}: expected the working grid "
            f"{coarse_shape(shape, factor)} of a {shape} tile with factor {factor}"
        )
    r0, r1, fr = _axis_weights(shape[0], factor)
    c0, c1, fc = _axis_weights(shape[1], factor)
    fr, fc = fr[:, None], fc[None, :]

    def interpolate(grid: np.ndarray) -> np.ndarray:
        top = grid[r0][:, c0] * (1 - fc) + grid[r0][:, c1] * fc
        bottom = grid[r1][:, c0] * (1 - fc) + grid[r1][:, c1] * fc
        return top * (1 - fr) + bottom * fr

    grid = values.astype(np.float64)
    w = weight.astype(np.float64)
    total = interpolate(w)
    weighted = interpolate(grid * w)
    plain = interpolate(grid)
    out = np.where(total > 0, weighted / np.where(total > 0, total, 1.0), plain)
    return out.astype(np.float32)

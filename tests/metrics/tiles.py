"""Small hand-made tile series with evaluation gaps for the metrics tests."""

from __future__ import annotations

import numpy as np
from affine import Affine
from rasterio.crs import CRS

from cloudfree.packed import TileSeries


def noisy_tile(name: str, gap: bool) -> TileSeries:
    """4 dates of 2 x 12 x 12 random DN; date 1 cloudy at the top, one nodata pixel at date 2.

    With ``gap`` (split test): 9 hidden clear pixels at date 1 and 24 at date 3.
    """
    t, c, h, w = 4, 2, 12, 12
    rng = np.random.default_rng(4)
    s2 = rng.integers(500, 4000, size=(t, c, h, w)).astype(np.uint16)
    mask = np.zeros((t, h, w), np.uint8)
    mask[1, :3, :] = 1  # cloud
    mask[2, 0, 0] = 255  # nodata
    s2[2, :, 0, 0] = 0
    g = None
    if gap:
        g = np.zeros((t, h, w), bool)
        g[1, 5:8, 5:8] = True  # 9 hidden clear pixels
        g[3, :2, :] = True  # 24 hidden clear pixels
    return TileSeries(
        tile=name,
        split="test" if gap else "train",
        s2=s2,
        mask=mask,
        dates=["2021-01-01", "2021-01-11", "2021-01-21", "2021-02-10"],
        doy=np.array([1, 11, 21, 41], np.int16),
        crs=CRS.from_epsg(32633),
        transform=Affine(10, 0, 0, 0, -10, 0),
        gap=g,
    )


# A hand-built 1 x 3 tile: p0, p1, p2 over days 0, 10, 25, 40.
#   t0: p1 cloudy            -> available p0, p2
#   t1: p0, p1 in the gap    -> available p2;      masked p0, p1
#   t2: p2 nodata            -> available p0, p1
#   t3: p0 in the gap        -> available p1, p2;  masked p0
OFFSETS = np.array([0.01, -0.03])  # prediction error per band on masked pixels


def hand_tile() -> TileSeries:
    """The 1 x 3 pixel, 2-band tile drawn above (reflectance 0.1 and 0.2)."""
    s2 = np.full((4, 2, 1, 3), 1000, np.uint16)
    s2[:, 1] = 2000
    mask = np.zeros((4, 1, 3), np.uint8)
    mask[0, 0, 1] = 1
    mask[2, 0, 2] = 255
    s2[2, :, 0, 2] = 0
    gap = np.zeros((4, 1, 3), bool)
    gap[1, 0, :2] = True
    gap[3, 0, 0] = True
    return TileSeries(
        tile="h",
        split="test",
        s2=s2,
        mask=mask,
        dates=["2021-01-01", "2021-01-11", "2021-01-26", "2021-02-10"],
        doy=np.array([1, 11, 26, 41], np.int16),
        crs=CRS.from_epsg(32633),
        transform=Affine(10, 0, 0, 0, -10, 0),
        gap=gap,
    )


def offset_method(tile: TileSeries, available: np.ndarray) -> np.ndarray:
    """Exact where available, truth + OFFSETS at hidden clear pixels, 0.5 elsewhere."""
    truth = tile.reflectance().astype(np.float64)
    pred = np.where(np.isfinite(truth), truth, 0.5)
    hidden = tile.clear & ~available
    return pred + OFFSETS[None, :, None, None] * hidden[:, None]

"""The ground of a synthetic region: land cover, class spectra and phenology.

Kernels on arrays: the land-cover map (classes claiming pixels from fractal fields, cropland
as strip-field parcels), each class's clear-sky TOA reflectance over the day of year, and
the half-year shift of the phenology south of the equator.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from rasterio.crs import CRS
from rasterio.warp import transform as warp_transform

from cloudfree.bands import S2_L1C_BANDS
from cloudfree.tiles.synthetic.fields import fractal_noise
from cloudfree.tiles.synthetic.spec import SyntheticSpec

# The land-cover codes (uint8) index this tuple: the classes of the schema's
# ``synthetic.landcover``.
LANDCOVER_CLASSES: tuple[str, ...] = ("water", "forest", "cropland", "grassland", "bare", "urban")

# fmt: off
# TOA reflectance end-members, bands B01 B02 B03 B04 B05 B06 B07 B08 B8A B09 B10 B11 B12.
# B01/B09/B10 include the atmosphere (Rayleigh path, water vapour, 1375 nm absorption).
SPECTRA: dict[str, np.ndarray] = {k: np.array(v) for k, v in {
    "water":       [.110, .085, .065, .045, .035, .025, .022, .020, .018, .008, .002, .008, .005],
    "green_crop":  [.100, .075, .080, .045, .110, .280, .360, .400, .420, .140, .004, .200, .100],
    "forest":      [.090, .065, .060, .035, .080, .200, .260, .290, .300, .100, .003, .140, .065],
    "forest_dry":  [.100, .075, .070, .060, .090, .150, .180, .200, .210, .075, .004, .170, .090],
    "green_grass": [.100, .075, .085, .055, .120, .250, .310, .340, .355, .120, .004, .230, .130],
    "dry_grass":   [.110, .090, .100, .120, .150, .190, .220, .240, .260, .090, .005, .330, .240],
    "soil":        [.120, .100, .120, .150, .170, .190, .210, .220, .240, .080, .006, .320, .270],
    "bare":        [.150, .140, .170, .220, .250, .270, .290, .300, .320, .110, .008, .400, .350],
    "urban":       [.140, .120, .120, .130, .140, .150, .160, .170, .175, .070, .006, .190, .170],
}.items()}
# fmt: on

# Vegetated classes: (green end-member, background end-member, phenology).  Phenology is a
# plateau around `peak` (day of year, northern hemisphere) with logistic green-up and
# senescence/harvest edges of the given steepness in days; greenness goes gmin..gmax.
PHENOLOGY: dict[str, dict[str, Any]] = {
    "cropland": dict(green="green_crop", background="soil", peak=195.0, half=55.0,
                     rise=9.0, fall=4.0, gmin=0.02, gmax=0.95, parcel_sd=15.0),
    "grassland": dict(green="green_grass", background="dry_grass", peak=170.0, half=90.0,
                      rise=25.0, fall=25.0, gmin=0.25, gmax=0.80, parcel_sd=8.0),
    "forest": dict(green="forest", background="forest_dry", peak=180.0, half=120.0,
                   rise=30.0, fall=30.0, gmin=0.70, gmax=1.00, parcel_sd=4.0),
}  # fmt: skip
STATIC_SPECTRUM = {"water": "water", "bare": "bare", "urban": "urban"}
# Relative brightness texture per class (urban is the most heterogeneous).
TEXTURE_SD = {
    "water": 0.02,
    "forest": 0.05,
    "cropland": 0.03,
    "grassland": 0.04,
    "bare": 0.06,
    "urban": 0.15,
}
# Order in which classes claim pixels: natural blobs first, then cropland parcels (cut
# straight where they meet forest or water, as fields are); the last present class takes
# the remainder, so it should be a "matrix" class (grassland), not a compact one.
ASSIGN_ORDER = ("water", "forest", "urban", "cropland", "bare", "grassland")
# Spectral exponent (smoothness) of the field each class is drawn from.
CLASS_BETA = {
    "water": 4.0,
    "urban": 3.0,
    "cropland": 3.0,
    "forest": 3.2,
    "bare": 3.0,
    "grassland": 3.0,
}


def season_offset(spec: SyntheticSpec) -> float:
    """Days to shift the (northern) phenology by: half a year south of the equator."""
    h, w = spec.region_shape
    x = spec.origin[0] + w * spec.resolution / 2
    y = spec.origin[1] - h * spec.resolution / 2
    _, lat = warp_transform(CRS.from_user_input(spec.crs), "EPSG:4326", [x], [y])
    return 182.0 if lat[0] < 0 else 0.0


def parcel_map(
    shape: tuple[int, int],
    rng: np.random.Generator,
    *,
    block: tuple[int, int] = (28, 64),
    field_width: tuple[int, int] = (5, 16),
) -> np.ndarray:
    """Agricultural parcel ids: blocks of parallel strip fields, orientation per block."""
    h, w = shape
    ids = np.zeros(shape, dtype=np.int32)
    next_id = 0
    y = 0
    while y < h:
        bh = int(rng.integers(block[0], block[1] + 1))
        x = 0
        while x < w:
            bw = int(rng.integers(block[0], block[1] + 1))
            horizontal = bool(rng.random() < 0.5)
            length = bh if horizontal else bw
            cuts = np.cumsum(rng.integers(field_width[0], field_width[1] + 1, size=length))
            strip = np.searchsorted(cuts, np.arange(length), side="right") + next_id
            next_id = int(strip.max()) + 1
            region = ids[y : y + bh, x : x + bw]
            if horizontal:
                region[:] = strip[: region.shape[0], None]
            else:
                region[:] = strip[None, : region.shape[1]]
            x += bw
        y += bh
    return ids


def _class_counts(weights: Mapping[str, float], n: int) -> dict[str, int]:
    """Pixel count per class, summing to n (cumulative rounding)."""
    names = [c for c in LANDCOVER_CLASSES if weights.get(c, 0.0) > 0]
    w = np.array([weights[c] for c in names], dtype=float)
    edges = np.rint(np.concatenate([[0.0], np.cumsum(w / w.sum())]) * n).astype(int)
    return dict(zip(names, np.diff(edges).tolist(), strict=True))


def landcover_map(
    shape: tuple[int, int], weights: Mapping[str, float], rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Class codes (uint8, index into LANDCOVER_CLASSES) and parcel ids (int32).

    Classes claim pixels in turn, each taking the top quantile of its own fractal field
    among the unclaimed pixels, which hits the weights exactly and gives smooth blobs
    (water, forest), clustered settlements (urban) and, since cropland ranks whole
    parcels by their mean, rectangular fields.  Absent classes get no pixels.
    """
    h, w = shape
    n = h * w
    counts = _class_counts(weights, n)
    parcels = parcel_map(shape, rng)
    classes = np.full(n, 255, dtype=np.uint8)
    present = [c for c in ASSIGN_ORDER if c in counts]
    for i, name in enumerate(present):
        free = np.flatnonzero(classes == 255)
        if i == len(present) - 1:  # the matrix class takes what is left
            classes[free] = LANDCOVER_CLASSES.index(name)
            break
        score = fractal_noise(shape, CLASS_BETA[name], rng).ravel()
        if name == "cropland":
            # Rank parcels by mean suitability (+ a parcel-level lottery), pixels within
            # the marginal parcel by the field, so parcels are taken whole but for one.
            pid = parcels.ravel()
            size = np.maximum(np.bincount(pid), 1)
            mean = np.bincount(pid, score) / size
            lottery = rng.standard_normal(mean.size)
            # Prefer parcels mostly free of water/forest/urban: no slivers of crop.
            free_share = np.bincount(pid, classes == 255, minlength=size.size) / size
            score = (mean + 0.7 * lottery + 2.0 * free_share)[pid] + 1e-3 * score
        k = counts[name]
        if k == 0:
            continue
        take = free[np.argpartition(-score[free], k - 1)[:k]]
        classes[take] = LANDCOVER_CLASSES.index(name)
    return classes.reshape(shape), parcels


def greenness(cls: str, doy: np.ndarray | float) -> np.ndarray:
    """Green-vegetation fraction (0..1) of a vegetated class over day of year (cyclic)."""
    p = PHENOLOGY[cls]
    # Signed distance to the season peak in days, wrapped to (-182.5, 182.5].
    d = (np.asarray(doy, dtype=float) - p["peak"] + 182.5) % 365.0 - 182.5
    steep = np.where(d < 0, p["rise"], p["fall"])
    g = 1.0 / (1.0 + np.exp(-(p["half"] - np.abs(d)) / steep))
    return p["gmin"] + (p["gmax"] - p["gmin"]) * g


def surface_reflectance(
    landcover: np.ndarray,
    doy: float,
    *,
    phase: np.ndarray | None = None,
    texture: np.ndarray | None = None,
    green_jitter: np.ndarray | None = None,
) -> np.ndarray:
    """Clear-sky TOA reflectance (13, H, W) float32 of a land-cover map on a day of year.

    ``phase`` shifts each pixel's phenology (days, e.g. per-parcel sowing dates),
    ``green_jitter`` adds to its greenness, ``texture`` multiplies its brightness.
    """
    lc = np.asarray(landcover)
    out = np.zeros((len(S2_L1C_BANDS), *lc.shape), dtype=np.float32)
    for code, name in enumerate(LANDCOVER_CLASSES):
        sel = lc == code
        if not sel.any():
            continue
        if name in PHENOLOGY:
            p = PHENOLOGY[name]
            shift = phase[sel] if phase is not None else 0.0
            g = greenness(name, doy - shift) * np.ones(int(sel.sum()))
            if green_jitter is not None:
                g = np.clip(g + green_jitter[sel], 0.0, 1.0)
            green, back = SPECTRA[p["green"]], SPECTRA[p["background"]]
            out[:, sel] = green[:, None] * g + back[:, None] * (1.0 - g)
        else:
            out[:, sel] = SPECTRA[STATIC_SPECTRUM[name]][:, None]
    if texture is not None:
        out *= texture
    return out

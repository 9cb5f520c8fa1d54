"""Synthetic Sentinel-2 L1C-like time series: the embedded default tile source.

A region is simulated once on its full pixel grid and cut into overlapping tiles, so
neighbouring tiles carry identical pixels in their overlap.  The scene is built from:

- a land-cover map from fractal (power-law) random fields, with cropland as rectangular
  parcels laid out in strip-field blocks, hitting the configured class weights exactly;
- class spectra (TOA reflectance, 13 bands) mixed between a green and a soil/senescent
  end-member by a per-class, per-parcel phenology over day of year;
- static per-pixel texture, a per-date atmosphere (gain, aerosol path reflectance) and
  signal-dependent sensor noise;
- per-date clouds (fractal opacity thresholded at a Beta-distributed cover), thin
  cirrus on some dates, and cloud shadows cast by the same opacity field shifted along
  the sun direction.

The cloud mask is the truth about the pixels: a pixel labelled clear was touched by
neither cloud nor shadow.  Every random draw comes from a stream keyed by the seed and a
purpose (and the calendar date for per-date draws), so the output is a pure function of
the spec, and a date's weather does not change when ``n_dates`` does.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
from affine import Affine
from rasterio.crs import CRS
from rasterio.errors import CRSError
from rasterio.warp import transform as warp_transform

from cloudfree.bands import (
    CLEAR,
    CLOUD,
    MASK_NODATA,
    NODATA,
    REFLECTANCE_SCALE,
    S2_L1C_BANDS,
    SHADOW,
    THIN_CLOUD,
)
from cloudfree.errors import ConfigError
from cloudfree.io import geotiff_profile, write_raster
from cloudfree.manifest import COLUMNS, validate_manifest

SOURCE = "synthetic"
LANDCOVER_CLASSES: tuple[str, ...] = ("water", "forest", "cropland", "grassland", "bare", "urban")
DEFAULT_LANDCOVER: dict[str, float] = {
    "water": 0.05, "forest": 0.2, "cropland": 0.4, "grassland": 0.2, "bare": 0.1, "urban": 0.05,
}  # fmt: skip
REVISIT_DAYS = 5

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
    # Clouds: bright, nearly flat in the VNIR, lower in the SWIR (ice/water absorption).
    # B10 of thick clouds is set per date from the cloud-top height; cirrus is high and thin.
    "cloud":       [.500, .520, .520, .530, .540, .550, .550, .550, .540, .400, .080, .380, .250],
    "cirrus":      [.440, .450, .450, .450, .450, .450, .450, .450, .440, .350, .300, .300, .220],
}.items()}
# Aerosol + residual Rayleigh path reflectance per unit AOT: mostly blue, almost none in SWIR.
PATH_REFLECTANCE = np.array(
    [.100, .080, .060, .045, .040, .035, .030, .028, .026, .020, .000, .012, .008])
# Shadows keep the diffuse (blue) skylight, so blue darkens less than NIR/SWIR; the
# 1375 nm band sees almost no surface.
SHADOW_BAND_WEIGHT = np.array(
    [.50, .60, .75, .85, .90, .95, 1.0, 1.0, 1.0, .90, .00, 1.0, 1.0])
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
_ASSIGN_ORDER = ("water", "forest", "urban", "cropland", "bare", "grassland")
# Spectral exponent (smoothness) of the field each class is drawn from.
_CLASS_BETA = {
    "water": 4.0,
    "urban": 3.0,
    "cropland": 3.0,
    "forest": 3.2,
    "bare": 3.0,
    "grassland": 3.0,
}

CLOUD_BETA = 2.8  # smooth blobs with some detail
CLOUD_RAMP = 1.0  # edge-to-opaque-core ramp, in units of the field's mean excess over
# the threshold: keeps the thick/thin proportion independent of the cover
CLOUD_ALPHA_MIN = 0.1  # faintest drawn cloud: still visible, so labelled
THICK_ALPHA = 0.5  # opacity from which a cloud is "thick" (class 1)
SHADOW_MIN_ALPHA = 0.3  # shifted opacity from which a shadow is drawn (and labelled)
SHADOW_MAX_DARKENING = 0.6
CIRRUS_PROBABILITY = 0.2
COVER_CONCENTRATION = 1.5  # Beta a+b: low -> many near-clear and near-overcast dates
COVER_SEASONALITY = 0.3  # relative amplitude; cloudiest around the growing-season peak

# Random-stream purposes (keys for np.random.default_rng([seed, purpose, ...])).
_S_LANDCOVER, _S_TEXTURE, _S_SPLIT, _S_DATES, _S_SUN = 1, 2, 3, 4, 5
_S_WEATHER, _S_CLOUDS, _S_NOISE = 10, 11, 12


# --------------------------------------------------------------------------- spec


def _bad(key: str, problem: str, value: Any) -> ConfigError:
    return ConfigError(f"synthetic spec: {key!r} {problem} (got {value!r})")


def _is_number(v: Any) -> bool:
    return not isinstance(v, bool) and isinstance(v, (int, float, np.number)) and math.isfinite(v)


@dataclass(frozen=True)
class SyntheticSpec:
    """Everything that determines a synthetic region (validated on construction)."""

    seed: int = 0
    tiles_x: int = 3
    tiles_y: int = 3
    tile_size: int = 64
    overlap: int = 16
    n_dates: int = 12
    start: str = "2021-01-01"
    end: str = "2021-12-31"
    cloudiness: float = 0.4
    landcover: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_LANDCOVER))
    crs: str = "EPSG:32737"
    origin: tuple[float, float] = (500000.0, 8300000.0)
    resolution: float = 10.0
    val_fraction: float = 0.2
    test_fraction: float = 0.2

    def __post_init__(self) -> None:
        def put(key: str, value: Any) -> None:
            object.__setattr__(self, key, value)

        for key, minimum in (
            ("seed", 0),
            ("tiles_x", 1),
            ("tiles_y", 1),
            ("tile_size", 8),
            ("overlap", 0),
            ("n_dates", 1),
        ):
            v = getattr(self, key)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
                raise _bad(key, "must be an integer", v)
            if v < minimum:
                raise _bad(key, f"must be >= {minimum}", v)
            put(key, int(v))
        if self.overlap >= self.tile_size:
            raise _bad(
                "overlap", f"must be smaller than tile_size ({self.tile_size})", self.overlap
            )
        if self.tiles_x * self.tiles_y < 3:
            raise _bad(
                "tiles_x",
                "* tiles_y must be >= 3 to have a train, val and test tile",
                (self.tiles_x, self.tiles_y),
            )
        for key in ("cloudiness", "resolution", "val_fraction", "test_fraction"):
            v = getattr(self, key)
            if not _is_number(v):
                raise _bad(key, "must be a finite number", v)
            put(key, float(v))
        if not 0.0 <= self.cloudiness <= 1.0:
            raise _bad("cloudiness", "must be in [0, 1]", self.cloudiness)
        if self.resolution <= 0:
            raise _bad("resolution", "must be > 0", self.resolution)
        for key in ("val_fraction", "test_fraction"):
            if not 0.0 < getattr(self, key) < 1.0:
                raise _bad(key, "must be in (0, 1)", getattr(self, key))
        if self.val_fraction + self.test_fraction >= 1.0:
            raise _bad(
                "test_fraction",
                "+ val_fraction must be < 1 to leave training tiles",
                self.test_fraction,
            )
        days = {}
        for key in ("start", "end"):
            v = getattr(self, key)
            try:
                days[key] = v if isinstance(v, date) else date.fromisoformat(str(v))
            except ValueError:
                raise _bad(key, "must be an ISO date YYYY-MM-DD", v) from None
            put(key, days[key].isoformat()[:10])
        if days["end"] < days["start"]:
            raise _bad("end", f"must not be before start ({self.start})", self.end)
        slots = (days["end"] - days["start"]).days // REVISIT_DAYS + 1
        if self.n_dates > slots:
            raise _bad(
                "n_dates",
                f"exceeds the {slots} {REVISIT_DAYS}-day revisits between "
                f"{self.start} and {self.end}",
                self.n_dates,
            )
        self._check_landcover()
        try:
            crs = CRS.from_user_input(self.crs)
        except (CRSError, TypeError, ValueError):
            raise _bad("crs", "is not a valid CRS", self.crs) from None
        if not crs.is_projected:
            raise _bad("crs", "must be a projected (UTM) CRS in metres", self.crs)
        o = self.origin
        if (
            isinstance(o, (str, bytes))
            or not hasattr(o, "__len__")
            or len(o) != 2
            or not all(_is_number(x) for x in o)
        ):
            raise _bad("origin", "must be two finite numbers (upper-left x, y)", o)
        put("origin", (float(o[0]), float(o[1])))

    def _check_landcover(self) -> None:
        lc = self.landcover
        if not isinstance(lc, Mapping) or not lc:
            raise _bad("landcover", "must be a non-empty mapping of class -> weight", lc)
        weights = {}
        for name, w in lc.items():
            if name not in LANDCOVER_CLASSES:
                raise _bad(f"landcover.{name}", f"is not a class; known: {LANDCOVER_CLASSES}", w)
            if not (_is_number(w) and w >= 0):
                raise _bad(f"landcover.{name}", "must be a finite weight >= 0", w)
            weights[name] = float(w)
        if sum(weights.values()) <= 0:
            raise _bad("landcover", "needs at least one positive weight", lc)
        object.__setattr__(self, "landcover", weights)

    def __hash__(self) -> int:  # the landcover dict would make the generated one fail
        return hash(tuple(sorted(self.landcover.items())) + dataclasses.astuple(self)[:9])

    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | None) -> SyntheticSpec:
        """Build from a config mapping (e.g. YAML); unknown keys and bad values raise
        ConfigError naming the key.  A given ``landcover`` replaces the default entirely."""
        if d is None:
            return cls()
        if not isinstance(d, Mapping):
            raise ConfigError(f"synthetic spec must be a mapping, got {type(d).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(str(k) for k in d if k not in known)
        if unknown:
            raise ConfigError(
                f"synthetic spec: unknown key {unknown[0]!r}; "
                f"known keys: {', '.join(sorted(known))}"
            )
        kwargs = dict(d)
        if isinstance(kwargs.get("landcover"), Mapping):
            kwargs["landcover"] = dict(kwargs["landcover"])
        if isinstance(kwargs.get("origin"), list):
            kwargs["origin"] = tuple(kwargs["origin"])
        return cls(**kwargs)

    @property
    def step(self) -> int:
        """Pixels between the upper-left corners of neighbouring tiles."""
        return self.tile_size - self.overlap

    @property
    def region_shape(self) -> tuple[int, int]:
        """(rows, cols) of the full region grid the tiles are cut from."""
        return (
            self.tiles_y * self.step + self.overlap,
            self.tiles_x * self.step + self.overlap,
        )


# --------------------------------------------------------------------------- kernels


def fractal_noise(
    shape: tuple[int, int],
    beta: float,
    rng: np.random.Generator,
    *,
    anisotropy: float = 1.0,
    angle: float = 0.0,
) -> np.ndarray:
    """Zero-mean, unit-std Gaussian field with power spectrum ~ 1/|f|**beta.

    Spectral synthesis on a grid 1.5x larger, then cropped, so the field does not wrap
    around (the FFT makes it periodic).  ``anisotropy`` > 1 stretches structures along
    ``angle`` (radians from the x axis), e.g. for cirrus streaks.
    """
    h, w = int(shape[0]), int(shape[1])
    ph, pw = h + h // 2 + 1, w + w // 2 + 1
    fy = np.fft.fftfreq(ph)[:, None]
    fx = np.fft.rfftfreq(pw)[None, :]
    # Rotate frequencies; compress the along-streak one so structures get long that way.
    u = fx * math.cos(angle) + fy * math.sin(angle)
    v = -fx * math.sin(angle) + fy * math.cos(angle)
    f = np.hypot(u * anisotropy, v)
    f[0, 0] = np.inf  # no DC: mean is set afterwards
    amp = f ** (-beta / 2.0)
    spec = rng.standard_normal(amp.shape) + 1j * rng.standard_normal(amp.shape)
    out = np.fft.irfft2(spec * amp, s=(ph, pw))
    oy, ox = rng.integers(0, ph - h + 1), rng.integers(0, pw - w + 1)
    out = out[oy : oy + h, ox : ox + w]
    out -= out.mean()
    sd = out.std()
    return out / sd if sd > 0 else out


def _smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


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
    present = [c for c in _ASSIGN_ORDER if c in counts]
    for i, name in enumerate(present):
        free = np.flatnonzero(classes == 255)
        if i == len(present) - 1:  # the matrix class takes what is left
            classes[free] = LANDCOVER_CLASSES.index(name)
            break
        score = fractal_noise(shape, _CLASS_BETA[name], rng).ravel()
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


class CloudLayers(NamedTuple):
    alpha: np.ndarray  # (H, W) float32 cloud opacity, 0 = none
    darkening: np.ndarray  # (H, W) float32 shadow darkening 0..SHADOW_MAX_DARKENING
    mask: np.ndarray  # (H, W) uint8 CLEAR / CLOUD / THIN_CLOUD / SHADOW


def cloud_layers(
    shape: tuple[int, int],
    cover: float,
    rng: np.random.Generator,
    *,
    shadow_shift: tuple[int, int] = (0, 0),
    cirrus: bool = False,
) -> CloudLayers:
    """Cloud opacity, shadow darkening and the matching mask for one date.

    Exactly ``cover`` of the pixels get alpha > 0 (fractal field above its quantile);
    alpha ramps smoothly from CLOUD_ALPHA_MIN at the edges to 1 in thick cores.  Cirrus
    dates get a streaky, thin (alpha <= 0.35) veil and no shadows.  Shadows are the
    opacity field shifted by ``shadow_shift`` (rows, cols) = where the sun projects the
    cloud, computed on a padded grid so clouds just outside the region cast shadows in.
    """
    h, w = shape
    dy, dx = int(shadow_shift[0]), int(shadow_shift[1])
    pad = max(abs(dy), abs(dx))
    if cirrus:
        fld = fractal_noise(
            (h + 2 * pad, w + 2 * pad),
            3.2,
            rng,
            anisotropy=5.0,
            angle=float(rng.uniform(0, math.pi)),
        )
    else:
        fld = fractal_noise((h + 2 * pad, w + 2 * pad), CLOUD_BETA, rng)
    centre = fld[pad : pad + h, pad : pad + w]
    if cover <= 0:
        thr = np.inf
    elif cover >= 1:
        thr = -np.inf
    else:
        thr = float(np.quantile(centre, 1.0 - cover))
    over = fld > thr
    if np.isfinite(thr):
        excess = float(np.mean(centre[centre > thr] - thr)) if (centre > thr).any() else 1.0
        ramp = _smoothstep((fld - thr) / (CLOUD_RAMP * excess))
    else:
        ramp = np.ones_like(fld)
    alpha_full = np.where(over, CLOUD_ALPHA_MIN + (1.0 - CLOUD_ALPHA_MIN) * ramp, 0.0)
    if cirrus:
        alpha_full *= rng.uniform(0.15, 0.35)
    alpha = alpha_full[pad : pad + h, pad : pad + w]
    mask = np.full(shape, CLEAR, dtype=np.uint8)
    if cirrus:
        mask[alpha > 0] = THIN_CLOUD
        darkening = np.zeros(shape)
    else:
        mask[alpha > 0] = THIN_CLOUD
        mask[alpha >= THICK_ALPHA] = CLOUD
        # Shadow at q comes from the cloud at q - shift; only drawn where no cloud.
        cast = alpha_full[pad - dy : pad - dy + h, pad - dx : pad - dx + w]
        shadow = (cast >= SHADOW_MIN_ALPHA) & (alpha == 0)
        darkening = np.where(shadow, SHADOW_MAX_DARKENING * cast, 0.0)
        mask[shadow] = SHADOW
    return CloudLayers(alpha.astype(np.float32), darkening.astype(np.float32), mask)


def cloud_spectrum(cirrus: bool, b10: float = 0.08) -> np.ndarray:
    """Cloud end-member; ``b10`` (cirrus band) grows with cloud-top height."""
    if cirrus:
        return SPECTRA["cirrus"].copy()
    spec = SPECTRA["cloud"].copy()
    spec[S2_L1C_BANDS.index("B10")] = b10
    return spec


def compose(
    surface: np.ndarray,
    layers: CloudLayers,
    cloud: np.ndarray,
    *,
    gain: float = 1.0,
    aot: float = 0.0,
) -> np.ndarray:
    """Observed TOA reflectance: shadowed surface seen through the atmosphere, mixed
    with the cloud by its opacity: (1 - a) * (gain * shade * surface + path) + a * cloud."""
    f32 = np.float32
    out = surface.astype(f32) * f32(gain)  # float32 throughout: this is the hot loop
    if layers.darkening.any():
        out *= 1 - layers.darkening[None] * SHADOW_BAND_WEIGHT.astype(f32)[:, None, None]
    out += (aot * PATH_REFLECTANCE).astype(f32)[:, None, None]
    if layers.alpha.any():
        out += layers.alpha[None] * (cloud.astype(f32)[:, None, None] - out)
    return out


def to_dn(reflectance: np.ndarray) -> np.ndarray:
    """Reflectance -> uint16 DN (x REFLECTANCE_SCALE), valid range 1..65535 (0 = nodata)."""
    dn = np.rint(np.nan_to_num(reflectance, nan=0.0) * REFLECTANCE_SCALE)
    return np.clip(dn, NODATA + 1, 65535).astype(np.uint16)


# --------------------------------------------------------------------------- scene plan


@dataclass(frozen=True)
class DateConditions:
    """Per-date weather and atmosphere, drawn from the seed and the calendar date."""

    day: date
    cover: float  # target fraction of pixels with any cloud
    cirrus: bool
    shadow_shift: tuple[int, int]  # (rows, cols) from cloud to its shadow
    gain: float
    aot: float
    cloud_b10: float


def acquisition_dates(spec: SyntheticSpec) -> list[date]:
    """n_dates distinct dates on the 5-day revisit grid, jittered by up to a day."""
    start, end = date.fromisoformat(spec.start), date.fromisoformat(spec.end)
    slots = (end - start).days // REVISIT_DAYS + 1
    rng = np.random.default_rng([spec.seed, _S_DATES])
    picked = np.sort(rng.choice(slots, size=spec.n_dates, replace=False))
    jitter = rng.integers(-1, 2, size=spec.n_dates)  # slots are 5 d apart: stays unique
    days = [
        start + timedelta(days=int(REVISIT_DAYS * s + j))
        for s, j in zip(picked, jitter, strict=True)
    ]
    return sorted(min(max(d, start), end) for d in days)


def season_offset(spec: SyntheticSpec) -> float:
    """Days to shift the (northern) phenology by: half a year south of the equator."""
    h, w = spec.region_shape
    x = spec.origin[0] + w * spec.resolution / 2
    y = spec.origin[1] - h * spec.resolution / 2
    _, lat = warp_transform(CRS.from_user_input(spec.crs), "EPSG:4326", [x], [y])
    return 182.0 if lat[0] < 0 else 0.0


def date_conditions(spec: SyntheticSpec, day: date) -> DateConditions:
    """Weather for one date: cover ~ Beta with a seasonal mean averaging to cloudiness."""
    rng = np.random.default_rng([spec.seed, _S_WEATHER, day.toordinal()])
    c = spec.cloudiness
    if c <= 0 or c >= 1:
        cover = c
    else:
        # The rainy season coincides with the crops' peak: cloudiest then.
        doy = day.timetuple().tm_yday - season_offset(spec)
        peak = PHENOLOGY["cropland"]["peak"]
        m = c * (1 + COVER_SEASONALITY * math.cos(2 * math.pi * (doy - peak) / 365.0))
        m = min(max(m, 0.02), 0.98)
        cover = float(rng.beta(m * COVER_CONCENTRATION, (1 - m) * COVER_CONCENTRATION))
    cirrus = bool(rng.random() < CIRRUS_PROBABILITY)
    # Sun azimuth is roughly fixed for a sun-synchronous orbit; it varies a bit per date.
    base = np.random.default_rng([spec.seed, _S_SUN]).uniform(0, 2 * math.pi)
    ang = base + rng.normal(0.0, 0.2)
    length = rng.uniform(3.0, 15.0)
    shift = (round(length * math.sin(ang)), round(length * math.cos(ang)))
    return DateConditions(
        day=day,
        cover=float(cover),
        cirrus=cirrus,
        shadow_shift=(int(shift[0]), int(shift[1])),
        gain=float(rng.normal(1.0, 0.015)),
        aot=float(rng.lognormal(math.log(0.12), 0.5)),
        cloud_b10=float(rng.uniform(0.01, 0.12)),
    )


def tile_origins(spec: SyntheticSpec) -> dict[str, tuple[int, int]]:
    """Tile id ``r<row>c<col>`` -> (row, col) offset of its upper-left pixel in the region."""
    return {
        f"r{r}c{c}": (r * spec.step, c * spec.step)
        for r in range(spec.tiles_y)
        for c in range(spec.tiles_x)
    }


def assign_splits(spec: SyntheticSpec) -> dict[str, str]:
    """Tile id -> train/val/test, decided per spatial block (2x2 tiles when the grid gives
    at least 8 such blocks, else single tiles); at least one tile of each split."""
    ty, tx = spec.tiles_y, spec.tiles_x
    size = 2 if math.ceil(ty / 2) * math.ceil(tx / 2) >= 8 else 1
    blocks: dict[tuple[int, int], list[str]] = {}
    for r in range(ty):
        for c in range(tx):
            blocks.setdefault((r // size, c // size), []).append(f"r{r}c{c}")
    groups = list(blocks.values())
    n = ty * tx
    target = {
        "test": spec.test_fraction * n,
        "val": spec.val_fraction * n,
        "train": (1.0 - spec.test_fraction - spec.val_fraction) * n,
    }
    count = dict.fromkeys(target, 0)
    out: dict[str, str] = {}
    order = np.random.default_rng([spec.seed, _S_SPLIT]).permutation(len(groups))
    for i, g in enumerate(order):
        # First block of each split is forced; then fill the largest remaining deficit.
        split = (
            ("test", "val", "train")[i]
            if i < 3
            else max(target, key=lambda s: target[s] - count[s])
        )
        count[split] += len(groups[g])
        out.update(dict.fromkeys(groups[g], split))
    return out


# --------------------------------------------------------------------------- rendering


@dataclass(frozen=True, eq=False)
class Scene:
    """The static part of a region: land cover and per-pixel surface properties."""

    landcover: np.ndarray  # (H, W) uint8 codes into LANDCOVER_CLASSES
    parcels: np.ndarray  # (H, W) int32
    phase: np.ndarray  # (H, W) days of phenology shift
    texture: np.ndarray  # (H, W) brightness factor
    green_jitter: np.ndarray  # (H, W)
    season_offset: float


def build_scene(spec: SyntheticSpec) -> Scene:
    """Land cover and the static per-pixel surface fields of the whole region grid."""
    shape = spec.region_shape
    lc, parcels = landcover_map(
        shape, spec.landcover, np.random.default_rng([spec.seed, _S_LANDCOVER])
    )
    rng = np.random.default_rng([spec.seed, _S_TEXTURE])
    # Phenology shift per parcel (sowing date, variety) plus a smooth regional gradient.
    per_parcel = rng.standard_normal(int(parcels.max()) + 1)
    sd = np.zeros(lc.shape)
    for name, p in PHENOLOGY.items():
        sd[lc == LANDCOVER_CLASSES.index(name)] = p["parcel_sd"]
    phase = sd * per_parcel[parcels] + 3.0 * fractal_noise(shape, 3.5, rng)
    tex_sd = np.array([TEXTURE_SD[c] for c in LANDCOVER_CLASSES])[lc]
    texture = 1.0 + tex_sd * fractal_noise(shape, 1.2, rng)
    # Crops differ per parcel (variety, fertiliser) and within it; grass/forest per pixel.
    jitter = (
        0.04 * fractal_noise(shape, 1.8, rng) + 0.05 * rng.standard_normal(per_parcel.size)[parcels]
    )
    return Scene(lc, parcels, phase, np.clip(texture, 0.5, 1.5), jitter, season_offset(spec))


def render_date(
    spec: SyntheticSpec, scene: Scene, cond: DateConditions, *, clouds: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """(13, H, W) uint16 DN and (H, W) uint8 mask of the whole region on one date.

    ``clouds=False`` renders the same date cloud-free (same atmosphere and noise).
    """
    doy = cond.day.timetuple().tm_yday - scene.season_offset
    surface = surface_reflectance(
        scene.landcover,
        doy,
        phase=scene.phase,
        texture=scene.texture,
        green_jitter=scene.green_jitter,
    )
    shape = spec.region_shape
    crng = np.random.default_rng([spec.seed, _S_CLOUDS, cond.day.toordinal()])
    layers = cloud_layers(
        shape,
        cond.cover if clouds else 0.0,
        crng,
        shadow_shift=cond.shadow_shift,
        cirrus=cond.cirrus,
    )
    obs = compose(
        surface, layers, cloud_spectrum(cond.cirrus, cond.cloud_b10), gain=cond.gain, aot=cond.aot
    )
    nrng = np.random.default_rng([spec.seed, _S_NOISE, cond.day.toordinal()])
    # Signal-dependent sensor noise (dark-signal floor + shot-noise-like term).
    obs += nrng.standard_normal(obs.shape, dtype=np.float32) * (0.0008 + 0.003 * obs)
    return to_dn(obs), layers.mask


def generate_region(
    region: str, spec: SyntheticSpec, dest_dir: str | os.PathLike[str]
) -> pd.DataFrame:
    """Write every tile and date of a synthetic region as GeoTIFFs; return its manifest.

    Files: ``dest_dir/<tile>/<date>_S2.tif`` (13 x uint16 DN, nodata 0) and
    ``dest_dir/<tile>/<date>_CLD.tif`` (uint8 mask, nodata 255).  Paths in the manifest
    are ``dest_dir`` as given joined with those names.
    """
    if not isinstance(region, str) or not region:
        raise ConfigError(f"synthetic region name must be a non-empty string, got {region!r}")
    dest = Path(dest_dir)
    crs = CRS.from_user_input(spec.crs)
    scene = build_scene(spec)
    splits = assign_splits(spec)
    origins = tile_origins(spec)
    res, ts = spec.resolution, spec.tile_size
    rows = []
    # GDAL compresses with the GIL released: threads write one date's tiles while the
    # next date renders (only one date in flight, so memory stays bounded).
    jobs: list[Future[None]] = []
    with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool:
        for day in acquisition_dates(spec):
            iso = day.isoformat()
            dn, mask = render_date(spec, scene, date_conditions(spec, day))
            for job in jobs:
                job.result()  # re-raises write errors
            jobs = []
            for tile, (r0, c0) in origins.items():
                left, top = spec.origin[0] + c0 * res, spec.origin[1] - r0 * res
                image = dest / tile / f"{iso}_S2.tif"
                mpath = dest / tile / f"{iso}_CLD.tif"
                window = (slice(r0, r0 + ts), slice(c0, c0 + ts))
                transform = Affine(res, 0.0, left, 0.0, -res, top)
                jobs.append(
                    pool.submit(
                        _write_tile,
                        image,
                        mpath,
                        dn[(slice(None), *window)],
                        mask[window],
                        crs,
                        transform,
                        iso,
                    )
                )
                rows.append(
                    {
                        "region": region,
                        "source": SOURCE,
                        "tile": tile,
                        "date": iso,
                        "split": splits[tile],
                        "image": str(image),
                        "mask": str(mpath),
                        "crs": crs.to_string(),
                        "left": left,
                        "bottom": top - ts * res,
                        "right": left + ts * res,
                        "top": top,
                        "width": ts,
                        "height": ts,
                    }
                )
        for job in jobs:
            job.result()
    return validate_manifest(pd.DataFrame(rows, columns=list(COLUMNS)), where=f"synthetic {region}")


def _write_tile(
    image: Path,
    mask_path: Path,
    dn: np.ndarray,
    mask: np.ndarray,
    crs: CRS,
    transform: Affine,
    iso: str,
) -> None:
    h, w = mask.shape
    tags = {"DATE": iso, "SOURCE": SOURCE}
    prof = geotiff_profile(
        crs=crs,
        transform=transform,
        width=w,
        height=h,
        count=len(S2_L1C_BANDS),
        dtype="uint16",
        nodata=NODATA,
    )
    write_raster(image, dn, prof, band_names=S2_L1C_BANDS, tags=tags)
    mprof = geotiff_profile(
        crs=crs, transform=transform, width=w, height=h, count=1, dtype="uint8", nodata=MASK_NODATA
    )
    write_raster(
        mask_path,
        mask,
        mprof,
        band_names=["cloud_mask"],
        tags={**tags, "CLASSES": "0=clear,1=cloud,2=thin_cloud,3=shadow"},
    )

"""Synthetic Sentinel-1 (C-band, IW GRD): VV and VH backscatter in dB of a region's scene.

Radar sees the same ground as the optical scene but none of its weather: the land cover after
the events of the day (:mod:`~cloudfree.tiles.synthetic.changes`), the vegetation of the same
phenology (:func:`~cloudfree.tiles.synthetic.surface.greenness`) and a soil moisture that
rises with rain and dries over days.  Per pixel, a water-cloud-like model mixes a canopy and
a soil term in linear power, ``sigma0 = canopy * (1 - t2) + soil * t2`` with the two-way
canopy transmissivity ``t2 = exp(-CANOPY_DEPTH * cover)``; the soil term grows with its
wetness, the one of open water with the wind.  Multiplicative speckle (gamma-distributed
intensity of ENL 4.4) is applied in linear power before the conversion to dB.

Every draw comes from the radar streams of :class:`~cloudfree.tiles.synthetic.spec.Stream`
(S1 dates, rain, soil, wind, speckle), which the optical weather never touches: the same
surface gives bit-identical S1 whatever the ``cloudiness``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np

from cloudfree.tiles.s1align import nearest_acquisitions
from cloudfree.tiles.synthetic.changes import WET_DAYS, Change
from cloudfree.tiles.synthetic.fields import fractal_noise
from cloudfree.tiles.synthetic.scene import Scene
from cloudfree.tiles.synthetic.spec import Stream, SyntheticSpec
from cloudfree.tiles.synthetic.surface import LANDCOVER_CLASSES, PHENOLOGY, greenness

ENL = 4.4  # equivalent number of looks of Sentinel-1 IW GRD (high resolution, 10 m)

# Approximate C-band sigma0 in dB (VV, VH) at IW incidence angles (30-45 deg): round values
# within the ranges typically reported for Sentinel-1 over these covers (crops: Veloso et al.
# 2017, Remote Sens. Environ. 199; vegetation and soil moisture: Vreugdenhil et al. 2018,
# Remote Sens. 10(9); calm open water below about -18 dB VV, the usual flood-mapping
# threshold).  Not calibrated to any site: magnitudes and contrasts, not exact values.
# Materials: what a pixel's radar return is made of; the land-cover classes map onto the
# first six (same names) and the change events move pixels between them.
# fmt: off
MATERIALS: tuple[str, ...] = (
    "water", "forest", "cropland", "grassland", "bare", "urban", "cleared", "regrowth",
)
# The canopy term at full cover: volume scattering of leaves and stems (VH most of all).
CANOPY_DB = np.array([
    [-20.0, -27.0],  # water: no canopy (unused: cover 0)
    [-7.0, -13.0],   # forest: crowns and trunks
    [-10.0, -15.0],  # cropland: a dense green crop (maize, wheat at heading)
    [-11.0, -17.5],  # grassland: short, less volume than crops
    [-15.0, -24.0],  # bare: no canopy (unused)
    [-3.0, -10.0],   # urban: no canopy (unused)
    [-12.0, -20.0],  # cleared: no canopy (unused)
    [-11.0, -17.5],  # regrowth after a clear-cut: grass and shrubs
], dtype=np.float32)
# The soil (or water, or built) term when dry, or at the mean wind for water.
SOIL_DB = np.array([
    [-20.0, -27.0],  # water: specular, very dark
    [-13.0, -21.0],  # forest floor
    [-14.0, -22.0],  # tilled field soil
    [-14.0, -22.0],  # soil under grass
    [-15.0, -24.0],  # bare ground, rock and sand: smoother than tilled soil
    [-3.0, -10.0],   # urban: double bounce off walls and streets
    [-12.0, -20.0],  # cleared ground: rough, with slash, stumps or rubble
    [-12.0, -20.0],  # the cleared ground under regrowth
], dtype=np.float32)
# fmt: on
# Wet soil raises sigma0 by about 0.15-0.25 dB per % volumetric moisture: dry (~5 %) to
# saturated (~35 %) is this many dB (VV, VH); water and buildings do not respond.
WET_DB = np.array([5.0, 4.0], dtype=np.float32)
MOISTURE_SENSITIVE = np.array([0, 1, 1, 1, 1, 0, 1, 1], dtype=np.float32)
# Canopy optical depth (two-way, at full cover): a full crop or forest hides ~90 % of the soil.
CANOPY_DEPTH = 2.5
# Wind roughens open water: dB per m/s away from the mean wind (VV, VH), and its limits.
WIND_DB_PER_MS = np.array([0.6, 0.4], dtype=np.float32)
WIND_MEAN = 5.0  # m/s, the Weibull scale of the wind per date (shape 2)
WIND_DB_LIMITS = (-3.0, 4.0)
TEXTURE_POWER = 2.0  # radar texture: the optical brightness texture to this power
# Rain: a wet day's probability over the season (the rainy season around the crops' peak),
# its amount, and the soil's response: wetness 0 (dry) .. 1 (saturated) gains rain /
# SATURATION_MM and decays by e every DRYING_DAYS.
RAIN_PROBABILITY = 0.25
RAIN_SEASONALITY = 0.5
RAIN_MEAN_MM = 8.0
SATURATION_MM = 25.0
DRYING_DAYS = 4.0
SPINUP_DAYS = 60  # the rain series starts this long before the period: no dry start
RETENTION_SD = 0.3  # static soil-moisture retention (valleys hold water): relative SD


def material_map(landcover: np.ndarray) -> np.ndarray:
    """(H, W) uint8 codes into :data:`MATERIALS` of a land-cover map (the same names)."""
    codes = np.array([MATERIALS.index(c) for c in LANDCOVER_CLASSES], dtype=np.uint8)
    return codes[landcover]


def vegetation_cover(scene: Scene, doy: float) -> np.ndarray:
    """(H, W) float32 green-vegetation fraction on a day of year: the optical scene's
    phenology (per-pixel phase and jitter), 0 where nothing grows."""
    cover = np.zeros(scene.landcover.shape, dtype=np.float32)
    for name in PHENOLOGY:
        sel = scene.landcover == LANDCOVER_CLASSES.index(name)
        if sel.any():
            g = greenness(name, doy - scene.phase[sel]) + scene.green_jitter[sel]
            cover[sel] = np.clip(g, 0.0, 1.0)
    return cover


def apply_radar_changes(
    material: np.ndarray, cover: np.ndarray, wetness: np.ndarray, changes: list[Change], day: int
) -> None:
    """What the change events of :mod:`~cloudfree.tiles.synthetic.changes` make of the
    ground by day ``day`` (ordinal), in place: a clear-cut is cleared ground with grass
    growing back, a fire burns the canopy (which then recovers), a flood is open water and
    then wet soil, construction is cleared ground and then a building."""
    for ch in changes:
        age = day - ch.start
        if age < 0:
            continue
        m = ch.mask
        if ch.kind == "clearcut":  # as the optical: soil, regrowth to 0.7 green cover
            material[m] = MATERIALS.index("regrowth")
            cover[m] = 0.7 * min(1.0, age / ch.duration)
        elif ch.kind == "fire":  # the canopy burnt, growing back as the scar fades
            cover[m] *= 1.0 - max(0.0, 1.0 - age / ch.duration)
        elif ch.kind == "flood":
            if age < ch.duration:
                material[m], cover[m] = MATERIALS.index("water"), 0.0
            elif age < ch.duration + WET_DAYS:
                drying = 1.0 - (age - ch.duration) / WET_DAYS
                wetness[m] = np.maximum(wetness[m], drying)
        else:  # construction
            built = age >= ch.duration
            material[m] = MATERIALS.index("urban" if built else "cleared")
            cover[m] = 0.0


def backscatter(
    material: np.ndarray,
    cover: np.ndarray,
    wetness: np.ndarray | float,
    *,
    wind: float = WIND_MEAN,
    texture: np.ndarray | None = None,
) -> np.ndarray:
    """(2, H, W) float32 sigma0 (VV, VH) in linear power, speckle-free.

    ``material`` indexes :data:`MATERIALS`, ``cover`` (0..1) is the green-vegetation cover,
    ``wetness`` (0..1) the soil's, ``wind`` (m/s) roughens open water and ``texture``
    (brightness factor, 1 = none) varies the return within a cover."""
    f32 = np.float32
    t2 = np.exp(-f32(CANOPY_DEPTH) * np.asarray(cover, dtype=f32))
    wet = np.asarray(wetness, dtype=f32) * MOISTURE_SENSITIVE[material]
    is_water = material == MATERIALS.index("water")
    out = np.empty((2, *material.shape), dtype=f32)
    for p in range(2):
        soil_db = SOIL_DB[material, p] + WET_DB[p] * wet
        if is_water.any():
            rough = float(np.clip(WIND_DB_PER_MS[p] * (wind - WIND_MEAN), *WIND_DB_LIMITS))
            soil_db[is_water] += f32(rough)
        canopy = f32(10.0) ** (CANOPY_DB[material, p] / f32(10.0))
        out[p] = canopy * (1 - t2) + f32(10.0) ** (soil_db / f32(10.0)) * t2
    if texture is not None:
        out *= np.asarray(texture, dtype=f32)[None] ** f32(TEXTURE_POWER)
    return out


def speckle(sigma: np.ndarray, rng: np.random.Generator, looks: float = ENL) -> np.ndarray:
    """Intensity with multiplicative speckle: ``sigma`` times gamma(looks, 1 / looks) noise
    (mean 1, mean / std = sqrt(looks)), float32."""
    noise = rng.standard_gamma(looks, size=sigma.shape, dtype=np.float32) / np.float32(looks)
    return sigma.astype(np.float32) * noise


def to_db(intensity: np.ndarray) -> np.ndarray:
    """10 log10 of linear power (float32; zero clipped to -50 dB)."""
    return (10.0 * np.log10(np.maximum(intensity, np.float32(1e-5)))).astype(np.float32)


def s1_acquisitions(spec: SyntheticSpec) -> list[date]:
    """Sentinel-1 acquisition days: every ``s1_revisit_days`` from a phase drawn from the
    seed, over the period widened by ``s1_max_days`` on both sides (so the first and last S2
    dates can match), less an ``s1_outages`` share of them (drawn per acquisition day)."""
    start = date.fromisoformat(spec.start) - timedelta(days=spec.s1_max_days)
    end = date.fromisoformat(spec.end) + timedelta(days=spec.s1_max_days)
    phase = int(np.random.default_rng([spec.seed, Stream.S1_DATES]).integers(spec.s1_revisit_days))
    out = []
    day = start + timedelta(days=phase)
    while day <= end:
        draw = np.random.default_rng([spec.seed, Stream.S1_DATES, day.toordinal()]).random()
        if draw >= spec.s1_outages:
            out.append(day)
        day += timedelta(days=spec.s1_revisit_days)
    return out


def matched_s1(spec: SyntheticSpec, s2_days: list[date]) -> list[date | None]:
    """The S1 acquisition of each S2 date: the nearest within ``s1_max_days`` (the earlier
    of two equally near), None where there is none."""
    s1_days = s1_acquisitions(spec)
    found = nearest_acquisitions(
        [d.isoformat() for d in s2_days], [d.isoformat() for d in s1_days], spec.s1_max_days
    )
    return [None if i is None else s1_days[i] for i in found]


@dataclass(frozen=True, eq=False)
class RadarScene:
    """What the radar adds to a scene: the soil's wetness per day and its retention."""

    first_day: int  # ordinal of wetness[0]
    wetness: np.ndarray  # (days,) regional soil wetness 0..1 from the rain series
    retention: np.ndarray  # (H, W) float32 local multiplier of the wetness

    def wetness_on(self, day: int) -> float:
        """The regional wetness of day ``day`` (ordinal; the nearest end outside the series)."""
        return float(self.wetness[min(max(day - self.first_day, 0), self.wetness.size - 1)])


def rain_series(spec: SyntheticSpec, first: date, days: int, season_offset: float) -> np.ndarray:
    """(days,) daily rain in mm from day ``first`` on: wet days of a seasonal probability,
    exponential amounts; drawn from the seed's own rain stream."""
    rng = np.random.default_rng([spec.seed, Stream.RAIN])
    doy = np.array([(first + timedelta(days=i)).timetuple().tm_yday for i in range(days)])
    peak = PHENOLOGY["cropland"]["peak"]
    season = np.cos(2 * math.pi * (doy - season_offset - peak) / 365.0)
    p_wet = RAIN_PROBABILITY * (1 + RAIN_SEASONALITY * season)
    wet = rng.random(days) < p_wet
    return np.where(wet, rng.exponential(RAIN_MEAN_MM, days), 0.0)


def soil_wetness(rain: np.ndarray) -> np.ndarray:
    """(days,) soil wetness 0..1 of a daily rain series: a bucket filled by rain
    (SATURATION_MM fills it) that dries exponentially (DRYING_DAYS e-folding)."""
    keep = math.exp(-1.0 / DRYING_DAYS)
    out = np.empty(rain.size)
    w = 0.0
    for i, mm in enumerate(rain):
        w = min(1.0, w * keep + mm / SATURATION_MM)
        out[i] = w
    return out


def build_radar(spec: SyntheticSpec, scene: Scene) -> RadarScene:
    """The rain-driven soil wetness of the period (with its spin-up) and the static
    retention field of the region grid."""
    first = date.fromisoformat(spec.start) - timedelta(days=SPINUP_DAYS + spec.s1_max_days)
    last = date.fromisoformat(spec.end) + timedelta(days=spec.s1_max_days)
    days = (last - first).days + 1
    wet = soil_wetness(rain_series(spec, first, days, scene.season_offset))
    rng = np.random.default_rng([spec.seed, Stream.SOIL])
    retention = 1.0 + RETENTION_SD * fractal_noise(scene.landcover.shape, 3.0, rng)
    return RadarScene(first.toordinal(), wet, np.clip(retention, 0.3, 2.0).astype(np.float32))


def wind_speed(spec: SyntheticSpec, day: date) -> float:
    """Wind over water on an S1 date (m/s, Weibull of shape 2 and scale WIND_MEAN)."""
    rng = np.random.default_rng([spec.seed, Stream.WIND, day.toordinal()])
    return float(WIND_MEAN * rng.weibull(2.0))


def render_s1(spec: SyntheticSpec, scene: Scene, radar: RadarScene, day: date) -> np.ndarray:
    """(2, H, W) float32 VV, VH in dB of the whole region grid on S1 acquisition day ``day``:
    the ground after that day's events, its vegetation and soil wetness, with speckle."""
    ordinal = day.toordinal()
    material = material_map(scene.landcover)
    cover = vegetation_cover(scene, day.timetuple().tm_yday - scene.season_offset)
    wetness = np.minimum(radar.wetness_on(ordinal) * radar.retention, np.float32(1.0))
    apply_radar_changes(material, cover, wetness, scene.changes, ordinal)
    sigma = backscatter(material, cover, wetness, wind=wind_speed(spec, day), texture=scene.texture)
    rng = np.random.default_rng([spec.seed, Stream.SPECKLE, ordinal])
    return to_db(speckle(sigma, rng))

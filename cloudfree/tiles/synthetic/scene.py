"""A synthetic region's scene and its rendering, one date at a time.

:func:`build_scene` draws the static part of a region (land cover, parcels, phenology phase,
texture) and its change events; :func:`render_date` renders one date of the whole region grid
as uint16 DN with its cloud mask: the surface after the events of the date, seen through the
date's atmosphere (an aerosol optical thickness that varies smoothly in space), shadows and
clouds (:func:`compose`), plus sensor noise, the 20 m and 60 m bands averaged over their
native pixels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cloudfree.bands import S2_L1C_BANDS, to_dn
from cloudfree.tiles.synthetic.changes import Change, apply_changes, plan_changes
from cloudfree.tiles.synthetic.fields import fractal_noise
from cloudfree.tiles.synthetic.spec import Stream, SyntheticSpec
from cloudfree.tiles.synthetic.surface import (
    LANDCOVER_CLASSES,
    PHENOLOGY,
    TEXTURE_SD,
    landcover_map,
    season_offset,
    surface_reflectance,
)
from cloudfree.tiles.synthetic.weather import (
    CloudLayers,
    DateConditions,
    cloud_layers,
    cloud_spectrum,
)

# fmt: off
# Aerosol + residual Rayleigh path reflectance per unit AOT: mostly blue, almost none in SWIR.
PATH_REFLECTANCE = np.array(
    [.100, .080, .060, .045, .040, .035, .030, .028, .026, .020, .000, .012, .008])
# Shadows keep the diffuse (blue) skylight, so blue darkens less than NIR/SWIR; the
# 1375 nm band sees almost no surface.
SHADOW_BAND_WEIGHT = np.array(
    [.50, .60, .75, .85, .90, .95, 1.0, 1.0, 1.0, .90, .00, 1.0, 1.0])
# Native pixel size of each band in metres (L1C order): 10, 20 or 60 m.
NATIVE_RESOLUTION = np.array([60, 10, 10, 10, 20, 20, 20, 10, 20, 60, 60, 20, 20])
# fmt: on
HAZE_BETA = 3.5  # smoothness of the aerosol field: variations over kilometres


def compose(
    surface: np.ndarray,
    layers: CloudLayers,
    cloud: np.ndarray,
    *,
    gain: float = 1.0,
    aot: float | np.ndarray = 0.0,
) -> np.ndarray:
    """Observed TOA reflectance: shadowed surface seen through the atmosphere, mixed
    with the cloud by its opacity: (1 - a) * (gain * shade * surface + path) + a * cloud.
    ``aot`` is one value or an (H, W) field."""
    f32 = np.float32
    out = surface.astype(f32) * f32(gain)  # float32 throughout: this is the hot loop
    if layers.darkening.any():
        out *= 1 - layers.darkening[None] * SHADOW_BAND_WEIGHT.astype(f32)[:, None, None]
    path = PATH_REFLECTANCE.astype(f32)[:, None, None]
    out += path * (np.asarray(aot, dtype=f32)[None] if np.ndim(aot) else f32(aot))
    if layers.alpha.any():
        out += layers.alpha[None] * (cloud.astype(f32)[:, None, None] - out)
    return out


@dataclass(frozen=True, eq=False)
class Scene:
    """The static part of a region: land cover and per-pixel surface properties."""

    landcover: np.ndarray  # (H, W) uint8 codes into LANDCOVER_CLASSES
    parcels: np.ndarray  # (H, W) int32
    phase: np.ndarray  # (H, W) days of phenology shift
    texture: np.ndarray  # (H, W) brightness factor
    green_jitter: np.ndarray  # (H, W)
    season_offset: float
    changes: list[Change]  # land-cover change events


def build_scene(spec: SyntheticSpec) -> Scene:
    """Land cover and the static per-pixel surface fields of the whole region grid."""
    shape = spec.region_shape
    lc, parcels = landcover_map(
        shape, spec.landcover, np.random.default_rng([spec.seed, Stream.LANDCOVER])
    )
    rng = np.random.default_rng([spec.seed, Stream.TEXTURE])
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
    changes = plan_changes(spec, lc, parcels, np.random.default_rng([spec.seed, Stream.CHANGES]))
    texture = np.clip(texture, 0.5, 1.5)
    return Scene(lc, parcels, phase, texture, jitter, season_offset(spec), changes)


def haze_field(spec: SyntheticSpec, cond: DateConditions) -> float | np.ndarray:
    """The date's aerosol optical thickness: its mean ``cond.aot`` times a smooth lognormal
    field of log-standard deviation ``spec.haze`` (mean 1); the mean alone without haze."""
    if spec.haze <= 0:
        return cond.aot
    rng = np.random.default_rng([spec.seed, Stream.HAZE, cond.day.toordinal()])
    f = fractal_noise(spec.region_shape, HAZE_BETA, rng)
    return cond.aot * np.exp(spec.haze * f - spec.haze**2 / 2)


def block_mean(band: np.ndarray, factor: int) -> np.ndarray:
    """A band seen through pixels ``factor`` times larger, aligned to the grid's corner:
    the mean of each block (partial blocks at the edges average what they hold), repeated
    back onto the grid."""
    h, w = band.shape
    ph, pw = -(-h // factor) * factor, -(-w // factor) * factor
    total = np.zeros((ph, pw), dtype=np.float64)
    count = np.zeros((ph, pw), dtype=np.float64)
    total[:h, :w], count[:h, :w] = band, 1.0
    shape = (ph // factor, factor, pw // factor, factor)
    mean = total.reshape(shape).sum(axis=(1, 3)) / count.reshape(shape).sum(axis=(1, 3))
    return np.repeat(np.repeat(mean, factor, 0), factor, 1)[:h, :w].astype(band.dtype)


def native_resolution(obs: np.ndarray, resolution: float) -> np.ndarray:
    """(13, H, W) reflectance with each band averaged over its native pixel size."""
    for i, metres in enumerate(NATIVE_RESOLUTION[: len(S2_L1C_BANDS)]):
        factor = round(float(metres) / resolution)
        if factor > 1:
            obs[i] = block_mean(obs[i], factor)
    return obs


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
    apply_changes(surface, scene.changes, cond.day.toordinal(), scene.texture)
    shape = spec.region_shape
    crng = np.random.default_rng([spec.seed, Stream.CLOUDS, cond.day.toordinal()])
    layers = cloud_layers(
        shape,
        cond.cover if clouds else 0.0,
        crng,
        mask_errors=spec.mask_errors,
        shadow_shift=cond.shadow_shift,
        cirrus=cond.cirrus,
    )
    cloud = cloud_spectrum(cond.cirrus, cond.cloud_b10)
    obs = compose(surface, layers, cloud, gain=cond.gain, aot=haze_field(spec, cond))
    nrng = np.random.default_rng([spec.seed, Stream.NOISE, cond.day.toordinal()])
    # Signal-dependent sensor noise (dark-signal floor + shot-noise-like term).
    obs += nrng.standard_normal(obs.shape, dtype=np.float32) * (0.0008 + 0.003 * obs)
    if spec.native_resolution:
        obs = native_resolution(obs, spec.resolution)
    return to_dn(obs), layers.mask

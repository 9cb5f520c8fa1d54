"""The weather of a synthetic region: acquisition dates, per-date conditions and clouds.

Each date's cloud cover, cirrus, sun direction (shadow shift) and atmosphere are drawn from
the seed and the calendar date; :func:`cloud_layers` turns a cover into cloud opacity, shadow
darkening and the matching cloud mask (kernels on arrays).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date, timedelta
from typing import NamedTuple

import numpy as np

from cloudfree.bands import CLEAR, CLOUD, S2_L1C_BANDS, SHADOW, THIN_CLOUD
from cloudfree.errors import ConfigError
from cloudfree.tiles.synthetic.fields import fractal_noise
from cloudfree.tiles.synthetic.spec import REVISIT_DAYS, Stream, SyntheticSpec
from cloudfree.tiles.synthetic.surface import PHENOLOGY, season_offset

# fmt: off
# Clouds: bright, nearly flat in the VNIR, lower in the SWIR (ice/water absorption).
# B10 of thick clouds is set per date from the cloud-top height; cirrus is high and thin.
# Bands B01 B02 B03 B04 B05 B06 B07 B08 B8A B09 B10 B11 B12 (TOA reflectance).
CLOUD_SPECTRA: dict[str, np.ndarray] = {k: np.array(v) for k, v in {
    "cloud":       [.500, .520, .520, .530, .540, .550, .550, .550, .540, .400, .080, .380, .250],
    "cirrus":      [.440, .450, .450, .450, .450, .450, .450, .450, .440, .350, .300, .300, .220],
}.items()}
# fmt: on

CLOUD_BETA = 2.8  # smooth blobs with some detail
CLOUD_RAMP = 1.0  # edge-to-opaque-core ramp, in units of the field's mean excess over
# the threshold: keeps the thick/thin proportion independent of the cover
CLOUD_ALPHA_MIN = 0.1  # faintest labelled cloud
THICK_ALPHA = 0.5  # opacity from which a cloud is "thick" (class 1)
SHADOW_MIN_ALPHA = 0.3  # shifted opacity from which a shadow is labelled
SHADOW_MAX_DARKENING = 0.6
# With mask errors: a faint halo around clouds (opacity below CLOUD_ALPHA_MIN, over this much
# more area than the labelled cloud), shadows drawn from this shifted opacity on, and cirrus
# labelled only from this opacity on: drawn, but labelled clear, as real masks miss them.
HALO_AREA = 0.6
SHADOW_DRAW_ALPHA = 0.15
CIRRUS_LABEL_ALPHA = 0.05
# Acquisitions lost to outages come in runs of this mean length (revisit slots).
OUTAGE_RUN = 3.0
CIRRUS_PROBABILITY = 0.2
COVER_CONCENTRATION = 1.5  # Beta a+b: low -> many near-clear and near-overcast dates
COVER_SEASONALITY = 0.3  # relative amplitude; cloudiest around the growing-season peak


def _smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


class CloudLayers(NamedTuple):
    """One date's clouds and shadows on the region grid, and the mask they make."""

    alpha: np.ndarray  # (H, W) float32 cloud opacity, 0 = none
    darkening: np.ndarray  # (H, W) float32 shadow darkening 0..SHADOW_MAX_DARKENING
    mask: np.ndarray  # (H, W) uint8 CLEAR / CLOUD / THIN_CLOUD / SHADOW


def cloud_layers(
    shape: tuple[int, int],
    cover: float,
    rng: np.random.Generator,
    *,
    mask_errors: bool,
    shadow_shift: tuple[int, int] = (0, 0),
    cirrus: bool = False,
) -> CloudLayers:
    """Cloud opacity, shadow darkening and the matching mask for one date.

    Exactly ``cover`` of the pixels get alpha >= CLOUD_ALPHA_MIN (fractal field above its
    quantile); alpha ramps smoothly from there at the edges to 1 in thick cores.  Cirrus
    dates get a streaky, thin (alpha <= 0.35) veil and no shadows.  Shadows are the
    opacity field shifted by ``shadow_shift`` (rows, cols) = where the sun projects the
    cloud, computed on a padded grid so clouds just outside the region cast shadows in.
    With ``mask_errors``, what real masks miss is drawn but labelled clear: a faint halo
    around the clouds, the faint part of cirrus and the light edges of shadows.
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
    if mask_errors and np.isfinite(thr) and not cirrus:
        halo = float(np.quantile(centre, max(0.0, 1.0 - cover * (1.0 + HALO_AREA))))
        if halo < thr:
            faint = CLOUD_ALPHA_MIN * _smoothstep((fld - halo) / (thr - halo))
            alpha_full = np.where(over, alpha_full, np.where(fld > halo, faint, 0.0))
    if cirrus:
        alpha_full *= rng.uniform(0.15, 0.35)
    alpha = alpha_full[pad : pad + h, pad : pad + w]
    mask = np.full(shape, CLEAR, dtype=np.uint8)
    if cirrus:
        mask[alpha > (CIRRUS_LABEL_ALPHA if mask_errors else 0.0)] = THIN_CLOUD
        darkening = np.zeros(shape)
    else:
        mask[alpha >= CLOUD_ALPHA_MIN] = THIN_CLOUD
        mask[alpha >= THICK_ALPHA] = CLOUD
        # Shadow at q comes from the cloud at q - shift; drawn where no cloud is labelled
        # (under a faint halo too).
        cast = alpha_full[pad - dy : pad - dy + h, pad - dx : pad - dx + w]
        floor = SHADOW_DRAW_ALPHA if mask_errors else SHADOW_MIN_ALPHA
        drawn = (cast >= floor) & (alpha < CLOUD_ALPHA_MIN)
        darkening = np.where(drawn, SHADOW_MAX_DARKENING * cast, 0.0)
        mask[drawn & (cast >= SHADOW_MIN_ALPHA)] = SHADOW
    return CloudLayers(alpha.astype(np.float32), darkening.astype(np.float32), mask)


def cloud_spectrum(cirrus: bool, b10: float = 0.08) -> np.ndarray:
    """Cloud end-member; ``b10`` (cirrus band) grows with cloud-top height."""
    if cirrus:
        return CLOUD_SPECTRA["cirrus"].copy()
    spec = CLOUD_SPECTRA["cloud"].copy()
    spec[S2_L1C_BANDS.index("B10")] = b10
    return spec


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


def revisits(n: int, rng: np.random.Generator, outages: float) -> np.ndarray:
    """(n,) bool: which revisit slots have an acquisition.  A two-state chain loses an
    ``outages`` share of them in runs of OUTAGE_RUN slots on average."""
    if outages <= 0:
        return np.ones(n, dtype=bool)
    end = 1.0 / OUTAGE_RUN
    begin = end * outages / (1.0 - outages)
    draws = rng.random(n + 1)
    ok = np.ones(n, dtype=bool)
    down = draws[0] < outages
    for i in range(n):
        ok[i] = not down
        down = draws[i + 1] >= end if down else draws[i + 1] < begin
    return ok


def acquisition_dates(spec: SyntheticSpec) -> list[date]:
    """n_dates distinct dates on a 5-day revisit grid of the seed's phase, jittered by up to
    a day, with outages and without ``exclude_dates``.

    Raises ConfigError naming ``n_dates`` when the revisits left hold fewer dates."""
    start, end = date.fromisoformat(spec.start), date.fromisoformat(spec.end)
    rng = np.random.default_rng([spec.seed, Stream.DATES])
    phase = int(rng.integers(0, REVISIT_DAYS))
    slots = max(0, ((end - start).days - phase) // REVISIT_DAYS + 1)
    ok = revisits(slots, rng, spec.outages)
    jitter = rng.integers(-1, 2, size=slots)  # slots are 5 d apart: dates stay unique
    excluded = {date.fromisoformat(d) for d in spec.exclude_dates}
    days = [start + timedelta(days=phase + REVISIT_DAYS * k + int(j)) for k, j in enumerate(jitter)]
    free = [d for k, d in enumerate(days) if ok[k] and start <= d <= end and d not in excluded]
    if len(free) < spec.n_dates:
        raise ConfigError(
            f"synthetic.n_dates: {spec.n_dates} dates asked, but seed {spec.seed} has only "
            f"{len(free)} acquisitions between {spec.start} and {spec.end} after outages "
            f"({spec.outages}) and excluded dates; lower n_dates or outages, or widen the period"
        )
    picked = np.sort(rng.choice(len(free), size=spec.n_dates, replace=False))
    return [free[i] for i in picked]


def date_conditions(spec: SyntheticSpec, day: date) -> DateConditions:
    """Weather for one date: cover ~ Beta with a seasonal mean averaging to cloudiness."""
    rng = np.random.default_rng([spec.seed, Stream.WEATHER, day.toordinal()])
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
    base = np.random.default_rng([spec.seed, Stream.SUN]).uniform(0, 2 * math.pi)
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

"""Land-cover change events of a synthetic region: clear-cuts, fires, floods, construction.

:func:`plan_changes` draws a region's events once (where, what, when); :func:`apply_changes`
turns the clear-sky surface of a date into what it is after the events that have happened by
then.  Each event starts on its own day, so a series shows a sudden change that
interpolation across a cloudy gap cannot know of.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date

import numpy as np

from cloudfree.tiles.synthetic.fields import fractal_noise
from cloudfree.tiles.synthetic.spec import SyntheticSpec
from cloudfree.tiles.synthetic.surface import LANDCOVER_CLASSES, SPECTRA

# fmt: off
# A fresh burn scar (TOA, L1C band order): dark in the visible and NIR, SWIR above NIR.
BURN = np.array([.090, .060, .055, .060, .070, .075, .080, .085, .090, .045, .003, .160, .140])
# fmt: on
# Land covers an event can happen on, and the range of its duration in days: regrowth after a
# clear-cut, recovery after a fire, standing water of a flood, bare ground before a building.
KINDS: dict[str, tuple[tuple[str, ...], tuple[int, int]]] = {
    "clearcut": (("forest",), (300, 700)),
    "fire": (("grassland", "forest", "cropland"), (120, 360)),
    "flood": (("cropland", "grassland"), (10, 40)),
    "construction": (("cropland", "grassland", "bare"), (45, 150)),
}
WET_DAYS = 30  # after a flood the soil stays darker this long
MAX_TRIES = 200


@dataclass(frozen=True, eq=False)
class Change:
    """One event: ``kind`` over ``mask`` from day ``start`` (ordinal) for ``duration`` days."""

    kind: str
    mask: np.ndarray  # (H, W) bool
    start: int
    duration: int


def plan_changes(
    spec: SyntheticSpec, landcover: np.ndarray, parcels: np.ndarray, rng: np.random.Generator
) -> list[Change]:
    """Events until ``change_rate`` of the area per year has changed: whole parcels for
    floods and construction on cropland, irregular patches otherwise; each on a day at least
    15 days inside the period."""
    start, end = (
        date.fromisoformat(spec.start).toordinal(),
        date.fromisoformat(spec.end).toordinal(),
    )
    h, w = landcover.shape
    target = spec.change_rate * h * w * max(end - start, 1) / 365.25
    if target <= 0 or end - start < 31:
        return []
    changed = np.zeros((h, w), dtype=bool)
    events: list[Change] = []
    yy, xx = np.mgrid[:h, :w]
    field = fractal_noise((h, w), 2.5, rng)
    for _ in range(MAX_TRIES):
        if changed.sum() >= target:
            break
        kind = str(rng.choice(list(KINDS)))
        covers, (low, high) = KINDS[kind]
        codes = [LANDCOVER_CLASSES.index(c) for c in covers]
        eligible = np.isin(landcover, codes) & ~changed
        if not eligible.any():
            continue
        cy, cx = np.unravel_index(rng.choice(np.flatnonzero(eligible)), (h, w))
        if kind in ("flood", "construction") and landcover[cy, cx] == codes[0]:
            mask = (parcels == parcels[cy, cx]) & eligible
        else:
            radius = rng.uniform(4.0, 14.0)
            dist = np.hypot(yy - cy, xx - cx) / radius
            mask = (dist + 0.35 * (field - field[cy, cx]) < 1.0) & eligible
        if not mask.any():
            continue
        day = int(rng.integers(start + 15, end - 15))
        events.append(Change(kind, mask, day, int(rng.integers(low, high + 1))))
        changed |= mask
    return events


def apply_changes(
    surface: np.ndarray, changes: list[Change], day: int, texture: np.ndarray
) -> None:
    """Replace, in place, the (13, H, W) surface of day ``day`` (ordinal) under every event
    that has started by then; new materials carry the pixels' brightness ``texture``."""
    for ch in changes:
        age = day - ch.start
        if age < 0:
            continue
        m = ch.mask
        tex = texture[m][None]
        if ch.kind == "clearcut":  # bare soil, then grass growing back
            g = 0.7 * min(1.0, age / ch.duration)
            new = (SPECTRA["soil"][:, None] * (1 - g) + SPECTRA["green_grass"][:, None] * g) * tex
        elif ch.kind == "fire":  # the scar fades into what grows back
            k = max(0.0, 1.0 - age / ch.duration)
            new = k * BURN[:, None] * tex + (1 - k) * surface[:, m]
        elif ch.kind == "flood":
            if age < ch.duration:
                new = 0.85 * SPECTRA["water"][:, None] + 0.15 * surface[:, m]
            elif age < ch.duration + WET_DAYS:
                new = surface[:, m] * (1 - 0.25 * (1 - (age - ch.duration) / WET_DAYS))
            else:
                continue
        else:  # construction: cleared ground, then a building
            material = "soil" if age < ch.duration else "urban"
            new = SPECTRA[material][:, None] * tex
        surface[:, m] = new.astype(surface.dtype)


def changed_area(changes: list[Change], shape: tuple[int, int]) -> float:
    """Share of the region some event covers (for checks and reports)."""
    mask = np.zeros(shape, dtype=bool)
    for ch in changes:
        mask |= ch.mask
    return float(mask.mean()) if math.prod(shape) else 0.0

"""Sentinel-1 for the ``stac`` source: backscatter items of the same catalogue matched to the
optical dates (``stac.s1``).

The catalogue's Sentinel-1 collection (Planetary Computer's ``sentinel-1-rtc`` by default:
radiometrically terrain-corrected gamma0, linear power, on a UTM grid) is searched over the
bbox from ``max_days`` before the first to ``max_days`` after the last optical date, without
the cloud-cover query (S1 items have none).  Items of another orbit direction than
``orbit_state`` (``sat:orbit_state``) and items without both polarisations are left out.
Each optical date gets the S1 day nearest to it within ``max_days``
(:func:`cloudfree.tiles.s1align.nearest_days`); that day's items (slices along the
orbit) are read onto the tile, the first item first where they overlap, in their own units and
converted to dB after the warp (:func:`cloudfree.tiles.folder_s1.backscatter_db`).  An asset
without a CRS (GRD in radar geometry, georeferenced by ground control points only) is refused:
such values are neither calibrated nor terrain corrected.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from pystac import Item

from cloudfree.bands import S1_BANDS
from cloudfree.errors import ConfigError
from cloudfree.tiles.folder_s1 import S1_UNITS, backscatter_db
from cloudfree.tiles.s1align import nearest_days
from cloudfree.tiles.settings import check_keys
from cloudfree.tiles.stac_items import item_day

ORBIT_STATES = ("ascending", "descending")


@dataclass(frozen=True)
class StacS1Spec:
    """The ``stac.s1`` section of a region (see the config schema for each key)."""

    collection: str
    assets: dict[str, str]  # VV and VH -> asset key
    units: str  # one of S1_UNITS
    max_days: int
    orbit_state: str | None = None  # optional in the schema: both directions

    @classmethod
    def from_dict(cls, cfg: Mapping[str, Any], where: str = "stac.s1") -> StacS1Spec:
        """Build from a resolved ``stac.s1`` section; errors name ``<where>.<key>``."""
        check_keys(where, cfg, cls)
        assets = cfg["assets"]
        if not isinstance(assets, Mapping) or set(assets) != set(S1_BANDS):
            raise ConfigError(
                f"{where}.assets: {assets!r} must give the asset key of exactly "
                f"{' and '.join(S1_BANDS)}"
            )
        if cfg["units"] not in S1_UNITS:
            raise ConfigError(f"{where}.units: {cfg['units']!r} is not one of {list(S1_UNITS)}")
        orbit = cfg.get("orbit_state")
        if orbit is not None and orbit not in ORBIT_STATES:
            raise ConfigError(f"{where}.orbit_state: {orbit!r} is not one of {ORBIT_STATES}")
        days = cfg["max_days"]
        if isinstance(days, bool) or not isinstance(days, int) or days < 0:
            raise ConfigError(f"{where}.max_days: {days!r} is not an integer >= 0")
        return cls(
            collection=str(cfg["collection"]),
            assets={band: str(assets[band]) for band in S1_BANDS},
            units=str(cfg["units"]),
            max_days=days,
            orbit_state=orbit,
        )


@dataclass(frozen=True)
class S1Day:
    """The S1 acquisition day an optical date gets: its items and how many days apart."""

    date: str
    days: int
    items: tuple[Item, ...]

    def tags(self) -> dict[str, str]:
        ids = ",".join(item.id for item in self.items)
        return {"S1_DATE": self.date, "S1_DAYS": str(self.days), "S1_STAC_ITEMS": ids}


def search_period(start: str, end: str, max_days: int) -> tuple[str, str]:
    """The dates S1 items are searched between: ``max_days`` beyond both ends."""
    pad = dt.timedelta(days=max_days)
    first = dt.date.fromisoformat(start) - pad
    last = dt.date.fromisoformat(end) + pad
    return first.isoformat(), last.isoformat()


def usable_items(items: Sequence[Item], spec: StacS1Spec) -> tuple[list[Item], int]:
    """The items of ``spec.orbit_state`` (any, if None) that have both polarisations' assets,
    and how many were left out."""
    keep = [
        item
        for item in items
        if (spec.orbit_state is None or item.properties.get("sat:orbit_state") == spec.orbit_state)
        and all(key in item.assets for key in spec.assets.values())
    ]
    return keep, len(items) - len(keep)


def match_days(
    optical_dates: Sequence[str], items: Sequence[Item], max_days: int
) -> dict[str, S1Day]:
    """Optical date -> the nearest S1 day within ``max_days`` with its items (in the order
    given); dates without one are left out."""
    by_day: dict[str, list[Item]] = {}
    for item in items:
        by_day.setdefault(item_day(item), []).append(item)
    matched = nearest_days(list(optical_dates), sorted(by_day), max_days)
    return {iso: S1Day(day, delta, tuple(by_day[day])) for iso, (day, delta) in matched.items()}


def read_s1(
    day: S1Day,
    spec: StacS1Spec,
    shape: tuple[int, int],
    read: Callable[[Item, str], np.ndarray],
) -> np.ndarray:
    """(2, H, W) float32 VV, VH in dB of one tile on one S1 day, NaN where no item has both.

    ``read(item, asset_key)`` is the (H, W) float32 of an asset on the tile, in its own units,
    NaN where it has no data.  Items are taken in order: a later one fills only what the
    earlier ones left NaN."""
    out = np.full((len(S1_BANDS), *shape), np.nan, np.float32)
    for item in day.items:
        todo = np.isnan(out).any(axis=0)
        if not todo.any():
            break
        bands = [read(item, spec.assets[band]) for band in S1_BANDS]
        what = f"STAC item {item.id} ({spec.collection})"
        data = backscatter_db(np.stack(bands), spec.units, what, "stac.s1.units")
        take = todo & ~np.isnan(data).any(axis=0)
        out[:, take] = data[:, take]
    return out

"""The checks of a ``stac`` section that its schema cannot make, and the region grid it plans.

:func:`check_stac` checks a resolved section before anything is fetched, each error a
ConfigError naming ``<where>.<key>``: http(s) URLs, the bbox as lon/lat
(:func:`check_bbox`), the dates in order, the host lists, the bands and the CRS;
:func:`plan_grid` is the region grid covering the bbox, refused above ``max_tiles`` tiles
before anything is allocated.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from rasterio.crs import CRS
from rasterio.errors import CRSError
from rasterio.warp import transform_bounds

from cloudfree.bands import S2_L1C_BANDS
from cloudfree.errors import ConfigError
from cloudfree.tiles.grid import DEFAULT_MAX_TILES, Grid
from cloudfree.tiles.hosts import HostRule, url_origin


def check_stac(cfg: Mapping[str, Any], where: str = "stac") -> None:
    """The checks of a resolved ``stac`` section that its schema cannot make, each error a
    ConfigError naming ``<where>.<key>`` (``where`` is ``regions.<name>.stac`` in a whole
    config): http(s) URLs, the bbox as (west, south, east, north) in degrees, the dates in
    order, the host lists, the bands, the CRS, and a region grid of at most ``max_tiles``
    tiles (checked before any grid is allocated)."""
    keys = ("url", "sign_url") if cfg.get("sign") else ("url",)
    for key in keys:
        if url_origin(str(cfg.get(key, ""))) is None:
            raise ConfigError(f"{where}.{key}: {cfg.get(key)!r} is not an http(s) URL")
    bbox = check_bbox(cfg.get("bbox"), f"{where}.bbox")
    start, end = str(cfg.get("start"))[:10], str(cfg.get("end"))[:10]
    if end < start:
        raise ConfigError(f"{where}.end: {end} is before {where}.start ({start})")
    for key in ("token_hosts", "asset_hosts"):
        for entry in cfg.get(key) or ():
            HostRule.parse(entry, f"{where}.{key}")
    unknown_bands = sorted(set(cfg.get("assets") or {}) - set(S2_L1C_BANDS))
    if unknown_bands:
        raise ConfigError(f"{where}.assets: unknown bands {unknown_bands}")
    try:
        crs = CRS.from_user_input(cfg.get("crs"))
    except CRSError as exc:
        raise ConfigError(f"{where}.crs: {exc}") from exc
    if {"resolution", "tile_size", "overlap"} <= set(cfg):
        limit = int(cfg.get("max_tiles", DEFAULT_MAX_TILES))
        plan_grid(crs, bbox, float(cfg["resolution"]), int(cfg["tile_size"]),
                  int(cfg["overlap"]), limit, where)  # fmt: skip


def check_bbox(value: Any, key: str) -> tuple[float, float, float, float]:
    """(west, south, east, north) in degrees, west of east and south of north."""
    if (
        not isinstance(value, list | tuple)
        or len(value) != 4
        or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in value)
        or not all(math.isfinite(v) for v in value)
    ):
        raise ConfigError(f"{key}: {value!r} is not four numbers (west, south, east, north)")
    west, south, east, north = (float(v) for v in value)
    for name, v, limit in (("west", west, 180), ("south", south, 90), ("east", east, 180),
                           ("north", north, 90)):  # fmt: skip
        if not -limit <= v <= limit:
            raise ConfigError(
                f"{key}: {name} {v:g} is outside -{limit}..{limit}; the bbox is (west, south, "
                "east, north) in degrees of longitude and latitude"
            )
    if west >= east:
        raise ConfigError(
            f"{key}: west {west:g} is not west of east {east:g}; the bbox is (west, south, "
            "east, north) in degrees (a region across the antimeridian: make two regions)"
        )
    if south >= north:
        raise ConfigError(
            f"{key}: south {south:g} is not south of north {north:g}; the bbox is (west, "
            "south, east, north) in degrees"
        )
    return west, south, east, north


def _tile_count(width: int, height: int, size: int, overlap: int) -> int:
    """How many tiles :func:`~cloudfree.tiles.grid.tile_windows` cuts a grid into."""
    step = max(1, size - overlap)

    def along(n: int) -> int:
        return 0 if n < size else math.ceil((n - size) / step) + 1

    return along(width) * along(height)


def plan_grid(
    crs: CRS,
    bbox: tuple[float, float, float, float],
    resolution: float,
    tile_size: int,
    overlap: int,
    max_tiles: int = DEFAULT_MAX_TILES,
    where: str = "stac",
) -> Grid:
    """The region grid covering ``bbox`` (degrees) in ``crs``; a ConfigError naming
    ``<where>.bbox`` if the bbox has no finite place in the CRS or the grid would have more
    than ``max_tiles`` tiles (nothing is allocated before)."""
    bounds = transform_bounds("EPSG:4326", crs, *bbox)
    if not all(math.isfinite(v) for v in bounds):
        raise ConfigError(
            f"{where}.bbox: {list(bbox)} cannot be projected to {where}.crs ({crs}); use the "
            "CRS of the region's UTM zone"
        )
    grid = Grid.covering(crs, bounds, resolution)
    n = _tile_count(grid.width, grid.height, tile_size, overlap)
    if n > max_tiles:
        raise ConfigError(
            f"{where}.bbox: {list(bbox)} is a grid of {grid.width} x {grid.height} px at "
            f"resolution {resolution:g} in {crs}, {n} tiles of {tile_size} px: more than "
            f"{where}.max_tiles ({max_tiles}); make the bbox smaller, split it into several "
            f"regions or raise {where}.max_tiles (and check {where}.crs: a CRS far from the "
            "bbox stretches it)"
        )
    return grid

"""The ``stac`` source's reads of one tile: a day's items' assets warped onto the tile grid.

Each asset is read through GDAL with a warped window onto the tile (only the COG blocks
under it travel), signed and authorised as :class:`Access` says (:mod:`cloudfree.tiles.http`).
Several items of one day over a tile (granules of one overpass, overlapping orbits, two
processing baselines) are merged by ``stac.same_date`` (:func:`fetch_tile`,
:mod:`cloudfree.tiles.same_date`): the SCL of each is read, the items ordered (least cloudy
on the tile first, or in time order), every pixel taken from the first item where it is
valid and clear, and the bands read only from the items that give pixels.  L2A values of
processing baseline 04.00 on get the BOA offset removed per item (:func:`item_offset`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import rasterio
from rasterio.enums import Resampling
from rasterio.vrt import WarpedVRT
from rasterio.warp import transform_bounds

from cloudfree.bands import MASK_NODATA, NODATA, S2_L1C_BANDS
from cloudfree.clouds.detector import scl_to_mask
from cloudfree.errors import InputDataError
from cloudfree.tiles.grid import Grid
from cloudfree.tiles.hosts import HostPolicy
from cloudfree.tiles.http import SasSigner, gdal_auth, read_once
from cloudfree.tiles.same_date import first_valid, merge_order, merged_mask, used
from cloudfree.tiles.stac_items import asset_href, item_bbox

BOA_OFFSET = -1000.0  # L2A processing baseline 04.00 on (January 2022): DN = reflectance + 1000


class FetchSettings(Protocol):
    """The keys of the ``stac`` section a tile's reads follow (a StacSpec)."""

    @property
    def assets(self) -> Mapping[str, str]: ...
    @property
    def scl_asset(self) -> str: ...
    @property
    def fill_value(self) -> int: ...
    @property
    def scale(self) -> float: ...
    @property
    def offset(self) -> float | str: ...
    @property
    def retries(self) -> int: ...
    @property
    def resampling(self) -> str: ...
    @property
    def same_date(self) -> str: ...


@dataclass(frozen=True)
class Access:
    """How the COGs are reached: which hosts get the token, the token, the URL signers (of
    the optical collection and of the Sentinel-1 one)."""

    policy: HostPolicy
    token: str | None = None
    signer: SasSigner | None = None
    s1_signer: SasSigner | None = None


def item_offset(item: Any, spec: FetchSettings) -> float:
    """The offset added to one item's values: ``stac.offset``, or with ``auto`` the BOA
    offset removed from items of processing baseline 04.00 on, unless the catalogue says it
    already did (Earth Search's ``earthsearch:boa_offset_applied``)."""
    if not isinstance(spec.offset, str):
        return float(spec.offset)
    props = item.properties
    if props.get("earthsearch:boa_offset_applied") is True:
        return 0.0
    baseline = props.get("s2:processing_baseline")
    try:
        return BOA_OFFSET if baseline is not None and float(baseline) >= 4.0 else 0.0
    except (TypeError, ValueError):
        raise InputDataError(
            f"STAC item {item.id}: s2:processing_baseline {baseline!r} is not a number; "
            "set stac.offset to a number"
        ) from None


def read_asset(
    item: Any,
    key: str,
    grid: Grid,
    spec: FetchSettings,
    access: Access,
    *,
    resampling: Resampling,
    dtype: str,
    nodata: float,
    zero_is_nodata: bool = True,
) -> np.ndarray:
    """One asset warped onto ``grid``; where the file declares no nodata, 0 is taken as
    nodata (DN, linear backscatter) unless ``zero_is_nodata`` is False (dB)."""
    href = asset_href(item, key, access.policy)
    signer = access.signer
    fallback = 0 if zero_is_nodata else None

    def read() -> np.ndarray:
        url = signer.sign(href) if signer else href  # signed at each try: tokens expire
        with gdal_auth(href, access.token, access.policy), rasterio.open(url) as src:
            if src.crs is None:  # GCPs only (radar geometry), or no georeferencing at all
                raise InputDataError(
                    f"STAC item {item.id}: asset {key!r} has no CRS (radar geometry with "
                    "ground control points only?); use a geocoded product"
                )
            with WarpedVRT(
                src, crs=grid.crs, transform=grid.transform, width=grid.width,
                height=grid.height, resampling=resampling, nodata=nodata, dtype=dtype,
                src_nodata=src.nodata if src.nodata is not None else fallback,
            ) as vrt:  # fmt: skip
                return vrt.read(1)

    clean = signer.clean if signer else str
    return read_once(read, href, spec.retries, clean)


def intersects(a: tuple[float, ...], b: tuple[float, ...]) -> bool:
    """Whether two (west, south, east, north) boxes overlap."""
    return not (a[2] < b[0] or a[0] > b[2] or a[3] < b[1] or a[1] > b[3])


def items_over(items: Sequence[Any], grid: Grid) -> list[Any]:
    """The items whose bbox overlaps the tile (or that have none)."""
    tile_ll = transform_bounds(grid.crs, "EPSG:4326", *grid.bounds)
    return [it for it in items if not (box := item_bbox(it)) or intersects(box, tile_ll)]


def fetch_tile(
    items: Sequence[Any], grid: Grid, spec: FetchSettings, access: Access
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(13, H, W) uint16 DN and (H, W) mask of one tile and date, and the ids of the items
    that gave it pixels in merge order; ``items`` in time order (then id)."""
    h, w = grid.height, grid.width
    over = items_over(items, grid)
    scls = []
    for item in over:
        if spec.scl_asset not in item.assets:
            raise InputDataError(
                f"STAC item {item.id}: no {spec.scl_asset!r} asset (stac.scl_asset)"
            )
        scls.append(read_asset(item, spec.scl_asset, grid, spec, access,
                               resampling=Resampling.nearest, dtype="uint8", nodata=0))  # fmt: skip
    valids = [s != 0 for s in scls]
    masks = [scl_to_mask(s) for s in scls]
    order = merge_order(masks, valids, spec.same_date)
    choice = first_valid(order, masks, valids) if over else np.full((h, w), -1, np.int16)
    taken = used(order, choice)
    bands = np.full((len(S2_L1C_BANDS), h, w), np.nan, np.float32)
    resampling = Resampling[spec.resampling]
    for i in taken:
        item, take = over[i], choice == i
        if not take.any():
            continue
        offset = item_offset(item, spec)
        for b, band in enumerate(S2_L1C_BANDS):
            key = spec.assets.get(band)
            if key is None:
                continue
            if key not in item.assets:
                raise InputDataError(f"STAC item {item.id}: no asset {key!r} for band {band}")
            data = read_asset(item, key, grid, spec, access, resampling=resampling,
                              dtype="float32", nodata=np.nan)  # fmt: skip
            bands[b][take] = data[take] * np.float32(spec.scale) + np.float32(offset)
    filled = [i for i, b in enumerate(S2_L1C_BANDS) if b not in spec.assets]
    bands[filled] = spec.fill_value
    valid = (choice >= 0) & ~np.isnan(bands).any(axis=0)
    dn = np.clip(np.rint(np.nan_to_num(bands)), NODATA + 1, 65535).astype(np.uint16)
    dn[:, ~valid] = NODATA
    mask = merged_mask(choice, masks) if over else np.full((h, w), MASK_NODATA, np.uint8)
    mask[~valid] = MASK_NODATA
    return dn, mask, [over[i].id for i in taken]

"""The ``stac`` source: Sentinel-2 L2A from a STAC API, read window by window over HTTP.

Items are found with pystac-client (bbox, date range, maximum scene cloud cover).  For
every tile of the region grid and every date, each band's COG is read through GDAL's
``/vsicurl/`` with a warped window onto the tile, so only the blocks under the tile travel
(no whole-scene download).  The SCL band gives the cloud mask.  HTTP errors and timeouts
are retried with exponential backoff; tiles already written (a previous, interrupted run)
are kept, so a rerun fetches only what is missing.  Catalogues whose COG URLs need a
short-lived signature (Planetary Computer) are signed with a SAS token fetched per
collection and renewed before it expires (:mod:`cloudfree.tiles.http`); L2A values of
processing baseline 04.00 and later get the BOA offset removed per item (``offset: auto``).
Writes ``<dest>/<tile>/<date>_S2.tif`` and ``_CLD.tif`` and returns the manifest rows.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import rasterio
import requests
from pystac_client import Client
from pystac_client.exceptions import APIError
from pystac_client.stac_api_io import StacApiIO
from rasterio.crs import CRS
from rasterio.enums import Resampling
from rasterio.errors import CRSError
from rasterio.vrt import WarpedVRT
from rasterio.warp import transform_bounds
from urllib3.util.retry import Retry

from cloudfree.bands import MASK_NODATA, NODATA, S2_L1C_BANDS
from cloudfree.clouds.detector import scl_to_mask
from cloudfree.errors import ConfigError, InputDataError
from cloudfree.manifest import manifest_row
from cloudfree.tiles.grid import Grid, Tiling, write_tile
from cloudfree.tiles.http import (
    RETRY_STATUS,
    SasSigner,
    auth_headers,
    bearer_token,
    gdal_env,
    redacted,
    with_retries,
)
from cloudfree.tiles.settings import check_keys

SOURCE = "stac"
BOA_OFFSET = -1000.0  # L2A processing baseline 04.00 on (January 2022): DN = reflectance + 1000
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StacSpec(Tiling):
    """The ``stac`` section of a region (see the config schema for each key)."""

    url: str
    bbox: tuple[float, float, float, float]
    start: str
    end: str
    crs: str
    collection: str
    max_cloud_cover: float
    max_items: int | None
    resolution: float
    assets: dict[str, str]
    scl_asset: str
    fill_value: int
    scale: float
    offset: float | str  # a number, or auto (the only string the schema allows)
    retries: int
    backoff: float
    timeout: float
    sign: str | None  # the URL signer (the only one the schema allows), or None
    sign_url: str
    resampling: str  # a name of rasterio's Resampling (the schema lists the allowed ones)
    token_env: str | None = None  # optional in the schema, without a default

    @classmethod
    def from_dict(cls, cfg: Mapping[str, Any]) -> StacSpec:
        """Build from a resolved ``stac`` section; checks what the schema cannot."""
        check_keys("stac", cfg, cls)
        args = dict(cfg)
        args["bbox"] = tuple(float(v) for v in cfg["bbox"])
        args["start"], args["end"] = str(cfg["start"])[:10], str(cfg["end"])[:10]
        spec = cls(**args)
        unknown_bands = sorted(set(spec.assets) - set(S2_L1C_BANDS))
        if unknown_bands:
            raise ConfigError(f"stac.assets: unknown bands {unknown_bands}")
        try:
            CRS.from_user_input(spec.crs)
        except CRSError as exc:
            raise ConfigError(f"stac.crs: {exc}") from exc
        return spec


def item_offset(item: Any, spec: StacSpec) -> float:
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


def search_items(spec: StacSpec) -> list[Any]:
    """Items of the collection over the bbox and dates, below the scene cloud cover."""
    retry = Retry(
        total=spec.retries, backoff_factor=spec.backoff, status_forcelist=RETRY_STATUS,
        allowed_methods=None, raise_on_status=False,
    )  # fmt: skip
    io = StacApiIO(max_retries=retry, timeout=spec.timeout)
    try:
        client = Client.open(spec.url, stac_io=io, headers=auth_headers(spec))
        search = client.search(
            collections=[spec.collection],
            bbox=list(spec.bbox),
            datetime=f"{spec.start}/{spec.end}",
            query={"eo:cloud_cover": {"lte": spec.max_cloud_cover}},
        )
        items = list(search.items())
    except (requests.RequestException, APIError) as exc:
        raise InputDataError(
            f"STAC API {spec.url} cannot be reached or answered with an error: {exc}. "
            "Check stac.url and the network (or a proxy), then run again."
        ) from exc
    # Catalogues that ignore the query extension: filter here as well.
    return [
        it for it in items
        if float(it.properties.get("eo:cloud_cover", 0.0)) <= spec.max_cloud_cover
    ]  # fmt: skip


def items_by_date(items: list[Any], max_items: int | None) -> dict[str, list[Any]]:
    """ISO date -> that day's items (granules), least cloudy first; ``max_items`` least
    cloudy dates kept."""
    days: dict[str, list[Any]] = {}
    for it in sorted(items, key=lambda i: float(i.properties.get("eo:cloud_cover", 0.0))):
        day = (
            it.datetime.date()
            if it.datetime
            else date.fromisoformat(it.properties["start_datetime"][:10])
        )
        days.setdefault(day.isoformat(), []).append(it)
    if max_items is not None:
        cover = {
            d: min(float(i.properties.get("eo:cloud_cover", 0.0)) for i in v)
            for d, v in days.items()
        }
        days = {d: days[d] for d in sorted(cover, key=cover.__getitem__)[:max_items]}
    return dict(sorted(days.items()))


def _read_asset(
    href: str,
    grid: Grid,
    spec: StacSpec,
    *,
    resampling: Resampling,
    dtype: str,
    nodata: float,
    signer: SasSigner | None = None,
) -> np.ndarray:
    def read() -> np.ndarray:
        url = signer.sign(href) if signer else href  # signed at each try: tokens expire
        with rasterio.open(url) as src, WarpedVRT(
            src, crs=grid.crs, transform=grid.transform, width=grid.width, height=grid.height,
            resampling=resampling, src_nodata=src.nodata if src.nodata is not None else 0,
            nodata=nodata, dtype=dtype,
        ) as vrt:  # fmt: skip
            return vrt.read(1)

    clean = signer.clean if signer else str
    return with_retries(read, href, spec.retries, spec.backoff, clean)


def _fetch_tile(
    items: list[Any], grid: Grid, spec: StacSpec, signer: SasSigner | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(13, H, W) uint16 DN and (H, W) mask of one tile and date, first granule first."""
    h, w = grid.height, grid.width
    scl = np.zeros((h, w), np.uint8)
    bands = np.full((len(S2_L1C_BANDS), h, w), np.nan, np.float32)
    resampling = Resampling[spec.resampling]
    tile_ll = transform_bounds(grid.crs, "EPSG:4326", *grid.bounds)
    for item in items:
        if item.bbox and not _intersects(item.bbox, tile_ll):
            continue
        if spec.scl_asset not in item.assets:
            raise InputDataError(
                f"STAC item {item.id}: no {spec.scl_asset!r} asset (stac.scl_asset)"
            )
        todo = scl == 0
        if not todo.any():
            break
        s = _read_asset(item.assets[spec.scl_asset].href, grid, spec,
                        resampling=Resampling.nearest, dtype="uint8", nodata=0,
                        signer=signer)  # fmt: skip
        take = todo & (s != 0)
        if not take.any():
            continue
        scl[take] = s[take]
        offset = item_offset(item, spec)
        for i, band in enumerate(S2_L1C_BANDS):
            key = spec.assets.get(band)
            if key is None:
                continue
            if key not in item.assets:
                raise InputDataError(f"STAC item {item.id}: no asset {key!r} for band {band}")
            data = _read_asset(item.assets[key].href, grid, spec, resampling=resampling,
                               dtype="float32", nodata=np.nan, signer=signer)  # fmt: skip
            bands[i][take] = data[take] * np.float32(spec.scale) + np.float32(offset)
    filled = [i for i, b in enumerate(S2_L1C_BANDS) if b not in spec.assets]
    bands[filled] = spec.fill_value
    valid = (scl != 0) & ~np.isnan(bands).any(axis=0)
    dn = np.clip(np.rint(np.nan_to_num(bands)), NODATA + 1, 65535).astype(np.uint16)
    dn[:, ~valid] = NODATA
    mask = scl_to_mask(scl)
    mask[~valid] = MASK_NODATA
    return dn, mask


def _intersects(a: Any, b: tuple[float, ...]) -> bool:
    return not (a[2] < b[0] or a[0] > b[2] or a[3] < b[1] or a[1] > b[3])


def stac_tiles(region: str, cfg: Mapping[str, Any], dest: Path) -> pd.DataFrame:
    """Fetch the region's tiles of every matching date into ``dest``; return manifest rows.

    Tiles already in ``dest`` (an earlier run stopped half-way) are not fetched again.
    """
    spec = StacSpec.from_dict(cfg)
    secrets = {t for t in (bearer_token(spec),) if t}
    with redacted(secrets):
        signer = SasSigner(spec, secrets) if spec.sign else None
        return _stac_tiles(region, spec, dest, signer)


def _stac_tiles(
    region: str, spec: StacSpec, dest: Path, signer: SasSigner | None = None
) -> pd.DataFrame:
    crs = CRS.from_user_input(spec.crs)
    grid = Grid.covering(crs, transform_bounds("EPSG:4326", crs, *spec.bbox), spec.resolution)
    windows = spec.windows(grid.width, grid.height)
    days = items_by_date(search_items(spec), spec.max_items)
    if not days:
        raise InputDataError(
            f"STAC API {spec.url}: no {spec.collection} items over {list(spec.bbox)} between "
            f"{spec.start} and {spec.end} with cloud cover <= {spec.max_cloud_cover}"
        )
    log.info("%d dates, %d tiles from %s", len(days), len(windows), spec.url)
    valid_sum = dict.fromkeys(windows, 0.0)
    written: dict[str, dict[str, dict[str, str]]] = {t: {} for t in windows}
    fetched = 0
    with gdal_env(spec):
        for iso, items in days.items():
            for tile, win in windows.items():
                tgrid = grid.window(win)
                image, mask = dest / tile / f"{iso}_S2.tif", dest / tile / f"{iso}_CLD.tif"
                if image.exists() and mask.exists():
                    with rasterio.open(mask) as src:  # written atomically by an earlier run
                        m = src.read(1)
                    paths = {"image": str(image), "mask": str(mask)}
                else:
                    dn, m = _fetch_tile(items, tgrid, spec, signer)
                    ids = ",".join(i.id for i in items)
                    tags = {"SOURCE": SOURCE, "STAC_ITEMS": ids}
                    paths = write_tile(
                        dest, tile, iso, tgrid, image=dn, band_names=S2_L1C_BANDS, mask=m, tags=tags
                    )
                    fetched += 1
                valid_sum[tile] += float((m != MASK_NODATA).mean())
                written[tile][iso] = paths
    log.info("%d tile dates fetched, %d reused", fetched, len(days) * len(windows) - fetched)
    keep = {t: w for t, w in windows.items() if valid_sum[t] / len(days) >= spec.min_valid}
    for tile in set(windows) - set(keep):
        shutil.rmtree(dest / tile, ignore_errors=True)
    if not keep:
        raise InputDataError(
            f"STAC API {spec.url}: no tile over {list(spec.bbox)} has a valid fraction >= "
            f"{spec.min_valid}"
        )
    splits = spec.splits(keep)
    rows = [
        manifest_row(region, SOURCE, t, iso, splits[t], grid.window(w), **written[t][iso])
        for t, w in keep.items()
        for iso in days
    ]
    return pd.DataFrame(rows)

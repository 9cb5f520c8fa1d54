"""The ``stac`` source: Sentinel-2 L2A from a STAC API, read window by window over HTTP.

Items are found with pystac-client (the ``stac`` extra; bbox, date range, maximum scene
cloud cover).  For every tile of the region grid and every date, each band's COG is read
through GDAL's ``/vsicurl/`` with a warped window onto the tile, so only the blocks under
the tile travel (no whole-scene download; :mod:`cloudfree.tiles.stac_fetch`).  The SCL band
gives the cloud mask; several items of one day over a tile (granules, overlapping orbits)
are merged into one date by ``stac.same_date`` (:mod:`cloudfree.tiles.same_date`; the items
that gave pixels are in the manifest's ``acquisitions`` column).  HTTP errors and timeouts
are retried (``stac.retries``, one retry layer per request); tiles already written (a
previous, interrupted run) are kept, so a rerun fetches only what is missing.  Catalogues
whose COG URLs need a short-lived signature (Planetary Computer) are signed with a SAS
token fetched per collection and renewed before it expires (:mod:`cloudfree.tiles.http`);
L2A values of processing baseline 04.00 and later get the BOA offset removed per item
(``offset: auto``).  Writes ``<dest>/<tile>/<date>_S2.tif`` and ``_CLD.tif`` and returns
the manifest rows.  With ``stac.s1``, the catalogue's Sentinel-1 items nearest to each date
are read the same way and written as ``_S1.tif`` (:mod:`cloudfree.tiles.stac_s1`).

What a catalogue says is not trusted: the bearer token goes only to the API's own host (and
``stac.token_hosts``), an asset is read only from an http(s) URL (never a local path,
``file://`` or GDAL ``/vsi`` path; only from the API's host, ``token_hosts`` and
``asset_hosts`` when ``asset_hosts`` is set: :mod:`cloudfree.tiles.hosts`), paging stays on
the API's host, within ``stac.max_pages`` and stops where it loops, and an item without a
date, with a cloud cover that is not a percentage or with a malformed bbox is an error naming
it (:mod:`cloudfree.tiles.stac_items`).  The bbox is checked as lon/lat and the region grid
it plans is refused above ``max_tiles`` tiles before anything is allocated or fetched
(:mod:`cloudfree.tiles.stac_settings`).
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import rasterio
import requests
from pystac import Item, STACError, STACTypeError
from rasterio.crs import CRS
from rasterio.enums import Resampling

from cloudfree.bands import MASK_NODATA, S2_L1C_BANDS
from cloudfree.errors import InputDataError
from cloudfree.extras import MissingExtraError, missing_extra
from cloudfree.manifest import manifest_row
from cloudfree.progress import Progress
from cloudfree.tiles.grid import Grid, Tiling, write_s1, write_tile
from cloudfree.tiles.hosts import HostPolicy
from cloudfree.tiles.http import CatalogueIO, SasSigner, bearer_token, gdal_env, redacted
from cloudfree.tiles.same_date import SEPARATOR, check_same_date, log_merge, merge_record
from cloudfree.tiles.settings import check_keys
from cloudfree.tiles.stac_fetch import Access, fetch_tile, items_over, read_asset
from cloudfree.tiles.stac_items import asset_href, cloud_cover, items_by_date, parse_item
from cloudfree.tiles.stac_s1 import (
    S1Day,
    StacS1Spec,
    match_days,
    read_s1,
    search_period,
    usable_items,
)
from cloudfree.tiles.stac_settings import check_stac, plan_grid

# pystac-client is the optional ``stac`` extra: without it this module imports (the config
# checks use StacSpec) and the stac source fails when it runs, with this error.
try:
    from pystac_client import Client
    from pystac_client.exceptions import APIError
    from pystac_client.warnings import DoesNotConformTo
except ImportError as exc:
    NO_STAC_CLIENT: MissingExtraError | None = missing_extra("pystac_client", "stac")
    NO_STAC_CLIENT.__cause__ = exc
else:
    NO_STAC_CLIENT = None

SOURCE = "stac"
PAGE_SIZE = 100  # items asked for per page of a search (the server may send fewer)
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
    same_date: str  # how the items of one day are merged (cloudfree.tiles.same_date)
    token_env: str | None = None  # optional in the schema, without a default
    sign_key_env: str | None = None  # optional in the schema, without a default
    s1: StacS1Spec | None = None  # optional in the schema: no Sentinel-1
    token_hosts: tuple[str, ...] = ()
    asset_hosts: tuple[str, ...] = ()
    max_pages: int = 100

    @classmethod
    def from_dict(cls, cfg: Mapping[str, Any], where: str = "stac") -> StacSpec:
        """Build from a resolved ``stac`` section; checks what the schema cannot
        (:func:`~cloudfree.tiles.stac_settings.check_stac`, errors naming ``<where>.<key>``)."""
        check_keys(where, cfg, cls)
        check_stac(cfg, where)
        check_same_date(cfg["same_date"], where)
        args = dict(cfg)
        args["bbox"] = tuple(float(v) for v in cfg["bbox"])
        args["start"], args["end"] = str(cfg["start"])[:10], str(cfg["end"])[:10]
        for key in ("token_hosts", "asset_hosts"):
            args[key] = tuple(str(h) for h in cfg.get(key) or ())
        if cfg.get("s1") is not None:
            args["s1"] = StacS1Spec.from_dict(cfg["s1"], f"{where}.s1")
        return cls(**args)


def search_items(spec: StacSpec, token: str | None = None, where: str = "stac") -> list[Item]:
    """Items of the collection over the bbox and dates, below the scene cloud cover, each
    checked (:func:`_search`, :func:`check_assets`)."""
    query = {"eo:cloud_cover": {"lte": spec.max_cloud_cover}}
    items = _search(spec, token, where, spec.collection, (spec.start, spec.end), query)
    # Catalogues that ignore the query extension: filter here as well.
    kept = [it for it in items if cloud_cover(it) <= spec.max_cloud_cover]
    check_assets(kept, (spec.scl_asset, *spec.assets.values()), HostPolicy.of(spec, where))
    return kept


def search_s1_items(spec: StacSpec, s1: StacS1Spec, token: str | None, where: str) -> list[Item]:
    """The usable Sentinel-1 items (:func:`~cloudfree.tiles.stac_s1.usable_items`) of
    ``s1.collection`` over the bbox, ``s1.max_days`` beyond the dates, each checked as the
    optical ones are."""
    period = search_period(spec.start, spec.end, s1.max_days)
    kept, dropped = usable_items(_search(spec, token, where, s1.collection, period, None), s1)
    if dropped:
        log.info("%d %s items left out (orbit_state, or not both of %s)", dropped,
                 s1.collection, sorted(s1.assets.values()))  # fmt: skip
    check_assets(kept, tuple(s1.assets.values()), HostPolicy.of(spec, where))
    return kept


def _search(
    spec: StacSpec,
    token: str | None,
    where: str,
    collection: str,
    period: tuple[str, str],
    query: dict[str, Any] | None,
) -> list[Item]:
    """The items of every page of one item search over the bbox, each checked
    (:func:`~cloudfree.tiles.stac_items.parse_item`); an item on two pages comes once."""
    if NO_STAC_CLIENT is not None:
        raise NO_STAC_CLIENT
    io = CatalogueIO(spec, token, where)
    try:
        client = Client.open(spec.url, stac_io=io, timeout=spec.timeout)
        search = client.search(
            collections=[collection],
            bbox=list(spec.bbox),
            datetime=f"{period[0]}/{period[1]}",
            query=query,
            limit=PAGE_SIZE,
        )
        features = [f for page in search.pages_as_dicts() for f in page["features"]]
    except (requests.RequestException, APIError) as exc:
        raise InputDataError(
            f"STAC API {spec.url} cannot be reached or answered with an error: {exc}. "
            "Check stac.url and the network (or a proxy), then run again."
        ) from exc
    except (STACError, STACTypeError, DoesNotConformTo, KeyError, TypeError, ValueError) as exc:
        raise InputDataError(
            f"STAC API {spec.url}: not a STAC API with item search "
            f"({type(exc).__name__}: {exc}); check {where}.url"
        ) from exc
    items: dict[str, Item] = {}
    for feature in features:
        item = parse_item(feature, spec.url)
        items.setdefault(item.id, item)
    log.info("%d %s items in %d pages of %s", len(items), collection, io.pages, spec.url)
    return list(items.values())


def check_assets(items: list[Item], keys: tuple[str, ...], policy: HostPolicy) -> None:
    """The hrefs of the items' assets that would be read, before anything is read."""
    for item in items:
        for key in keys:
            if key in item.assets:
                asset_href(item, key, policy)


def _s1_days(spec: StacSpec, dates: list[str], access: Access, where: str) -> dict[str, S1Day]:
    """The S1 day of each optical date (none without ``stac.s1``)."""
    if spec.s1 is None:
        return {}
    items = search_s1_items(spec, spec.s1, access.token, where)
    matched = match_days(dates, items, spec.s1.max_days)
    log.info("Sentinel-1 (%s) for %d of %d dates (within %d days)", spec.s1.collection,
             len(matched), len(dates), spec.s1.max_days)  # fmt: skip
    return matched


def _s1_tile(
    dest: Path,
    tile: str,
    iso: str,
    grid: Grid,
    spec: StacSpec,
    s1: StacS1Spec,
    day: S1Day,
    access: Access,
) -> str:
    """The path of one tile's S1 file of one date, read and written unless an earlier run
    wrote it (atomically)."""
    path = dest / tile / f"{iso}_S1.tif"
    if path.exists():
        return str(path)
    access = replace(access, signer=access.s1_signer)
    day = replace(day, items=tuple(items_over(day.items, grid)))  # over the tile: read, tagged

    def read(item: Item, key: str) -> np.ndarray:
        return read_asset(
            item, key, grid, spec, access, resampling=Resampling.bilinear, dtype="float32",
            nodata=np.nan, zero_is_nodata=s1.units != "db",
        )  # fmt: skip

    data = read_s1(day, s1, (grid.height, grid.width), read)
    tags = {"SOURCE": SOURCE, **day.tags()}
    return write_s1(dest, tile, iso, grid, data, tags)


def stac_tiles(region: str, cfg: Mapping[str, Any], dest: Path) -> pd.DataFrame:
    """Fetch the region's tiles of every matching date into ``dest``; return manifest rows.

    Tiles already in ``dest`` (an earlier run stopped half-way) are not fetched again.
    Without pystac-client (the ``stac`` extra) a MissingExtraError says how to install it.
    """
    if NO_STAC_CLIENT is not None:
        raise NO_STAC_CLIENT
    where = f"regions.{region}.stac"
    spec = StacSpec.from_dict(cfg, where)
    token = bearer_token(spec)
    secrets = {token} if token else set()
    with redacted(secrets):
        signer = s1_signer = None
        if spec.sign:
            signer = SasSigner(spec, secrets)
            if spec.s1 is not None:
                s1_signer = SasSigner(replace(spec, collection=spec.s1.collection), secrets)
        access = Access(HostPolicy.of(spec, where), token, signer, s1_signer)
        return _stac_tiles(region, spec, dest, access, where)


def _stac_tiles(
    region: str, spec: StacSpec, dest: Path, access: Access, where: str
) -> pd.DataFrame:
    crs = CRS.from_user_input(spec.crs)
    grid = plan_grid(
        crs, spec.bbox, spec.resolution, spec.tile_size, spec.overlap, spec.max_tiles, where
    )
    windows = spec.windows(grid.width, grid.height, where)
    days = items_by_date(search_items(spec, access.token, where), spec.max_items)
    if not days:
        raise InputDataError(
            f"STAC API {spec.url}: no {spec.collection} items over {list(spec.bbox)} between "
            f"{spec.start} and {spec.end} with cloud cover <= {spec.max_cloud_cover}"
        )
    log.info("%d dates, %d tiles from %s", len(days), len(windows), spec.url)
    radar = _s1_days(spec, list(days), access, where)
    valid_sum = dict.fromkeys(windows, 0.0)
    written: dict[str, dict[str, dict[str, str]]] = {t: {} for t in windows}
    fetched = 0
    progress = Progress(log, f"{where}: tile dates", len(days) * len(windows))
    with gdal_env(spec):
        for iso, items in days.items():
            for tile, win in windows.items():
                tgrid = grid.window(win)
                image, mask = dest / tile / f"{iso}_S2.tif", dest / tile / f"{iso}_CLD.tif"
                if image.exists() and mask.exists():
                    # written atomically by an earlier run with the same settings
                    with rasterio.open(mask) as src, rasterio.open(image) as img:
                        m, ids = src.read(1), img.tags().get("STAC_ITEMS", "")
                    taken = [i for i in ids.split(SEPARATOR) if i]
                    paths = {"image": str(image), "mask": str(mask)}
                else:
                    dn, m, taken = fetch_tile(items, tgrid, spec, access)
                    tags = {"SOURCE": SOURCE, "STAC_ITEMS": SEPARATOR.join(taken)}
                    if len(taken) > 1:
                        tags["SAME_DATE"] = spec.same_date
                    paths = write_tile(
                        dest, tile, iso, tgrid, image=dn, band_names=S2_L1C_BANDS, mask=m, tags=tags
                    )
                    fetched += 1
                log_merge(where, tile, iso, taken, spec.same_date)
                paths.update(merge_record(taken, spec.same_date))
                if spec.s1 is not None and iso in radar:
                    paths["s1"] = _s1_tile(dest, tile, iso, tgrid, spec, spec.s1, radar[iso],
                                           access)  # fmt: skip
                valid_sum[tile] += float((m != MASK_NODATA).mean())
                written[tile][iso] = paths
                progress.step()
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

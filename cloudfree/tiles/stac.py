"""The ``stac`` source: Sentinel-2 L2A from a STAC API, read window by window over HTTP.

Items are found with pystac-client (bbox, date range, maximum scene cloud cover).  For
every tile of the region grid and every date, each band's COG is read through GDAL's
``/vsicurl/`` with a warped window onto the tile, so only the blocks under the tile travel
(no whole-scene download).  The SCL band gives the cloud mask.  HTTP errors and timeouts
are retried with exponential backoff; tiles already written (a previous, interrupted run)
are kept, so a rerun fetches only what is missing.  Catalogues whose COG URLs need a
short-lived signature (Planetary Computer) are signed with a SAS token fetched per
collection and renewed before it expires; L2A values of processing baseline 04.00 and later
get the BOA offset removed per item (``offset: auto``).
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pandas as pd
import rasterio
from rasterio.crs import CRS
from rasterio.enums import Resampling
from rasterio.errors import CRSError, RasterioError
from rasterio.vrt import WarpedVRT
from rasterio.warp import transform_bounds

from cloudfree.bands import MASK_NODATA, NODATA, S2_L1C_BANDS
from cloudfree.errors import ConfigError, InputDataError
from cloudfree.tiles.grid import Grid, Tiling, manifest_row, write_tile

SOURCE = "stac"
EARTH_SEARCH_ASSETS = {
    "B01": "coastal", "B02": "blue", "B03": "green", "B04": "red", "B05": "rededge1",
    "B06": "rededge2", "B07": "rededge3", "B08": "nir", "B8A": "nir08", "B09": "nir09",
    "B11": "swir16", "B12": "swir22",
}  # fmt: skip
RETRY_STATUS = (429, 500, 502, 503, 504)
PLANETARY_COMPUTER_SAS = "https://planetarycomputer.microsoft.com/api/sas/v1/token"
SIGNERS = ("planetary_computer",)
BOA_OFFSET = -1000.0  # L2A processing baseline 04.00 on (January 2022): DN = reflectance + 1000
log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class StacSpec(Tiling):
    """The ``stac`` section of a region (see the config schema for each key)."""

    url: str
    bbox: tuple[float, float, float, float]
    start: str
    end: str
    crs: str
    collection: str = "sentinel-2-l2a"
    max_cloud_cover: float = 50.0
    max_items: int | None = None
    resolution: float = 10.0
    assets: dict[str, str] = field(default_factory=lambda: dict(EARTH_SEARCH_ASSETS))
    scl_asset: str = "scl"
    fill_value: int = 1
    scale: float = 1.0
    offset: float | str = 0.0
    retries: int = 4
    backoff: float = 1.0
    timeout: float = 30.0
    token_env: str | None = None
    sign: str | None = None
    sign_url: str = PLANETARY_COMPUTER_SAS
    resampling: str = "bilinear"

    @classmethod
    def from_dict(cls, cfg: Mapping[str, Any]) -> StacSpec:
        missing = [k for k in ("url", "bbox", "start", "end", "crs") if not cfg.get(k)]
        if missing:
            raise ConfigError(f"stac: missing keys {missing}")
        unknown = sorted(set(cfg) - set(cls.__dataclass_fields__))
        if unknown:
            raise ConfigError(f"stac: unknown keys {unknown}")
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
        if isinstance(spec.offset, str) and spec.offset != "auto":
            raise ConfigError(f"stac.offset: {spec.offset!r} is neither a number nor 'auto'")
        if spec.sign is not None and spec.sign not in SIGNERS:
            raise ConfigError(f"stac.sign: {spec.sign!r} is not one of {', '.join(SIGNERS)}")
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


class SasSigner:
    """Signs asset URLs with a SAS token of the collection (Planetary Computer's token
    API: ``<sign_url>/<collection>`` answers ``{"token", "msft:expiry"}``), fetched once and
    renewed ``margin`` seconds before it expires.  Tokens join ``secrets`` (kept out of the
    logs) and are cut out of error messages by :meth:`clean`."""

    def __init__(self, spec: StacSpec, secrets: set[str], margin: float = 300.0) -> None:
        self.spec, self.secrets, self.margin = spec, secrets, margin
        self.url = f"{spec.sign_url.rstrip('/')}/{spec.collection}"
        self.token: str | None = None
        self.expiry = 0.0
        self.fetches = 0

    def _fetch(self) -> None:
        import requests
        from requests.adapters import HTTPAdapter
        from urllib3.util.retry import Retry

        retry = Retry(
            total=self.spec.retries, backoff_factor=self.spec.backoff,
            status_forcelist=RETRY_STATUS, allowed_methods=None,
        )  # fmt: skip
        with requests.Session() as session:
            session.mount("http://", HTTPAdapter(max_retries=retry))
            session.mount("https://", HTTPAdapter(max_retries=retry))
            try:
                answer = session.get(self.url, timeout=self.spec.timeout)
                answer.raise_for_status()
                doc = answer.json()
                token = str(doc["token"])
                expiry = datetime.fromisoformat(str(doc["msft:expiry"]).replace("Z", "+00:00"))
            except (requests.RequestException, ValueError, KeyError, TypeError) as exc:
                raise InputDataError(
                    f"SAS token for {self.spec.collection} from {self.url} (stac.sign_url): {exc}"
                ) from exc
        self.token, self.expiry = token, expiry.timestamp()
        self.secrets.add(token)
        self.fetches += 1
        log.info("SAS token for %s valid until %s", self.spec.collection, expiry.isoformat())

    def sign(self, href: str) -> str:
        if self.token is None or time.time() > self.expiry - self.margin:
            self._fetch()
        return f"{href}{'&' if '?' in href else '?'}{self.token}"

    def clean(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, "***")
        return text


def with_retries(
    fn: Callable[[], T],
    what: str,
    retries: int,
    backoff: float,
    clean: Callable[[str], str] = str,
) -> T:
    """Call ``fn``; on a GDAL/HTTP error wait ``backoff * 2**k`` s and try again.
    ``clean`` removes secrets (signed URLs) from the messages."""
    for attempt in range(retries + 1):
        try:
            return fn()
        except (RasterioError, OSError) as exc:
            text = clean(str(exc))
            if attempt == retries:
                tries = f"{retries + 1} attempt{'s' if retries else ''}"
                raise InputDataError(f"{what}: failed after {tries}: {text}") from None
            delay = backoff * 2**attempt
            log.warning("%s: %s; retrying in %.1f s", what, text, delay)
            time.sleep(delay)
    raise AssertionError("unreachable")


def search_items(spec: StacSpec) -> list[Any]:
    """Items of the collection over the bbox and dates, below the scene cloud cover."""
    import requests
    from pystac_client import Client
    from pystac_client.exceptions import APIError
    from pystac_client.stac_api_io import StacApiIO
    from urllib3.util.retry import Retry

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
    from cloudfree.clouds.detector import scl_to_mask

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


def bearer_token(spec: StacSpec) -> str | None:
    """The API token from the environment variable named by ``stac.token_env``, if any."""
    if not spec.token_env:
        return None
    token = os.environ.get(spec.token_env)
    if not token:
        raise ConfigError(
            f"stac.token_env: environment variable {spec.token_env} is not set or empty"
        )
    return token


def auth_headers(spec: StacSpec) -> dict[str, str]:
    token = bearer_token(spec)
    return {"Authorization": f"Bearer {token}"} if token else {}


class _Redact(logging.Filter):
    """Replace secrets in every log record (pystac-client logs request headers at DEBUG)."""

    def __init__(self, secrets: set[str]) -> None:
        super().__init__()
        self.secrets = secrets  # shared: secrets found later (SAS tokens) are redacted too

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        hits = [s for s in self.secrets if s and s in message]
        for secret in hits:
            message = message.replace(secret, "***")
        if hits:
            record.msg, record.args = message, None
        return True


@contextlib.contextmanager
def redacted(secrets: set[str]) -> Iterator[None]:
    """Keep ``secrets`` (a set that may grow) out of every log handler of the process while
    the block runs."""
    flt = _Redact(secrets)
    handlers = [h for lg in (logging.getLogger(), log) for h in lg.handlers]
    for h in handlers:
        h.addFilter(flt)
    try:
        yield
    finally:
        for h in handlers:
            h.removeFilter(flt)


def _gdal_env(spec: StacSpec) -> rasterio.Env:
    headers = auth_headers(spec)
    extra = {"GDAL_HTTP_HEADERS": f"Authorization: {headers['Authorization']}"} if headers else {}
    return rasterio.Env(
        **extra,
        GDAL_DISABLE_READDIR_ON_OPEN="EMPTY_DIR",
        CPL_VSIL_CURL_ALLOWED_EXTENSIONS=".tif,.TIF,.tiff",
        GDAL_HTTP_TIMEOUT=str(int(max(1, spec.timeout))),
        GDAL_HTTP_MAX_RETRY=str(spec.retries),
        GDAL_HTTP_RETRY_DELAY=str(max(spec.backoff, 0.01)),
        GDAL_HTTP_MERGE_CONSECUTIVE_RANGES="YES",
        VSI_CACHE="TRUE",
    )


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
    with _gdal_env(spec):
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

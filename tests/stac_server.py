"""A STAC API and COG file server on 127.0.0.1 for tests: ``/`` (landing page), ``/search``
(GET and POST, filters by datetime and eo:cloud_cover) and ``/cogs/<file>`` (static files with
HTTP range requests).  ``fail_every=n`` answers every n-th request with 503, as a flaky
server does; ``drop_every=n`` closes the connection of every n-th request without an answer;
``stall_every=n`` holds every n-th request ``stall_seconds`` before answering (longer than the
client's timeout); ``fail_paths`` makes the matching requests fail every time; ``token``
answers 401 to requests without ``Authorization: Bearer <token>``; ``sas_token`` answers 403
to COG requests whose query is not that token, handed out by ``/sas/<collection>`` as
Planetary Computer's token API does (valid ``sas_seconds``; with ``sas_key`` only to requests
with that ``Ocp-Apim-Subscription-Key``, 401 otherwise).  An item's ``properties`` are
added to its STAC properties and its ``hrefs`` (asset key -> href) replace its asset URLs;
an item's ``collection`` (default sentinel-2-l2a) is matched against a search's
``collections``, and an item with ``cover`` None has no eo:cloud_cover (a query on it leaves
the item out, as real catalogues do: Sentinel-1);
``asset_base`` puts the asset URLs on another server, ``redirect_base`` answers COG
requests with a redirect to the same file there, ``search_base`` puts the landing page's
search links there.  ``page_size=n`` answers a search in
pages of n items linked by ``next`` links (on ``next_base`` if given); ``cycle=n`` links the
last page back to the first for the first n searches (then answers an empty page, so a client
that follows the loop forever still ends); ``raw`` answers the given paths with the given
bytes as JSON.  Every request is logged for tests that count what was fetched, and the
Authorization header of every request that had one (``auth``)."""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, date, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlparse

import numpy as np
import rasterio
from affine import Affine
from rasterio.warp import transform_bounds

from cloudfree.config import source_settings

CRS = "EPSG:32737"
ORIGIN = (500000.0, 8300000.0)
SCENE_PX = 256  # 10 m pixels per scene side
CONFORMS = [
    "https://api.stacspec.org/v1.0.0/core",
    "https://api.stacspec.org/v1.0.0/item-search",
    "https://api.stacspec.org/v1.0.0/item-search#query",
]


def write_cog(path: Path, data: np.ndarray, res: float, nodata: int) -> None:
    prof = dict(
        driver="COG", width=data.shape[1], height=data.shape[0], count=1, dtype=data.dtype.name,
        crs=CRS, transform=Affine(res, 0, ORIGIN[0], 0, -res, ORIGIN[1]), nodata=nodata,
        blocksize=128, compress="deflate", overviews="NONE",
    )  # fmt: skip
    with rasterio.open(path, "w", **prof) as dst:
        dst.write(data, 1)


def make_s1_scenes(
    root: Path, dates: list[str], orbits: list[str] | None = None, seed: int = 1
) -> list[dict]:
    """One Sentinel-1 RTC-like scene per date (collection sentinel-1-rtc): VV and VH COGs of
    linear gamma0 at 10 m (VV about -12 dB, VH about -19 dB) with nodata -32768 in the 16
    leftmost columns, as Planetary Computer serves them."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    items = []
    for k, day in enumerate(dates):
        assets = {}
        for key, mean_db in (("vv", -12.0), ("vh", -19.0)):
            db = mean_db + rng.normal(0, 1.5, size=(SCENE_PX, SCENE_PX))
            data = (10 ** (db / 10)).astype(np.float32)
            data[:, :16] = -32768
            write_cog(root / f"S1_{day}_{key}.tif", data, 10, -32768)
            assets[key] = f"S1_{day}_{key}.tif"
        orbit = orbits[k] if orbits else "descending"
        props = {"sat:orbit_state": orbit, "sar:polarizations": ["VV", "VH"]}
        items.append({"date": day, "cover": None, "assets": assets, "id": f"S1_{day}",
                      "collection": "sentinel-1-rtc", "properties": props})  # fmt: skip
    return items


def make_scenes(root: Path, dates: list[str], covers: list[float], seed: int = 0) -> list[dict]:
    """One L2A-like scene per date: 12 band COGs (10/20/60 m, DN) and an SCL COG at 20 m
    with a cloud (SCL 9) block in the upper-left corner and nodata (SCL 0) along the right."""
    rng = np.random.default_rng(seed)
    # the band -> asset keys a region's stac section defaults to (Earth Search's)
    required = {"url": "http://x", "bbox": [0, 0, 1, 1], "start": dates[0], "end": dates[-1]}
    band_assets = source_settings("stac", {**required, "crs": CRS})["assets"]
    res = {"B01": 60, "B05": 20, "B06": 20, "B07": 20, "B8A": 20, "B09": 60, "B11": 20, "B12": 20}
    items = []
    root.mkdir(parents=True, exist_ok=True)
    for day, cover in zip(dates, covers, strict=True):
        assets = {}
        for band, key in band_assets.items():
            r = res.get(band, 10)
            n = SCENE_PX * 10 // r
            data = rng.integers(1000, 5000, size=(n, n), dtype=np.uint16)
            write_cog(root / f"{day}_{key}.tif", data, r, 0)
            assets[key] = f"{day}_{key}.tif"
        n = SCENE_PX // 2
        scl = np.full((n, n), 4, np.uint8)
        scl[:8, :8] = 9  # 160 m of cloud at the upper-left corner
        scl[:, -4:] = 0
        write_cog(root / f"{day}_scl.tif", scl, 20, 0)
        assets["scl"] = f"{day}_scl.tif"
        items.append({"date": day, "cover": cover, "assets": assets})
    return items


class StacServer:
    """Serve ``items`` (from make_scenes) and the files in ``root`` on a free local port."""

    def __init__(
        self,
        root: Path,
        items: list[dict],
        fail_every: int = 0,
        fail_paths: str = "",
        *,
        drop_every: int = 0,
        stall_every: int = 0,
        stall_seconds: float = 3.0,
        token: str | None = None,
        sas_token: str | None = None,
        sas_seconds: float = 3600.0,
        sas_key: str | None = None,
        asset_base: str | None = None,
        page_size: int = 0,
        next_base: str | None = None,
        cycle: int = 0,
        raw: dict[str, bytes] | None = None,
        redirect_base: str | None = None,
        search_base: str | None = None,
    ) -> None:
        self.root, self.items, self.fail_every = root, items, fail_every
        self.fail_paths = fail_paths  # requests whose path contains this always fail
        self.drop_every, self.stall_every, self.stall_seconds = (
            drop_every,
            stall_every,
            stall_seconds,
        )
        self.token = token
        self.sas_token, self.sas_seconds, self.sas_fetches = sas_token, sas_seconds, 0
        self.sas_key, self.sas_paths = sas_key, []  # the token requests' paths
        self.asset_base, self.page_size, self.next_base = asset_base, page_size, next_base
        self.cycle, self.raw, self.searches = cycle, dict(raw or {}), 0
        self.redirect_base, self.search_base = redirect_base, search_base
        self.log: list[tuple[str, str, str]] = []
        self.auth: list[tuple[str, str]] = []  # (path, Authorization) of requests with one
        self.failures = 0
        self.drops = self.stalls = self.unauthorised = 0
        self._count = 0
        self._lock = threading.Lock()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> StacServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def cog_requests(self) -> list[tuple[str, str, str]]:
        return [r for r in self.log if r[1].startswith("/cogs/")]

    # --------------------------------------------------------------- STAC documents

    def landing(self) -> dict[str, Any]:
        search = (self.search_base or self.url) + "/search"
        return {
            "type": "Catalog", "id": "test", "stac_version": "1.0.0", "description": "test",
            "conformsTo": CONFORMS,
            "links": [
                {"rel": "self", "href": self.url + "/", "type": "application/json"},
                {"rel": "root", "href": self.url + "/", "type": "application/json"},
                {"rel": "search", "href": search, "method": "GET",
                 "type": "application/geo+json"},
                {"rel": "search", "href": search, "method": "POST",
                 "type": "application/geo+json"},
            ],
        }  # fmt: skip

    def item(self, it: dict) -> dict[str, Any]:
        side = SCENE_PX * 10.0
        box = (ORIGIN[0], ORIGIN[1] - side, ORIGIN[0] + side, ORIGIN[1])
        w, s, e, n = transform_bounds(CRS, "EPSG:4326", *box)
        base = self.asset_base or self.url
        hrefs = {k: f"{base}/cogs/{v}" for k, v in it["assets"].items()} | it.get("hrefs", {})
        return {
            "type": "Feature", "stac_version": "1.0.0", "stac_extensions": [],
            "id": it.get("id", f"S2_{it['date']}"),
            "collection": it.get("collection", "sentinel-2-l2a"), "bbox": [w, s, e, n],
            "geometry": {"type": "Polygon",
                         "coordinates": [[[w, s], [e, s], [e, n], [w, n], [w, s]]]},
            "properties": {"datetime": f"{it['date']}T08:00:00Z",
                           **({} if it["cover"] is None else {"eo:cloud_cover": it["cover"]}),
                           **it.get("properties", {})},
            "assets": {k: {"href": href, "type": "image/tiff"} for k, href in hrefs.items()},
            "links": [],
        }  # fmt: skip

    def search(self, params: dict[str, Any], method: str = "GET") -> dict[str, Any]:
        start, end = str(params.get("datetime", "../..")).split("/")
        query = params.get("query") or {}
        if isinstance(query, str):
            query = json.loads(query)
        lte = query.get("eo:cloud_cover", {}).get("lte")
        lo = date.min if start in ("..", "") else date.fromisoformat(start[:10])
        hi = date.max if end in ("..", "") else date.fromisoformat(end[:10])
        wanted = params.get("collections")
        if isinstance(wanted, str):
            wanted = wanted.split(",")
        feats = [
            self.item(it)
            for it in self.items
            if lo <= date.fromisoformat(it["date"]) <= hi
            and (lte is None or (it["cover"] is not None and it["cover"] <= lte))
            and (not wanted or it.get("collection", "sentinel-2-l2a") in wanted)
        ]
        self.searches += 1
        if self.cycle and self.searches > self.cycle:
            feats = []
        if not self.page_size:
            return {"type": "FeatureCollection", "features": feats, "links": []}
        page = int(params.get("page", 0))
        chunk = feats[page * self.page_size : (page + 1) * self.page_size]
        links = []
        target = page + 1 if (page + 1) * self.page_size < len(feats) else None
        if target is None and self.cycle and feats:
            target = 0
        if target is not None:
            base = (self.next_base or self.url) + "/search"
            following = {**params, "page": target}
            if method == "POST":
                links.append({"rel": "next", "href": base, "method": "POST", "body": following,
                              "type": "application/geo+json"})  # fmt: skip
            else:
                links.append({"rel": "next", "href": f"{base}?{urlencode(following)}",
                              "type": "application/geo+json"})  # fmt: skip
        return {"type": "FeatureCollection", "features": chunk, "links": links}

    # --------------------------------------------------------------- HTTP

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:  # quiet
                pass

            def _flaky(self) -> bool:
                with server._lock:
                    server._count += 1
                    server.log.append((self.command, self.path, self.headers.get("Range", "")))
                    if self.headers.get("Authorization") is not None:
                        server.auth.append((self.path, self.headers["Authorization"]))
                    n = server._count
                    fail = (server.fail_every and n % server.fail_every == 0) or (
                        server.fail_paths and server.fail_paths in self.path
                    )
                    drop = bool(server.drop_every and n % server.drop_every == 0)
                    stall = bool(server.stall_every and n % server.stall_every == 0)
                    denied = bool(
                        server.token
                        and self.headers.get("Authorization") != f"Bearer {server.token}"
                    )
                    server.failures += bool(fail)
                    server.drops += drop and not fail
                    server.stalls += stall and not (fail or drop)
                    server.unauthorised += denied
                if denied:
                    self.send_response(401)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return True
                if drop and not fail:  # hang up without a word
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return True
                if stall and not fail:
                    time.sleep(server.stall_seconds)
                if fail:
                    self.send_response(503)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                return bool(fail)

            def _json(self, doc: dict) -> None:
                self._body(json.dumps(doc).encode())

            def _body(self, body: bytes) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if self._flaky():
                    return
                if urlparse(self.path).path in server.raw:
                    self._body(server.raw[urlparse(self.path).path])
                elif urlparse(self.path).path == "/search":
                    self._json(server.search(json.loads(body or b"{}"), "POST"))
                else:
                    self.send_error(404)

            def do_HEAD(self) -> None:
                self.do_GET(head=True)

            def do_GET(self, head: bool = False) -> None:
                if self._flaky():
                    return
                url = urlparse(self.path)
                if url.path in server.raw:
                    return self._body(server.raw[url.path])
                if url.path in ("/", ""):
                    return self._json(server.landing())
                if url.path == "/search":
                    params = {k: v[0] for k, v in parse_qs(url.query).items()}
                    return self._json(server.search(params))
                if url.path.startswith("/sas/") and server.sas_token:
                    server.sas_paths.append(url.path)
                    key = self.headers.get("Ocp-Apim-Subscription-Key")
                    if server.sas_key and key != server.sas_key:
                        return self.send_error(401)
                    server.sas_fetches += 1
                    expiry = datetime.now(UTC) + timedelta(seconds=server.sas_seconds)
                    return self._json({
                        "msft:expiry": expiry.strftime("%Y-%m-%dT%H:%M:%SZ"),
                        "token": server.sas_token,
                    })  # fmt: skip
                if not url.path.startswith("/cogs/"):
                    return self.send_error(404)
                if server.redirect_base:
                    self.send_response(302)
                    self.send_header("Location", server.redirect_base + self.path)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return None
                if server.sas_token and url.query != server.sas_token:
                    return self.send_error(403)
                path = server.root / Path(url.path).name
                if not path.is_file():
                    return self.send_error(404)
                data = path.read_bytes()
                rng = self.headers.get("Range")
                if rng and rng.startswith("bytes="):
                    a, _, b = rng[6:].split(",")[0].partition("-")
                    lo, hi = int(a), min(int(b) if b else len(data) - 1, len(data) - 1)
                    chunk = data[lo : hi + 1]
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {lo}-{hi}/{len(data)}")
                else:
                    chunk = data
                    self.send_response(200)
                self.send_header("Accept-Ranges", "bytes")
                self.send_header("Content-Type", "image/tiff")
                self.send_header("Content-Length", str(len(chunk)))
                self.end_headers()
                if not head:
                    self.wfile.write(chunk)

        return Handler

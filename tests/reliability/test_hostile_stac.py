"""A STAC catalogue that is wrong or hostile: the bearer token stays on the API's host, asset
hrefs are remote URLs on allowed hosts only, paging is bounded, stays on the API and stops
where it loops, malformed answers and items are named, and a bbox that is not lon/lat or
plans a huge grid is refused before anything is allocated or fetched."""

from __future__ import annotations

import re
import time

import pytest

from cloudfree.errors import ConfigError, InputDataError
from cloudfree.tiles.hosts import HostPolicy
from cloudfree.tiles.region import download_tiles
from cloudfree.tiles.stac_settings import check_stac
from tests.stac_server import StacServer, make_scenes
from tests.tiles.test_stac import stac_cfg

pytestmark = pytest.mark.reliability
DATES = ["2021-03-02", "2021-03-12", "2021-03-22"]
TOKEN = "h0stile-t0ken-7331"
TOKEN_ENV = "CLOUDFREE_TEST_STAC_TOKEN"


@pytest.fixture(scope="module")
def scenes(tmp_path_factory):
    root = tmp_path_factory.mktemp("cogs")
    return root, make_scenes(root, DATES, [10.0, 20.0, 30.0])


def run(tmp_path, cfg):
    tiles, csv = tmp_path / "resources/tiles/s", tmp_path / "results/tiles/s.csv"
    return download_tiles("s", {"source": "stac", "stac": cfg}, tiles, csv, {}), tiles, csv


def port(server: StacServer) -> int:
    return server.httpd.server_address[1]


def nothing_written(tmp_path) -> bool:
    return not (tmp_path / "results/tiles/s.csv").exists() and not any(
        (tmp_path / "resources").rglob("*.tif")
    )


# --------------------------------------------------------------------------- the token


def test_the_token_never_reaches_an_asset_host_on_another_origin(tmp_path, scenes, monkeypatch):
    root, items = scenes
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    with StacServer(root, items) as foreign:
        with StacServer(root, items, token=TOKEN, asset_base=foreign.url) as api:
            manifest, _, _ = run(tmp_path, stac_cfg(api.url, token_env=TOKEN_ENV))
    assert sorted(manifest["date"].unique()) == DATES
    assert foreign.cog_requests() and not api.cog_requests()  # the COGs came from the other
    assert foreign.auth == []  # ... which never saw an Authorization header
    assert api.unauthorised == 0 and api.auth  # the API got the token on every request
    assert all(value == f"Bearer {TOKEN}" for _, value in api.auth)


def test_token_hosts_extend_the_token_to_the_named_hosts_only(tmp_path, scenes, monkeypatch):
    root, items = scenes
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    with StacServer(root, items, token=TOKEN) as cogs, StacServer(root, items) as other:
        mixed = [
            {**it, "hrefs": {"blue": f"{other.url}/cogs/{it['date']}_blue.tif"}} for it in items
        ]
        with StacServer(root, mixed, token=TOKEN, asset_base=cogs.url) as api:
            hosts = [f"127.0.0.1:{port(cogs)}"]
            run(tmp_path, stac_cfg(api.url, token_env=TOKEN_ENV, token_hosts=hosts))
    assert cogs.unauthorised == 0 and cogs.cog_requests()  # the named host got the token
    assert other.cog_requests() and other.auth == []  # the blue band's host did not


@pytest.mark.parametrize(
    ("api", "url", "gets"),
    [
        ("https://stac.example.org/api", "https://cogs.example.org/a.tif", True),
        ("https://stac.example.org/api", "http://cogs.example.org/a.tif", False),
        ("https://stac.example.org/api", "https://cogs.example.org:8443/a.tif", False),
        ("https://stac.example.org/api", "https://evil.example.com/a.tif", False),
        ("https://stac.example.org/api", "http://stac.example.org/api/search", False),
        ("http://127.0.0.1:8000/api", "http://cogs.example.org/a.tif", True),
    ],
)
def test_a_token_host_gets_the_token_only_over_https(api, url, gets):
    """A listed host gets the token only encrypted (unless the API itself is plain http, a
    local server), only on its port, and the API's own origin includes its scheme."""

    class Spec:
        token_hosts = ("cogs.example.org",)
        asset_hosts = ()

    Spec.url = api
    assert HostPolicy.of(Spec()).gets_token(url) is gets


def test_a_redirect_to_another_host_does_not_carry_the_token(tmp_path, scenes, monkeypatch):
    root, items = scenes
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    with StacServer(root, items) as foreign:
        with StacServer(root, items, token=TOKEN, redirect_base=foreign.url) as api:
            manifest, _, _ = run(tmp_path, stac_cfg(api.url, token_env=TOKEN_ENV))
    assert sorted(manifest["date"].unique()) == DATES
    assert api.cog_requests() and foreign.cog_requests()  # every COG read was redirected
    assert foreign.auth == []


@pytest.mark.parametrize("link", ["next", "search"])
def test_a_search_or_next_link_to_another_host_is_refused(tmp_path, scenes, monkeypatch, link):
    root, items = scenes
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    with StacServer(root, items) as foreign:
        elsewhere = {"next_base": foreign.url} if link == "next" else {"search_base": foreign.url}
        with StacServer(root, items, token=TOKEN, page_size=1, **elsewhere) as api:
            cfg = stac_cfg(api.url, token_env=TOKEN_ENV, retries=0)
            with pytest.raises(InputDataError) as err:
                run(tmp_path, cfg)
    message = str(err.value)
    if link == "next":
        where = f"page 1 of the search links its next page to 127.0.0.1:{port(foreign)}"
    else:
        where = f"a link to '{foreign.url}/search' is not on the API's host"
    assert message.startswith(f"STAC API {api.url}: ") and where in message
    assert foreign.log == []  # not a single request, so no token and no search either
    assert nothing_written(tmp_path)


# --------------------------------------------------------------------------- asset hrefs


@pytest.mark.parametrize("kind", ["path", "file", "vsi", "relative"])
def test_an_asset_href_that_is_not_a_remote_url_is_refused(tmp_path, scenes, kind):
    root, items = scenes
    local = root / f"{DATES[0]}_scl.tif"
    with StacServer(root, items) as server:
        href = {
            "path": str(local),
            "file": local.as_uri(),
            "vsi": f"/vsicurl/{server.url}/cogs/{local.name}",
            "relative": local.name,
        }[kind]
        bad = [{**items[0], "hrefs": {"scl": href}}, *items[1:]]
        server.items = bad
        with pytest.raises(InputDataError) as err:
            run(tmp_path, stac_cfg(server.url, retries=0))
    message = str(err.value)
    assert message.startswith(f"STAC item S2_{DATES[0]}: asset 'scl' href {href!r}")
    assert "is not an http(s) URL" in message
    assert server.cog_requests() == []  # refused before anything was read
    assert nothing_written(tmp_path)


def test_asset_hosts_limit_where_cogs_come_from(tmp_path, scenes):
    root, items = scenes
    with StacServer(root, items) as foreign:
        with StacServer(root, items, asset_base=foreign.url) as api:
            with pytest.raises(InputDataError) as err:
                run(tmp_path / "a", stac_cfg(api.url, asset_hosts=["cogs.example.org"]))
            assert foreign.cog_requests() == []
            allowed = [f"127.0.0.1:{port(foreign)}"]
            manifest, _, _ = run(tmp_path / "b", stac_cfg(api.url, asset_hosts=allowed))
    assert f"is on 127.0.0.1:{port(foreign)}, which is neither the API's host" in str(err.value)
    assert "stac.asset_hosts" in str(err.value) and "S2_2021-03-02" in str(err.value)
    assert sorted(manifest["date"].unique()) == DATES and foreign.cog_requests()


# --------------------------------------------------------------------------- paging


def test_paging_is_bounded_by_max_pages(tmp_path, scenes):
    root, items = scenes
    with StacServer(root, items, page_size=1) as server:
        with pytest.raises(InputDataError) as err:
            run(tmp_path / "a", stac_cfg(server.url, max_pages=2))
        assert server.searches == 2
        manifest, _, _ = run(tmp_path / "b", stac_cfg(server.url, max_pages=3))
    assert "the search has more than 2 pages (regions.s.stac.max_pages)" in str(err.value)
    assert sorted(manifest["date"].unique()) == DATES  # three pages of one item each


def test_a_next_link_back_to_a_page_already_read_stops_the_search(tmp_path, scenes):
    root, items = scenes
    with StacServer(root, items, page_size=1, cycle=50) as server:
        start = time.monotonic()
        with pytest.raises(InputDataError, match=r"links back to page \d+ .*the paging loops"):
            run(tmp_path, stac_cfg(server.url))
    assert server.searches <= 5 and time.monotonic() - start < 30
    assert nothing_written(tmp_path)


# --------------------------------------------------------------------------- malformed answers


@pytest.mark.parametrize("path", ["/", "/search"])
def test_an_answer_that_is_not_json_names_its_url(tmp_path, scenes, path):
    root, items = scenes
    with StacServer(root, items, raw={path: b'{"type": "FeatureCollection", "features": [tr'}) as s:
        with pytest.raises(InputDataError) as err:
            run(tmp_path, stac_cfg(s.url, retries=0))
    url = s.url if path == "/" else s.url + path  # the API's root as configured
    assert f"the answer of {url} is not JSON" in str(err.value)
    assert nothing_written(tmp_path)


@pytest.mark.parametrize(
    ("properties", "named"),
    [
        ({"datetime": None}, "datetime is null and there is no start_datetime"),
        ({"datetime": "last tuesday"}, "not a valid STAC item"),
        ({"eo:cloud_cover": "cloudy"}, "eo:cloud_cover 'cloudy' is not a percentage"),
        ({"eo:cloud_cover": None}, "eo:cloud_cover None is not a percentage"),
        ({"eo:cloud_cover": 140}, "eo:cloud_cover 140 is not a percentage"),
    ],
)
def test_an_item_without_a_date_or_cloud_cover_is_named(tmp_path, scenes, properties, named):
    root, items = scenes
    bad = [{**items[1], "properties": properties}, items[0]]
    with StacServer(root, bad) as server:
        with pytest.raises(InputDataError) as err:
            run(tmp_path, stac_cfg(server.url))
    assert f"STAC item S2_{DATES[1]}" in str(err.value) and named in str(err.value)
    assert server.cog_requests() == [] and nothing_written(tmp_path)


def test_an_item_with_a_date_range_is_dated_by_its_start(tmp_path, scenes):
    root, items = scenes
    ranged = {
        "datetime": None,
        "start_datetime": f"{DATES[1]}T07:00:00Z",
        "end_datetime": f"{DATES[1]}T09:00:00Z",
    }
    with StacServer(root, [{**items[1], "properties": ranged}]) as server:
        manifest, _, _ = run(tmp_path, stac_cfg(server.url))
    assert list(manifest["date"].unique()) == [DATES[1]]


# --------------------------------------------------------------------------- the bbox


def test_a_reversed_bbox_is_a_config_error_naming_the_key(tmp_path, scenes):
    root, items = scenes
    cfg = stac_cfg("http://unused")
    west, south, east, north = cfg["bbox"]
    with StacServer(root, items) as server:
        for bbox, named in [
            ([east, south, west, north], re.escape(f"west {east:g} is not west of east {west:g}")),
            ([west, north, east, south], "is not south of north"),
        ]:
            with pytest.raises(ConfigError, match=named) as err:
                run(tmp_path, stac_cfg(server.url, bbox=bbox))
            assert str(err.value).startswith("regions.s.stac.bbox: ")
    assert server.log == []  # refused before the API was asked
    with pytest.raises(ConfigError, match=r"^regions\.x\.stac\.bbox: west"):
        check_stac({**cfg, "bbox": [east, south, west, north]}, "regions.x.stac")


def test_a_bbox_outside_lon_lat_is_refused_at_config_time():
    start = time.monotonic()
    with pytest.raises(ConfigError, match=r"^regions\.r\.stac\.bbox"):
        stac_cfg("http://unused", bbox=[400, -100, 500, 100])
    cfg = stac_cfg("http://unused")
    with pytest.raises(ConfigError, match=r"regions\.x\.stac\.bbox: west 400 is outside"):
        check_stac({**cfg, "bbox": [400, -100, 500, 100]}, "regions.x.stac")
    with pytest.raises(ConfigError, match=r"regions\.x\.stac\.bbox: .* is not four numbers"):
        check_stac({**cfg, "bbox": [1, 2, 3]}, "regions.x.stac")
    assert time.monotonic() - start < 10


@pytest.mark.parametrize(
    ("extra", "grid"),
    [
        ({"bbox": [30, -10, 40, 0], "tile_size": 256}, "[30.0, -10.0, 40.0, 0.0] is a grid of"),
        ({"max_tiles": 3}, "is a grid of 64 x 64 px at resolution 10 in EPSG:32737, 4 tiles"),
    ],
)
def test_a_huge_region_is_refused_before_a_grid_is_allocated(tmp_path, scenes, extra, grid):
    root, items = scenes
    with StacServer(root, items, fail_paths="/") as server:
        start = time.monotonic()
        with pytest.raises(ConfigError) as err:
            run(tmp_path, stac_cfg(server.url, retries=0, **extra))
    assert time.monotonic() - start < 10 and server.log == []  # nothing asked of the API
    message = str(err.value)
    limit = extra.get("max_tiles", 20000)
    assert message.startswith("regions.s.stac.bbox: ") and grid in message
    assert f"more than regions.s.stac.max_tiles ({limit})" in message
    assert nothing_written(tmp_path)

"""Tests of cloudfree.tiles.stac against a real HTTP server on 127.0.0.1 (STAC search + COG
ranges)."""

from __future__ import annotations

import shutil
import socket
from collections import Counter

import numpy as np
import pytest
import rasterio
from rasterio.warp import transform_bounds

from cloudfree.config import source_settings
from cloudfree.errors import ConfigError, InputDataError
from cloudfree.manifest import read_manifest
from cloudfree.tiles.region import download_tiles, staging_dir
from cloudfree.tiles.stac import StacSpec
from cloudfree.tiles.stac_fetch import item_offset
from cloudfree.tiles.stac_items import cloud_cover, item_bbox, parse_item
from cloudfree.tiles.stac_settings import check_stac

from ..stac_server import CRS, ORIGIN, StacServer, make_scenes, write_cog

DATES = ["2021-03-02", "2021-03-12", "2021-03-22"]
COVERS = [10.0, 80.0, 20.0]  # the second date is above max_cloud_cover


@pytest.fixture(scope="module")
def scenes(tmp_path_factory):
    root = tmp_path_factory.mktemp("cogs")
    return root, make_scenes(root, DATES, COVERS)


def stac_cfg(url: str, **extra) -> dict:
    """The resolved ``stac`` section of a region on the test server at ``url``."""
    # 64 x 64 px of 10 m at the scene's upper-left corner, in degrees
    box = (ORIGIN[0] + 5, ORIGIN[1] - 635, ORIGIN[0] + 635, ORIGIN[1] - 5)
    return source_settings("stac", {
        "url": url, "bbox": list(transform_bounds(CRS, "EPSG:4326", *box)),
        "start": "2021-03-01", "end": "2021-03-31", "max_cloud_cover": 50, "crs": CRS,
        "tile_size": 32, "block": 1, "val_fraction": 0.25, "test_fraction": 0.25,
        "retries": 5, "backoff": 0.01, "timeout": 5, **extra,
    })  # fmt: skip


def run(tmp_path, cfg):
    """The tile stage on a STAC region (L2A: masks from SCL, no detector settings)."""
    tiles, csv = tmp_path / "resources/tiles/s", tmp_path / "results/tiles/s.csv"
    return download_tiles("s", {"source": "stac", "stac": cfg}, tiles, csv, {}), tiles, csv


def test_stac_tiles_through_a_flaky_server(tmp_path, scenes):
    root, items = scenes
    with StacServer(root, items, fail_every=7) as server:
        manifest, tiles, csv = run(tmp_path, stac_cfg(server.url))
    assert server.failures > 0  # the retries went through the failed requests
    assert read_manifest(csv).equals(manifest)
    assert sorted(manifest["date"].unique()) == ["2021-03-02", "2021-03-22"]
    assert set(manifest["split"]) == {"train", "val", "test"}
    for _, rows in manifest.groupby("tile"):
        assert list(rows["date"]) == sorted(rows["date"])
        for _, row in rows.iterrows():
            with rasterio.open(row["image"]) as img, rasterio.open(row["mask"]) as msk:
                assert img.crs.to_epsg() == 32737 and img.res == (10.0, 10.0)
                assert img.count == 13 and img.dtypes[0] == "uint16"
                assert msk.transform == img.transform and msk.shape == img.shape
                assert img.bounds == pytest.approx((row.left, row.bottom, row.right, row.top))
                dn, mask = img.read(), msk.read(1)
            assert ((dn[:, mask != 255] > 0).all()) and (dn[:, mask == 255] == 0).all()
    first = manifest.set_index("tile").loc["r0c0"].iloc[0]
    with rasterio.open(first["mask"]) as msk:
        m = msk.read(1)
    assert (m == 1).any() and (m == 0).any()  # SCL 9 (cloud) in the corner, SCL 4 elsewhere
    # windowed reads only: every COG GET asks for a byte range, none for a whole file
    gets = [r for r in server.cog_requests() if r[0] == "GET"]
    assert gets and all(r[2].startswith("bytes=") for r in gets)
    assert not staging_dir(tiles).exists()


def test_rerun_fetches_only_missing_tiles(tmp_path, scenes):
    root, items = scenes
    with StacServer(root, items) as server:
        manifest, tiles, csv = run(tmp_path, stac_cfg(server.url))
    full = len(server.cog_requests())
    # an interrupted run: its staging folder holds all tiles but one tile date
    shutil.copytree(tiles, staging_dir(tiles))
    shutil.rmtree(tiles)
    csv.unlink()
    for suffix in ("S2", "CLD"):
        (staging_dir(tiles) / "r1c1" / f"2021-03-22_{suffix}.tif").unlink()
    # a new server (new port, so nothing comes from GDAL's in-process cache)
    with StacServer(root, items) as again_server:
        again, _, _ = run(tmp_path, stac_cfg(again_server.url))
    partial = again_server.cog_requests()
    cols = ["tile", "date", "split", "left", "top"]
    assert again[cols].equals(manifest[cols])
    # only the missing date's files were asked for, and fewer requests than a full run
    assert {r[1].split("/")[-1][:10] for r in partial} == {"2021-03-22"}
    assert 0 < len(partial) < full


def test_unreachable_api_is_a_clear_error(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed once the block ends: nothing listens there
    with pytest.raises(InputDataError, match=rf"127\.0\.0\.1:{port} cannot be reached"):
        run(tmp_path, stac_cfg(f"http://127.0.0.1:{port}", retries=1))
    assert not (tmp_path / "resources/tiles").exists() or not any(
        (tmp_path / "resources/tiles").iterdir()
    )


def test_no_items_names_the_search(tmp_path, scenes):
    root, items = scenes
    with StacServer(root, items) as server, pytest.raises(InputDataError, match="no sentinel"):
        run(tmp_path, stac_cfg(server.url, start="2022-01-01", end="2022-02-01"))
    assert not (tmp_path / "results/tiles/s.csv").exists()


def test_failing_cog_gives_up_naming_the_file_and_a_rerun_resumes(tmp_path, scenes):
    root, items = scenes
    # every request for the last date's files fails: the first date's tiles get written
    with StacServer(root, items, fail_paths="2021-03-22_") as server:
        with pytest.raises(InputDataError, match=r"/cogs/2021-03-22_.*tried up to 2 times"):
            run(tmp_path, stac_cfg(server.url, retries=1))
    tiles = tmp_path / "resources/tiles/s"
    assert not tiles.exists() and not (tmp_path / "results/tiles/s.csv").exists()
    kept = sorted(p.name for p in staging_dir(tiles).rglob("*.tif"))
    assert kept and all(name.startswith("2021-03-02_") for name in kept)
    with StacServer(root, items) as server:
        manifest, _, _ = run(tmp_path, stac_cfg(server.url))
    fetched = {r[1].split("/")[-1][:10] for r in server.cog_requests()}
    assert fetched == {"2021-03-22"} and sorted(manifest["date"].unique()) == [
        "2021-03-02",
        "2021-03-22",
    ]
    assert not staging_dir(tiles).exists()


def test_l2a_item_without_scl_is_named(tmp_path, scenes):
    root, items = scenes
    no_scl = [
        {**it, "assets": {k: v for k, v in it["assets"].items() if k != "scl"}} for it in items
    ]
    with StacServer(root, no_scl) as server:
        with pytest.raises(InputDataError, match=r"STAC item S2_2021-03-02: no 'scl' asset"):
            run(tmp_path, stac_cfg(server.url))
    assert not (tmp_path / "results/tiles/s.csv").exists()
    assert not (tmp_path / "resources/tiles/s").exists()


SAS = "st=2021-03-01&se=2031-03-01&sp=rl&sig=s3cr3tSignature"


def test_planetary_computer_urls_are_signed_once_per_collection(tmp_path, scenes, caplog):
    root, items = scenes
    with StacServer(root, items, sas_token=SAS) as server:
        with pytest.raises(InputDataError, match=r"tried up to 1 time\):") as unsigned:
            run(tmp_path / "a", stac_cfg(server.url, retries=0))
        cfg = stac_cfg(server.url, sign="planetary_computer", sign_url=server.url + "/sas")
        with caplog.at_level("DEBUG"):
            manifest, tiles, csv = run(tmp_path / "b", cfg)
    assert server.sas_fetches == 1  # one token for the whole run (valid an hour)
    requests = server.cog_requests()
    first_signed = next(i for i, r in enumerate(requests) if r[1].endswith("?" + SAS))
    assert all("?" not in r[1] for r in requests[:first_signed])  # the refused first run
    gets = [r for r in requests[first_signed:] if r[0] == "GET"]
    assert gets and all(r[1].endswith("?" + SAS) and r[2].startswith("bytes=") for r in gets)
    assert manifest["tile"].nunique() == 4
    assert "tried up to 1 time)" in str(unsigned.value)
    assert "s3cr3t" not in caplog.text and "s3cr3t" not in csv.read_text()
    for path in tiles.rglob("*.tif"):
        with rasterio.open(path) as src:
            assert "s3cr3t" not in str(src.tags())


def test_a_failing_signed_read_names_the_file_without_the_token(tmp_path, scenes, caplog):
    root, items = scenes
    cfg = stac_cfg("http://unused", sign="planetary_computer", retries=1)
    with StacServer(root, items, sas_token=SAS, fail_paths="_green.tif") as server:
        cfg |= {"url": server.url, "sign_url": server.url + "/sas"}
        with caplog.at_level("DEBUG"), pytest.raises(InputDataError) as err:
            run(tmp_path, cfg)
    assert any(r[1].endswith("_green.tif?" + SAS) for r in server.cog_requests())
    message = str(err.value)
    assert (
        "_green.tif: failed (each HTTP request tried up to 2 times)" in message
        and "s3cr3t" not in message
    )
    assert err.value.__cause__ is None and err.value.__suppress_context__
    assert "s3cr3t" not in caplog.text


def test_a_changed_setting_discards_the_interrupted_download(tmp_path, scenes):
    """Tiles kept from an interrupted run are reused only under the same settings."""
    root, items = scenes
    with StacServer(root, items, fail_paths="2021-03-22_") as server:
        with pytest.raises(InputDataError):
            run(tmp_path, stac_cfg(server.url, retries=0))
    staging = staging_dir(tmp_path / "resources/tiles/s")
    assert any(staging.rglob("2021-03-02_S2.tif"))
    with StacServer(root, items) as server:
        run(tmp_path, stac_cfg(server.url, offset=-100))
    fetched = {r[1].split("/")[-1][:10] for r in server.cog_requests()}
    assert fetched == {"2021-03-02", "2021-03-22"}  # all fetched again
    assert not staging.exists() and not any((tmp_path / "resources").rglob(".settings.json"))


@pytest.mark.parametrize(
    ("properties", "offset"),
    [
        ({"s2:processing_baseline": "04.00"}, -1000),
        ({"s2:processing_baseline": "05.09"}, -1000),
        ({"s2:processing_baseline": "02.09"}, 0),
        ({"s2:processing_baseline": "04.00", "earthsearch:boa_offset_applied": True}, 0),
        ({}, 0),
    ],
)
def test_auto_offset_removes_the_boa_offset_per_item(tmp_path, scenes, properties, offset):
    root, items = scenes
    with StacServer(root, items) as server:
        raw, _, _ = run(tmp_path / "raw", stac_cfg(server.url, offset=0))
    tagged = [{**it, "properties": properties} for it in items]
    with StacServer(root, tagged) as server:
        auto, _, _ = run(tmp_path / "auto", stac_cfg(server.url, offset="auto"))
    for a, b in zip(raw.itertuples(), auto.itertuples(), strict=True):
        with rasterio.open(a.image) as x, rasterio.open(b.image) as y:
            before, after = x.read().astype(int), y.read().astype(int)
        valid = before > 0
        assert valid.any() and (after[~valid] == 0).all()
        np.testing.assert_array_equal(after[valid], np.maximum(before[valid] + offset, 1))


def test_an_unreadable_processing_baseline_is_named():
    item = type("Item", (), {"id": "S2X", "properties": {"s2:processing_baseline": [4]}})()
    with pytest.raises(InputDataError, match=r"S2X: s2:processing_baseline \[4\]"):
        item_offset(item, StacSpec.from_dict(stac_cfg("http://x", offset="auto")))


def test_bad_offset_and_signer_are_config_errors():
    # the schema holds the allowed values and names the key
    with pytest.raises(ConfigError, match=r"stac\.offset: 'harmonize'"):
        stac_cfg("http://x", offset="harmonize")
    with pytest.raises(ConfigError, match=r"stac\.sign: 'aws'"):
        stac_cfg("http://x", sign="aws")
    assert StacSpec.from_dict(stac_cfg("http://x", offset="auto")).offset == "auto"


def test_spec_checks_what_the_schema_cannot():
    cfg = stac_cfg("http://x")
    spec = StacSpec.from_dict(cfg)
    assert spec.token_env is None and spec.assets["B02"] == "blue"  # Earth Search's, the default
    assert spec.bbox == tuple(cfg["bbox"]) and spec.start == "2021-03-01"
    with pytest.raises(ConfigError, match=r"stac\.assets: unknown bands \['B13'\]"):
        StacSpec.from_dict({**cfg, "assets": {"B13": "x"}})
    with pytest.raises(ConfigError, match=r"stac\.crs"):
        StacSpec.from_dict({**cfg, "crs": "EPSG:99999999"})
    with pytest.raises(ConfigError, match=r"stac: missing keys \['url'\]"):
        StacSpec.from_dict({k: v for k, v in cfg.items() if k != "url"})
    with pytest.raises(ConfigError, match=r"stac: unknown keys \['colour'\]"):
        StacSpec.from_dict({**cfg, "colour": 1})


def test_check_stac_names_the_key_of_what_is_wrong():
    cfg = stac_cfg("http://x")
    spec = StacSpec.from_dict(cfg)
    assert (spec.token_hosts, spec.asset_hosts, spec.max_pages) == ((), (), 100)
    where = "regions.x.stac"
    for bad, named in [
        ({"url": "file:///catalog.json"}, r"regions\.x\.stac\.url: 'file:///catalog\.json' is not"),
        ({"sign": "planetary_computer", "sign_url": "/sas"}, r"regions\.x\.stac\.sign_url: '/sas'"),
        ({"start": "2021-04-01"}, r"regions\.x\.stac\.end: 2021-03-31 is before"),
        ({"bbox": [0, 0, 1, float("nan")]}, r"regions\.x\.stac\.bbox: .* is not four numbers"),
        ({"bbox": [0, -91, 1, 1]}, r"regions\.x\.stac\.bbox: south -91 is outside -90\.\.90"),
        ({"token_hosts": ["a/b"]}, r"regions\.x\.stac\.token_hosts: 'a/b' is not a host"),
        ({"assets": {"B13": "x"}}, r"regions\.x\.stac\.assets: unknown bands \['B13'\]"),
    ]:
        with pytest.raises(ConfigError, match=named):
            check_stac({**cfg, **bad}, where)
    with pytest.raises(ConfigError, match=r"regions\.r\.stac\.token_hosts\.0"):
        stac_cfg("http://x", token_hosts=["a b"])  # the schema's pattern
    with pytest.raises(ConfigError, match=r"regions\.r\.stac\.max_pages"):
        stac_cfg("http://x", max_pages=0)


def test_parse_item_reads_3d_bboxes_and_numeric_strings():
    feature = {
        "type": "Feature", "stac_version": "1.0.0", "id": "S2X", "geometry": None,
        "bbox": [39.0, -15.0, 0.0, 39.1, -14.9, 10.0], "links": [], "assets": {},
        "properties": {"datetime": "2021-03-02T08:00:00Z", "eo:cloud_cover": "12.5"},
    }  # fmt: skip
    item = parse_item(feature, "http://api")
    assert item_bbox(item) == (39.0, -15.0, 39.1, -14.9) and cloud_cover(item) == 12.5
    with pytest.raises(InputDataError, match=r"STAC item S2X: bbox \[1, 2\] is not 4 or 6"):
        parse_item({**feature, "bbox": [1, 2]}, "http://api")
    with pytest.raises(InputDataError, match=r"STAC API http://api: a search result without an"):
        parse_item({**feature, "id": None}, "http://api")


def test_an_asset_is_tried_retries_plus_one_times_in_all(tmp_path, scenes):
    """One retry layer: GDAL does not retry each request under the stage's own retries."""
    root, items = scenes
    with StacServer(root, items, fail_paths="_green.tif") as server:
        with pytest.raises(InputDataError, match="tried up to 3 times"):
            run(tmp_path, stac_cfg(server.url, retries=2))
    tries = Counter(r[1].split("?")[0] for r in server.cog_requests() if "_green.tif" in r[1])
    assert tries and max(tries.values()) == 3


DAY = "2021-03-02"


@pytest.fixture(scope="module")
def same_day(tmp_path_factory):
    """Two items of one day: ``S2A`` (make_scenes: cloud on the 16 x 16 px corner, at
    08:00:10) and ``S2B`` (every band DN 7000, at 08:00:00) with cloud on rows 16-28 and the
    4 x 4 px corner, both with nodata along the right."""
    root = tmp_path_factory.mktemp("same_day")
    (a,) = make_scenes(root, [DAY], [10.0])
    b_assets = {}
    for key, name in a["assets"].items():
        with rasterio.open(root / name) as src:
            res, shape = src.res[0], src.shape
        data = np.full(shape, 7000, np.uint16)
        if key == "scl":
            data = np.full(shape, 4, np.uint8)
            data[:, -4:] = 0
            data[8:14, :16] = 9
            data[:2, :2] = 9
        write_cog(root / f"B_{name}", data, res, 0)
        b_assets[key] = f"B_{name}"
    items = [
        {**a, "id": "S2A_T1", "properties": {"datetime": f"{DAY}T08:00:10Z"}},
        {"date": DAY, "cover": 30.0, "id": "S2B_T2", "assets": b_assets,
         "properties": {"datetime": f"{DAY}T08:00:00Z"}},
    ]  # fmt: skip
    return root, items


@pytest.mark.parametrize("rule", ["least_cloudy", "first"])
def test_items_of_one_day_are_merged_like_folder_files(tmp_path, same_day, rule):
    root, items = same_day
    with StacServer(root, items) as server:
        manifest, _, csv = run(tmp_path, stac_cfg(server.url, same_date=rule))
    assert read_manifest(csv).equals(manifest) and set(manifest["date"]) == {DAY}
    row = manifest.set_index("tile").loc["r0c0"]
    # on r0c0, S2A is a quarter cloudy, S2B more: least cloudy S2A first; first: by time
    order = ["S2A_T1", "S2B_T2"] if rule == "least_cloudy" else ["S2B_T2", "S2A_T1"]
    assert row["acquisitions"].split(";") == order and row["merge"] == rule
    with rasterio.open(row["image"]) as img, rasterio.open(row["mask"]) as msk:
        dn, mask, tags = img.read(), msk.read(1), img.tags()
    assert tags["STAC_ITEMS"] == row["acquisitions"] and tags["SAME_DATE"] == rule
    b = dn[[i for i in range(13) if i != 10]]  # B10 is the fill value in both
    assert (b[:, 8, 8] == 7000).all() and mask[8, 8] == 0  # cloud in S2A, clear in S2B
    assert (b[:, 22, 8] != 7000).all() and mask[22, 8] == 0  # cloud in S2B, clear in S2A
    assert mask[1, 1] == 1  # cloudy in both
    assert ((b[:, 8, 24] == 7000).all()) == (rule == "first")  # clear in both
    assert ((b[:, 1, 1] == 7000).all()) == (rule == "first")

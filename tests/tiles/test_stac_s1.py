"""Sentinel-1 from a STAC catalogue (``stac.s1``), against the local STAC server: nearest-day
matching to the optical dates, the values in dB on the tile, resuming, signing with the
collection's own token, and what the catalogue says checked before it is read."""

from __future__ import annotations

import datetime as dt
import shutil

import numpy as np
import pytest
import rasterio
from pystac import Item
from rasterio.control import GroundControlPoint

from cloudfree.config import source_settings
from cloudfree.errors import ConfigError, InputDataError
from cloudfree.preflight import s1_source
from cloudfree.tiles.folder_s1 import backscatter_db
from cloudfree.tiles.region import staging_dir
from cloudfree.tiles.stac_s1 import S1Day, StacS1Spec, read_s1, search_period

from ..stac_server import CRS, ORIGIN, StacServer, make_s1_scenes, make_scenes
from .test_stac import COVERS, DATES, run, stac_cfg

# Optical dates kept: 2021-03-02 and 2021-03-22 (2021-03-12 is too cloudy).
S1_DATES = ["2021-02-27", "2021-03-10", "2021-03-21", "2021-03-29"]
ORBITS = ["descending", "descending", "ascending", "descending"]
KEY = "pc-subscription-k3y"
SAS = "st=2021&sig=s1s3cr3t"


@pytest.fixture(scope="module")
def scenes(tmp_path_factory):
    root = tmp_path_factory.mktemp("cogs_s1")
    return root, make_scenes(root, DATES, COVERS) + make_s1_scenes(root, S1_DATES, ORBITS)


def s1_cfg(url: str, **s1) -> dict:
    return stac_cfg(url, s1=s1)


def test_each_date_gets_the_nearest_s1_day_in_db(tmp_path, scenes):
    root, items = scenes
    with StacServer(root, items) as server:
        manifest, _, _ = run(tmp_path, s1_cfg(server.url, orbit_state="descending"))
    by_date = manifest.groupby("date")["s1"].apply(lambda col: set(col.astype(bool)))
    # 2021-03-02 <- 2021-02-27 (3 days); 2021-03-22: 03-21 is ascending, 03-29 7 days away
    assert by_date.to_dict() == {"2021-03-02": {True}, "2021-03-22": {False}}
    for _, row in manifest[manifest["date"] == "2021-03-02"].iterrows():
        with rasterio.open(row["s1"]) as src, rasterio.open(row["image"]) as img:
            assert src.crs == img.crs and src.transform == img.transform
            assert src.count == 2 and src.dtypes == ("float32", "float32")
            assert src.descriptions == ("VV", "VH")
            tags, db = src.tags(), src.read()
        assert tags["S1_DATE"] == "2021-02-27" and tags["S1_DAYS"] == "-3"
        assert tags["S1_STAC_ITEMS"] == "S1_2021-02-27" and tags["UNITS"] == "dB"
        # the scene's 16 leftmost columns are nodata: NaN on tiles over them, dB elsewhere
        x0 = (src.transform.c - ORIGIN[0]) / 10
        cols = x0 + np.arange(db.shape[2]) + 0.5
        assert np.isnan(db[:, :, cols < 15]).all()
        assert np.isfinite(db[:, :, cols > 17]).all()
        if (cols > 17).any():
            assert np.nanmean(db[0]) == pytest.approx(-12.0, abs=0.5)
            assert np.nanmean(db[1]) == pytest.approx(-19.0, abs=0.5)


def test_values_are_the_source_backscatter_converted_to_db(tmp_path, scenes):
    root, items = scenes
    with StacServer(root, items) as server:
        manifest, _, _ = run(tmp_path, s1_cfg(server.url))
    row = manifest[(manifest["date"] == "2021-03-22")].set_index("tile").loc["r0c1"]
    with rasterio.open(row["s1"]) as src:
        assert src.tags()["S1_DATE"] == "2021-03-21"  # ascending allowed: 1 day
        db, transform = src.read(), src.transform
    with rasterio.open(root / "S1_2021-03-21_vv.tif") as vv:
        col, line = ~vv.transform @ (transform.c, transform.f)
        window = ((round(line), round(line) + db.shape[1]), (round(col), round(col) + db.shape[2]))
        linear = vv.read(1, window=window)
    assert vv.transform.a == transform.a  # the same 10 m grid: the warp copies the pixels
    np.testing.assert_allclose(db[0], 10 * np.log10(linear), atol=1e-4)


def test_a_rerun_reads_only_the_missing_s1_file(tmp_path, scenes):
    root, items = scenes
    with StacServer(root, items) as server:
        manifest, tiles, csv = run(tmp_path, s1_cfg(server.url))
    assert any(r[1].startswith("/cogs/S1_") for r in server.cog_requests())
    shutil.copytree(tiles, staging_dir(tiles))  # as an interrupted run leaves it
    shutil.rmtree(tiles)
    csv.unlink()
    (staging_dir(tiles) / "r1c1" / "2021-03-02_S1.tif").unlink()
    with StacServer(root, items) as again:
        resumed, _, _ = run(tmp_path, s1_cfg(again.url))
    read = {r[1].split("/")[-1].split("?")[0] for r in again.cog_requests()}
    assert read and read <= {"S1_2021-02-27_vv.tif", "S1_2021-02-27_vh.tif"}
    assert resumed[["tile", "date"]].equals(manifest[["tile", "date"]])
    assert (resumed["s1"] != "").sum() == (manifest["s1"] != "").sum()


def test_the_s1_collection_is_signed_with_its_own_token_and_the_key(
    tmp_path, scenes, monkeypatch, caplog
):
    root, items = scenes
    cfg = s1_cfg("http://unused", max_days=3)
    cfg |= {"sign": "planetary_computer", "sign_key_env": "CF_TEST_PC_KEY"}
    with StacServer(root, items, sas_token=SAS, sas_key=KEY) as server:
        cfg |= {"url": server.url, "sign_url": server.url + "/sas"}
        with pytest.raises(ConfigError, match="sign_key_env: environment variable CF_TEST"):
            run(tmp_path / "a", cfg)
        monkeypatch.setenv("CF_TEST_PC_KEY", KEY)
        with caplog.at_level("DEBUG"):
            manifest, tiles, _ = run(tmp_path / "b", cfg)
    assert sorted(set(server.sas_paths)) == ["/sas/sentinel-1-rtc", "/sas/sentinel-2-l2a"]
    s1_gets = [r for r in server.cog_requests() if r[1].startswith("/cogs/S1_")]
    assert s1_gets and all(r[1].endswith("?" + SAS) for r in s1_gets)
    assert (manifest["s1"] != "").any()
    assert KEY not in caplog.text and "s1s3cr3t" not in caplog.text
    for path in tiles.rglob("*_S1.tif"):
        with rasterio.open(path) as src:
            assert KEY not in str(src.tags()) and "s1s3cr3t" not in str(src.tags())


def test_an_s1_asset_that_is_not_an_http_url_is_refused_before_any_read(tmp_path, scenes):
    root, items = scenes
    bad = [
        {**it, "hrefs": {"vh": "file:///etc/passwd"}} if it.get("id") == "S1_2021-03-10" else it
        for it in items
    ]
    with StacServer(root, bad) as server:
        with pytest.raises(InputDataError, match=r"STAC item S1_2021-03-10: asset 'vh' href"):
            run(tmp_path, s1_cfg(server.url))
    assert not any(r[1].startswith("/cogs/") for r in server.log)


def test_an_s1_asset_in_radar_geometry_is_refused(tmp_path, scenes):
    root, items = scenes
    radar = root.parent / "radar"
    radar.mkdir(exist_ok=True)
    gcps = [GroundControlPoint(row=r, col=c, x=ORIGIN[0] + 10 * c, y=ORIGIN[1] - 10 * r)
            for r, c in ((0, 0), (0, 255), (255, 0), (255, 255))]  # fmt: skip
    prof = dict(driver="GTiff", width=256, height=256, count=1, dtype="uint16")
    with rasterio.open(radar / "grd_vv.tif", "w", **prof) as dst:
        dst.write(np.full((256, 256), 200, np.uint16), 1)
        dst.gcps = (gcps, rasterio.crs.CRS.from_string(CRS))
    for name in ("S1_2021-02-27_vh.tif",):
        shutil.copy(root / name, radar / name)
    grd = [
        {**it, "assets": {"vv": "grd_vv.tif", "vh": "S1_2021-02-27_vh.tif"}}
        if it.get("id") == "S1_2021-02-27"
        else it
        for it in items
    ]
    for it in items:
        for f in it["assets"].values():
            if not (radar / f).exists():
                (radar / f).symlink_to(root / f)
    with StacServer(radar, grd) as server:
        with pytest.raises(InputDataError, match=r"S1_2021-02-27: asset 'vv' has no CRS"):
            run(tmp_path, s1_cfg(server.url))


def test_the_s1_section_is_checked():
    base = {"url": "http://x", "bbox": [0, 0, 1, 1], "start": "2021-01-01",
            "end": "2021-02-01", "crs": CRS}  # fmt: skip
    resolved = source_settings("stac", {**base, "s1": {}})
    assert resolved["s1"] == {"collection": "sentinel-1-rtc", "assets": {"VV": "vv", "VH": "vh"},
                              "units": "linear", "max_days": 6}  # fmt: skip
    assert s1_source("stac", resolved) == "stac.s1"
    assert s1_source("stac", source_settings("stac", base)) is None
    with pytest.raises(ConfigError, match="VH"):
        source_settings("stac", {**base, "s1": {"assets": {"VV": "vv"}}})
    with pytest.raises(ConfigError, match="units"):
        source_settings("stac", {**base, "s1": {"units": "dn"}})
    good = resolved["s1"]
    with pytest.raises(ConfigError, match=r"here\.assets: .* exactly VV and VH"):
        StacS1Spec.from_dict({**good, "assets": {"VV": "a", "HH": "b"}}, "here")
    with pytest.raises(ConfigError, match=r"here\.orbit_state"):
        StacS1Spec.from_dict({**good, "orbit_state": "up"}, "here")
    with pytest.raises(ConfigError, match=r"here: unknown keys \['polarisation'\]"):
        StacS1Spec.from_dict({**good, "polarisation": "VV"}, "here")
    assert search_period("2021-03-01", "2021-03-31", 6) == ("2021-02-23", "2021-04-06")


def _item(ident: str) -> Item:
    return Item(ident, None, None, dt.datetime(2021, 3, 1), {})


def test_read_s1_takes_items_in_order_and_fills_only_gaps():
    spec = StacS1Spec("c", {"VV": "vv", "VH": "vh"}, "linear", 6)
    first, second = np.full((2, 2), np.nan, np.float32), np.full((2, 2), 0.01, np.float32)
    first[0] = 0.1  # the first item covers the top row only
    values = {"a": first, "b": second}
    day = S1Day("2021-03-01", 0, (_item("a"), _item("b")))
    db = read_s1(day, spec, (2, 2), lambda item, key: values[item.id])
    np.testing.assert_allclose(db[:, 0], -10.0, atol=1e-5)  # 0.1 from the first item
    np.testing.assert_allclose(db[:, 1], -20.0, atol=1e-5)  # 0.01 from the second
    assert day.tags() == {"S1_DATE": "2021-03-01", "S1_DAYS": "0", "S1_STAC_ITEMS": "a,b"}


@pytest.mark.parametrize(
    ("units", "value", "db"),
    [("linear", 0.01, -20.0), ("amplitude", 0.1, -20.0), ("db", -7.5, -7.5)],
)
def test_backscatter_units_convert_to_db(units, value, db):
    data = np.array([[value, np.nan], [0.0 if units != "db" else np.nan, value]])
    out = backscatter_db(data, units, "f.tif", "k")
    assert out.dtype == np.float32
    np.testing.assert_allclose(out[~np.isnan(out)], db, atol=1e-5)
    assert np.isnan(out[0, 1]) and np.isnan(out[1, 0])  # no data, and 0 linear = no echo


def test_implausible_backscatter_names_the_units_key():
    with pytest.raises(InputDataError, match=r"f\.tif: backscatter .* is k right"):
        backscatter_db(np.array([[500.0]]), "db", "f.tif", "k")
    with pytest.raises(InputDataError, match="negative linear backscatter"):
        backscatter_db(np.array([[-0.1]]), "linear", "f.tif", "k")

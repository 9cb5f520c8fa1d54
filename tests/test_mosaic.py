"""Mosaicking: the combine kernel by hand, and real small GeoTIFFs through mosaic_date/region."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine

from cloudfree.errors import ConfigError
from cloudfree.io import geotiff_profile, write_raster
from cloudfree.mosaic import RULES, combine, mosaic_date, mosaic_region

NAN = np.nan


def _stack() -> np.ndarray:
    """3 tiles, 1 band, 1 x 5 pixels; pixel 4 gets no contribution."""
    rows = [
        [1.0, 2.0, NAN, 4.0, NAN],
        [5.0, NAN, 3.0, 8.0, NAN],
        [3.0, NAN, NAN, 9.0, NAN],
    ]
    return np.array(rows, dtype=np.float32)[:, None, None, :]


@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        ("first", [1, 2, 3, 4, NAN]),
        ("last", [3, 2, 3, 9, NAN]),
        ("mean", [3, 2, 3, 7, NAN]),
        ("median", [3, 2, 3, 8, NAN]),
        ("max", [5, 2, 3, 9, NAN]),
        ("min", [1, 2, 3, 4, NAN]),
    ],
)
def test_combine_rules(rule: str, expected: list[float]) -> None:
    merged, count = combine(_stack(), rule)
    assert merged.shape == (1, 1, 5)
    np.testing.assert_array_equal(merged[0, 0], np.array(expected, dtype=np.float32))
    assert count.dtype == np.uint16
    np.testing.assert_array_equal(count[0], [3, 1, 1, 3, 0])


def test_combine_per_band_and_unknown_rule() -> None:
    stack = np.full((2, 2, 1, 1), NAN, dtype=np.float32)
    stack[0, 0], stack[1] = 1.0, 2.0  # tile 0 contributes band 0 only
    merged, count = combine(stack, "first")
    np.testing.assert_array_equal(merged[:, 0, 0], [1.0, 2.0])
    assert count[0, 0] == 2
    assert set(RULES) == {"first", "last", "mean", "median", "max", "min"}
    with pytest.raises(ConfigError, match=r"'sum'.*median"):
        combine(stack, "sum")


def _write_tile(
    path: Path, x0: float, y0: float, value: int, *, shape=(16, 16), date="2021-05-01"
) -> Path:
    h, w = shape
    data = np.empty((2, h, w), dtype=np.uint16)
    data[0], data[1] = value, value + 1
    prof = geotiff_profile(
        crs="EPSG:32632",
        transform=Affine(10, 0, x0, 0, -10, y0),
        width=w,
        height=h,
        count=2,
        dtype="uint16",
        nodata=0,
    )
    return write_raster(path, data, prof, band_names=["B02", "B03"], tags={"DATE": date})


@pytest.fixture
def tiles(tmp_path: Path) -> list[Path]:
    """A: x 0..160, B: x 80..240 (8 columns of overlap), C: below A, y 0..-80."""
    x, y = 400000.0, 5000000.0
    a = _write_tile(tmp_path / "in" / "A.tif", x, y, 100)
    b = _write_tile(tmp_path / "in" / "B.tif", x + 80, y, 200)
    c = _write_tile(tmp_path / "in" / "C.tif", x, y - 160, 300, shape=(8, 16))
    with rasterio.open(a, "r+") as dst:  # a nodata hole of A inside the overlap
        hole = dst.read()
        hole[:, 0, 12] = 0
        dst.write(hole)
    return [a, b, c]


@pytest.mark.parametrize(("rule", "overlap"), [("first", 100), ("last", 200), ("mean", 150)])
def test_mosaic_date_union_rule_count_cog(
    tiles: list[Path], tmp_path: Path, rule: str, overlap: int
) -> None:
    dest, count_dest = tmp_path / "out" / "m.tif", tmp_path / "out" / "m_count.tif"
    mosaic_date(tiles, dest, count_dest, rule=rule, resampling="nearest")
    with rasterio.open(dest) as src:
        assert src.crs.to_epsg() == 32632
        assert src.bounds == pytest.approx((400000.0, 5000000.0 - 240, 400240.0, 5000000.0))
        assert (src.width, src.height) == (24, 24)
        assert src.res == (10.0, 10.0)
        assert src.dtypes == ("uint16", "uint16") and src.nodata == 0
        assert src.descriptions == ("B02", "B03")
        assert src.tags()["DATE"] == "2021-05-01"
        assert src.tags(ns="IMAGE_STRUCTURE")["LAYOUT"] == "COG"
        assert src.profile["compress"] == "deflate"
        data = src.read()
    np.testing.assert_array_equal(data[0, :16, :8], 100)
    np.testing.assert_array_equal(data[0, :16, 16:], 200)
    np.testing.assert_array_equal(data[0, 1:16, 8:16], overlap)
    np.testing.assert_array_equal(data[1, 1:16, 8:16], overlap + 1)
    assert data[0, 0, 12] == 200  # A's hole: only B contributes
    np.testing.assert_array_equal(data[0, 16:, :16], 300)
    np.testing.assert_array_equal(data[:, 16:, 16:], 0)  # nobody: nodata
    with rasterio.open(count_dest) as src:
        assert src.dtypes == ("uint16",) and src.tags(ns="IMAGE_STRUCTURE")["LAYOUT"] == "COG"
        assert src.transform == rasterio.open(dest).transform
        count = src.read(1)
    np.testing.assert_array_equal(count[1:16, 8:16], 2)
    assert count[0, 12] == 1
    np.testing.assert_array_equal(count[:16, :8], 1)
    np.testing.assert_array_equal(count[16:, 16:], 0)


def test_mosaic_date_bilinear_default_keeps_constant_values(
    tiles: list[Path], tmp_path: Path
) -> None:
    mosaic_date(tiles[:2], tmp_path / "m.tif", tmp_path / "c.tif", rule="max")
    with rasterio.open(tmp_path / "m.tif") as src:
        data = src.read(1)
    assert data.shape == (16, 24)
    np.testing.assert_array_equal(data[:, 8:], 200)
    np.testing.assert_array_equal(data[2:, :8], 100)


def test_mosaic_date_reprojects_to_wgs84(tiles: list[Path], tmp_path: Path) -> None:
    mosaic_date(tiles, tmp_path / "g.tif", tmp_path / "g_count.tif", rule="mean", crs="EPSG:4326")
    with rasterio.open(tmp_path / "g.tif") as src:
        assert src.crs.to_epsg() == 4326
        assert src.res[0] < 0.01  # degrees, not the 10 of the source metres
        left, bottom, right, top = src.bounds
        assert 7.7 < left < right < 7.8 and 45.0 < bottom < top < 45.2
        data = src.read(1)
    valid = data != 0
    assert valid.mean() > 0.5
    assert set(np.unique(data[valid])) <= set(range(100, 301))
    with rasterio.open(tmp_path / "g_count.tif") as src:
        assert src.read(1).max() == 2


def test_mosaic_date_explicit_resolution(tiles: list[Path], tmp_path: Path) -> None:
    mosaic_date(
        tiles, tmp_path / "r.tif", tmp_path / "r_c.tif", rule="first", resolution=20.0,
        resampling="nearest",
    )  # fmt: skip
    with rasterio.open(tmp_path / "r.tif") as src:
        assert src.res == (20.0, 20.0) and (src.width, src.height) == (12, 12)


def test_mosaic_date_errors(tiles: list[Path], tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="'sum'"):
        mosaic_date(tiles, tmp_path / "x.tif", tmp_path / "y.tif", rule="sum")
    with pytest.raises(ConfigError, match="'spline9'"):
        mosaic_date(
            tiles, tmp_path / "x.tif", tmp_path / "y.tif", rule="mean", resampling="spline9"
        )
    assert not (tmp_path / "x.tif").exists()


def test_mosaic_region(tmp_path: Path) -> None:
    src = tmp_path / "tiles"
    x, y = 400000.0, 5000000.0
    _write_tile(src / "B" / "2021-05-01.tif", x + 80, y, 200)
    _write_tile(src / "A" / "2021-05-01.tif", x, y, 100)
    _write_tile(src / "A" / "2021-05-11.tif", x, y, 110, date="2021-05-11")
    _write_tile(src / "A" / "2021-05-01_quality.tif", x, y, 7)
    (src / "A" / "notes.txt").write_text("ignored")
    dest = tmp_path / "mosaic"
    dest.mkdir()
    (dest / "stale.tif").write_text("replaced as a whole")
    out = mosaic_region(src, dest, rule="first", resampling="nearest")
    assert out == [dest / "2021-05-01.tif", dest / "2021-05-11.tif"]
    assert sorted(p.name for p in dest.iterdir()) == [
        "2021-05-01.tif", "2021-05-01_count.tif", "2021-05-11.tif", "2021-05-11_count.tif",
    ]  # fmt: skip
    with rasterio.open(out[0]) as m:
        assert m.width == 24 and m.read(1)[5, 10] == 100  # A first in tile-name order
        assert m.tags()["DATE"] == "2021-05-01"
    with rasterio.open(out[1]) as m:
        assert m.width == 16 and (m.read(1) == 110).all()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
    with pytest.raises(ConfigError):
        mosaic_region(src, tmp_path / "other", rule="nope")
    assert not (tmp_path / "other").exists()

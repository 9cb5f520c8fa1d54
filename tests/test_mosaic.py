"""Mosaicking: every rule on a hand-computed overlap, side layers, CRSs, empty inputs, COGs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine
from rasterio.warp import transform_bounds

from cloudfree.errors import ConfigError
from cloudfree.io import geotiff_profile, write_raster
from cloudfree.mosaic.composite import composite_scores
from cloudfree.mosaic.core import (
    NATIVE_RULES,
    RULES,
    NativeAccumulator,
    combine,
    mosaic_date,
    mosaic_region,
    side_paths,
)

NAN = np.nan
X0, Y0 = 400000.0, 5000000.0
DATES = [20210101, 20210201, 20210301]


def _stack() -> np.ndarray:
    """3 contributions, 1 band, 1 x 5 pixels; pixel 4 gets no contribution."""
    rows = [
        [1.0, 2.0, NAN, 4.0, NAN],
        [5.0, NAN, 3.0, 8.0, NAN],
        [3.0, NAN, NAN, 9.0, NAN],
    ]
    return np.array(rows, dtype=np.float32)[:, None, None, :]


QUALITY = np.array([[2, 1, 1, 3, 1], [1, 1, 1, 2, 1], [1, 1, 1, 1, 1]], np.uint8)[:, None]


@pytest.mark.parametrize(
    ("rule", "expected", "source"),
    [
        ("first", [1, 2, 3, 4, NAN], [1, 1, 2, 1, 0]),
        ("last", [3, 2, 3, 9, NAN], [3, 1, 2, 3, 0]),
        ("mean", [3, 2, 3, 7, NAN], [3, 1, 2, 2, 0]),  # source: closest to the mean
        ("median", [3, 2, 3, 8, NAN], [3, 1, 2, 2, 0]),
        ("max", [5, 2, 3, 9, NAN], [2, 1, 2, 3, 0]),
        ("min", [1, 2, 3, 4, NAN], [1, 1, 2, 1, 0]),
        # observed (2 + score) beats reconstructed (1 + score), then the higher score
        ("best_quality", [3, 2, 3, 9, NAN], [3, 1, 2, 3, 0]),
        ("most_persistent", [5, 2, 3, 9, NAN], [2, 1, 2, 3, 0]),
    ],
)
def test_combine_rules_by_hand(rule: str, expected: list[float], source: list[int]) -> None:
    merged = combine(_stack(), rule, dates=DATES, quality=QUALITY, scores=[0.3, 0.1, 0.2])
    assert merged.value.shape == (1, 1, 5)
    np.testing.assert_array_equal(merged.value[0, 0], np.array(expected, dtype=np.float32))
    np.testing.assert_array_equal(merged.count[0], [3, 1, 1, 3, 0])
    np.testing.assert_array_equal(merged.source[0], source)
    np.testing.assert_array_equal(merged.date[0], [([0, *DATES])[s] for s in source])
    np.testing.assert_array_equal(merged.quality[0], [2, 1, 1, 3, 0])  # worst contribution
    assert merged.count.dtype == np.uint16 and merged.date.dtype == np.uint32


@pytest.mark.parametrize("nodata", [0, 7, 65535])
@pytest.mark.parametrize("rule", NATIVE_RULES)
def test_native_accumulator_matches_float_kernel(rule: str, nodata: int) -> None:
    """Merging uint16 with a nodata value gives what the float/NaN kernel gives."""
    rng = np.random.default_rng(3)
    stack = rng.integers(1, 12, (4, 3, 6, 7)).astype(np.uint16)  # ties on purpose
    stack[stack == 7] = 8 if nodata == 7 else 7
    stack[rng.random(stack.shape) < 0.3] = nodata  # band holes
    stack[:, :, rng.random((6, 7)) < 0.2] = nodata  # whole-pixel holes
    quality = rng.integers(0, 4, (4, 6, 7)).astype(np.uint8)
    expected = combine(
        np.where(stack == nodata, np.nan, stack.astype(np.float32)), rule, dates=[*DATES, 5],
        quality=quality,
    )  # fmt: skip
    acc = NativeAccumulator(rule, stack.shape[1:], np.uint16, nodata)
    for i in range(4):
        acc.add(stack[i], source=i + 1, date=[*DATES, 5][i], quality=quality[i])
    got = acc.result()
    want = np.where(np.isnan(expected.value), nodata, expected.value).astype(np.uint16)
    np.testing.assert_array_equal(got.value, want)
    for name in ("count", "source", "date", "quality"):
        np.testing.assert_array_equal(getattr(got, name), getattr(expected, name), err_msg=name)


def test_combine_per_band_and_unknown_rule() -> None:
    stack = np.full((2, 2, 1, 1), NAN, dtype=np.float32)
    stack[0, 0], stack[1] = 1.0, 2.0  # contribution 0 has band 0 only
    merged = combine(stack, "first")
    np.testing.assert_array_equal(merged.value[:, 0, 0], [1.0, 2.0])
    assert merged.count[0, 0] == 2 and merged.quality[0, 0] == 255  # no quality: unknown
    assert len(RULES) == 8
    with pytest.raises(ConfigError, match=r"'sum'.*median"):
        combine(stack, "sum")


def _tile(
    root: Path, tile: str, x0: float, value: int, *, date: str = "2021-05-01",
    quality_cols: slice | None = None, shape=(16, 16), crs="EPSG:32632", transform=None,
) -> Path:  # fmt: skip
    h, w = shape
    data = np.empty((2, h, w), dtype=np.uint16)
    data[0], data[1] = value, value + 1
    prof = geotiff_profile(
        crs=crs, transform=transform or Affine(10, 0, x0, 0, -10, Y0), width=w, height=h,
        count=2, dtype="uint16", nodata=0,
    )  # fmt: skip
    tags = {"DATE": date, "TILE": tile}
    path = write_raster(
        root / tile / f"{date}.tif", data, prof, band_names=["B02", "B03"], tags=tags
    )
    quality = np.ones((h, w), dtype=np.uint8)
    if quality_cols is not None:
        quality[:, quality_cols] = 2
    write_raster(path.with_name(f"{date}_quality.tif"), quality, {**prof, "nodata": None})
    return path


@pytest.fixture
def overlap(tmp_path: Path) -> list[Path]:
    """A: x 0..160 (cloud-reconstructed in its last 4 columns), B: x 80..240 (reconstructed
    in its last 6 columns); 8 columns overlap; A has a nodata hole at row 0, column 12."""
    root = tmp_path / "tiles"
    a = _tile(root, "A", X0, 100, quality_cols=slice(12, 16))
    b = _tile(root, "B", X0 + 80, 200, quality_cols=slice(10, 16))
    with rasterio.open(a, "r+") as dst:
        hole = dst.read()
        hole[:, 0, 12] = 0
        dst.write(hole)
    return [a, b]


# Overlap columns 8..11 (A observed, B observed) and 12..15 (A reconstructed, B observed).
# best_quality scores: A clear share 0.75, B 0.625 -> A wins where both are observed.
@pytest.mark.parametrize(
    ("rule", "cols_8_11", "cols_12_15"),
    [
        ("first", ("A", 100), ("A", 100)),
        ("last", ("B", 200), ("B", 200)),
        ("mean", ("A", 150), ("A", 150)),  # a tie in distance goes to the earlier tile
        ("median", ("A", 150), ("A", 150)),
        ("max", ("B", 200), ("B", 200)),
        ("min", ("A", 100), ("A", 100)),
        ("best_quality", ("A", 100), ("B", 200)),
        ("most_persistent", ("B", 200), ("B", 200)),
    ],
)
def test_mosaic_date_rules_on_a_hand_computed_overlap(
    overlap: list[Path], tmp_path: Path, rule: str, cols_8_11: tuple, cols_12_15: tuple
) -> None:
    dest = tmp_path / "out" / "2021-05-01.tif"
    mosaic_date(overlap, dest, rule=rule, resampling="nearest")
    with rasterio.open(dest) as src:
        assert src.crs.to_epsg() == 32632 and (src.width, src.height) == (24, 16)
        assert src.bounds == pytest.approx((X0, Y0 - 160, X0 + 240, Y0))
        assert src.dtypes == ("uint16", "uint16") and src.nodata == 0
        assert src.descriptions == ("B02", "B03")
        assert src.tags()["DATE"] == "2021-05-01" and src.tags()["MOSAIC_RULE"] == rule
        assert src.tags(ns="IMAGE_STRUCTURE")["LAYOUT"] == "COG"
        data = src.read()
    side = {}
    for name, path in side_paths(dest).items():
        with rasterio.open(path) as src:
            assert src.tags(ns="IMAGE_STRUCTURE")["LAYOUT"] == "COG"
            assert src.transform == rasterio.open(dest).transform
            side[name] = src.read(1)
            if name == "source":
                assert src.tags()["SOURCES"] == '["A", "B"]'
    ids = {"A": 1, "B": 2}
    for cols, (tile, value) in ((slice(8, 12), cols_8_11), (slice(12, 16), cols_12_15)):
        np.testing.assert_array_equal(data[0, 1:, cols], value)
        np.testing.assert_array_equal(data[1, 1:, cols], value + 1)
        np.testing.assert_array_equal(side["source"][1:, cols], ids[tile])
        np.testing.assert_array_equal(side["count"][1:, cols], 2)
    np.testing.assert_array_equal(data[0, :, :8], 100)
    np.testing.assert_array_equal(data[0, :, 16:], 200)
    assert data[0, 0, 12] == 200 and side["count"][0, 12] == 1 and side["source"][0, 12] == 2
    np.testing.assert_array_equal(side["count"][:, :8], 1)
    np.testing.assert_array_equal(side["date"], 20210501)
    np.testing.assert_array_equal(side["quality"][1:, 8:12], 1)
    np.testing.assert_array_equal(side["quality"][1:, 12:16], 2)  # A's reconstructed pixels
    np.testing.assert_array_equal(side["quality"][:, 16:18], 1)
    np.testing.assert_array_equal(side["quality"][:, 18:], 2)


def test_small_windows_match_one_window(overlap: list[Path], tmp_path: Path) -> None:
    mosaic_date(overlap, tmp_path / "a" / "m.tif", rule="best_quality", block=16)
    mosaic_date(overlap, tmp_path / "b" / "m.tif", rule="best_quality", block=512)
    for name in ("m.tif", "m_source.tif", "m_quality.tif"):
        with rasterio.open(tmp_path / "a" / name) as a, rasterio.open(tmp_path / "b" / name) as b:
            np.testing.assert_array_equal(a.read(), b.read())


def test_tiles_in_different_crs_mosaic_together(tmp_path: Path) -> None:
    root = tmp_path / "tiles"
    a = _tile(root, "A", X0, 100)
    # B covers x 80..240 like before, but stored in WGS84 (a different CRS).
    left, bottom, right, top = transform_bounds("EPSG:32632", "EPSG:4326", X0 + 80, Y0 - 160,
                                                X0 + 240, Y0)  # fmt: skip
    res = (right - left) / 32
    shape = (round((top - bottom) / res), 32)
    b = _tile(
        root, "B", 0, 200, crs="EPSG:4326", transform=Affine(res, 0, left, 0, -res, top),
        shape=shape,
    )  # fmt: skip
    dest = tmp_path / "m.tif"
    mosaic_date([a, b], dest, rule="last", resampling="nearest")
    with rasterio.open(dest) as src:
        assert src.crs.to_epsg() == 32632 and src.res == (10.0, 10.0)
        data = src.read(1)
    with rasterio.open(side_paths(dest)["count"]) as src:
        count = src.read(1)
    assert count.max() == 2
    assert (data[2:-2, 10:14] == 200).all() and (data[2:-2, :7] == 100).all()
    assert (count[2:-2, 10:14] == 2).all()


def test_mosaic_region_products_shared_grid_and_empty_date(tmp_path: Path) -> None:
    root = tmp_path / "tiles"
    _tile(root, "B", X0 + 80, 200)
    _tile(root, "A", X0, 100)
    _tile(root, "A", X0, 110, date="2021-05-11")
    change = np.full((1, 16, 16), 0.25, dtype=np.float32)
    prof = geotiff_profile(
        crs="EPSG:32632", transform=Affine(10, 0, X0, 0, -10, Y0), width=16, height=16,
        count=1, dtype="float32", nodata=float("nan"),
    )  # fmt: skip
    write_raster(root / "A" / "2021-05-01_2021-05-11_change.tif", change, prof)
    (root / "A" / "notes.txt").write_text("ignored")
    dest = tmp_path / "mosaic"
    dest.mkdir()
    (dest / "stale.tif").write_text("replaced as a whole")
    out = mosaic_region(
        root, dest, rule="first", resampling="nearest", dates=["2021-05-01", "2021-05-21"],
        composite={"enabled": True},
    )  # fmt: skip
    assert [p.name for p in out] == ["2021-05-01.tif", "2021-05-11.tif", "2021-05-21.tif"]
    names = {p.name for p in dest.iterdir()}
    for stem in ("2021-05-01", "2021-05-11", "2021-05-21", "2021-05-01_2021-05-11_change",
                 "composite"):  # fmt: skip
        assert {f"{stem}.tif"} | {f"{stem}_{s}.tif" for s in side_paths(Path("x")).keys()} <= names
    assert "stale.tif" not in names
    for p in dest.iterdir():  # one grid for the region
        with rasterio.open(p) as m:
            assert (m.width, m.height) == (24, 16)
    with rasterio.open(dest / "2021-05-11.tif") as m:
        assert (m.read(1)[:, :16] == 110).all() and (m.read(1)[:, 16:] == 0).all()
    with (
        rasterio.open(dest / "2021-05-21.tif") as m,
        rasterio.open(dest / "2021-05-21_count.tif") as c,
    ):  # a date no tile has: empty but valid
        assert (m.read() == 0).all() and (c.read() == 0).all() and m.count == 2
    with rasterio.open(dest / "2021-05-01_2021-05-11_change.tif") as m:
        assert m.tags()["MOSAIC_RULE"] == "most_persistent"
        assert np.isclose(m.read(1)[:, :16], 0.25).all() and np.isnan(m.read(1)[:, 16:]).all()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
    with pytest.raises(ConfigError):
        mosaic_region(root, tmp_path / "other", rule="nope")
    assert not (tmp_path / "other").exists()


def test_empty_region_gives_empty_valid_mosaics(tmp_path: Path) -> None:
    (tmp_path / "tiles").mkdir()
    out = mosaic_region(
        tmp_path / "tiles", tmp_path / "m", rule="max", dates=["2021-01-01"],
        composite={"enabled": True},
    )  # fmt: skip
    assert [p.name for p in out] == ["2021-01-01.tif"]
    for stem in ("2021-01-01", "composite"):
        with rasterio.open(tmp_path / "m" / f"{stem}_count.tif") as c:
            assert c.read().sum() == 0
        with rasterio.open(tmp_path / "m" / f"{stem}.tif") as m:
            assert m.count == 13 and (m.read() == 0).all()


def test_empty_region_mosaics_have_the_given_bands(tmp_path: Path) -> None:
    (tmp_path / "tiles").mkdir()
    mosaic_region(
        tmp_path / "tiles", tmp_path / "m", rule="max", dates=["2021-01-01"], bands=["NDVI"]
    )
    with rasterio.open(tmp_path / "m" / "2021-01-01.tif") as m:
        assert m.count == 1 and m.descriptions == ("NDVI",) and (m.read() == 0).all()


def test_composite_takes_best_available_pixel(tmp_path: Path) -> None:
    root = tmp_path / "tiles"
    _tile(root, "A", X0, 100)  # 2021-05-01, all observed
    _tile(root, "A", X0, 300, date="2021-05-11", quality_cols=slice(0, 8))  # half cloudy
    _tile(root, "A", X0, 900, date="2021-06-30")  # outside the period
    mosaic_region(
        root, tmp_path / "m", rule="mean", resampling="nearest",
        composite={"enabled": True, "start": "2021-05-01", "end": "2021-05-20",
                   "target": "2021-05-11"},
    )  # fmt: skip
    # Scores: 05-01 0.5 * 1 + 0.5 * 0 = 0.5; 05-11 0.5 * 0.5 + 0.5 * 1 = 0.75; observed + 2.
    with rasterio.open(tmp_path / "m" / "composite.tif") as m:
        value = m.read(1)
        assert m.tags()["PERIOD_START"] == "2021-05-01" and m.tags()["TARGET_DATE"] == "2021-05-11"
    date = rasterio.open(tmp_path / "m" / "composite_date.tif").read(1)
    count = rasterio.open(tmp_path / "m" / "composite_count.tif").read(1)
    quality = rasterio.open(tmp_path / "m" / "composite_quality.tif").read(1)
    assert (value[:, 8:] == 300).all() and (date[:, 8:] == 20210511).all()
    assert (value[:, :8] == 100).all() and (date[:, :8] == 20210501).all()
    assert (count == 2).all()
    assert (quality[:, :8] == 2).all() and (quality[:, 8:] == 1).all()


def test_composite_scores_and_bad_period() -> None:
    scores, tags = composite_scores(
        ["2021-01-01", "2021-01-11"], {("A", "2021-01-01"): 1.0, ("A", "2021-01-11"): 0.0}
    )
    assert tags["TARGET_DATE"] == "2021-01-06"
    assert scores == {("A", "2021-01-01"): 0.5, ("A", "2021-01-11"): 0.0}
    with pytest.raises(ConfigError, match=r"composite\.start"):
        composite_scores(["2021-01-01"], {}, start="January")
    with pytest.raises(ConfigError, match="after end"):
        composite_scores(["2021-01-01"], {}, start="2021-02-01", end="2021-01-01")


def test_large_mosaic_has_overviews_and_flat_windows(tmp_path: Path) -> None:
    data = np.arange(700 * 650, dtype=np.uint16).reshape(1, 700, 650) % 5000 + 1
    prof = geotiff_profile(
        crs="EPSG:32632", transform=Affine(10, 0, X0, 0, -10, Y0), width=650, height=700,
        count=1, dtype="uint16", nodata=0,
    )  # fmt: skip
    src = write_raster(tmp_path / "tiles" / "A" / "2021-01-01.tif", data, prof)
    dest = tmp_path / "m" / "2021-01-01.tif"
    mosaic_date([src], dest, rule="max", block=256)
    with rasterio.open(dest) as m:
        assert m.overviews(1) and m.tags(ns="IMAGE_STRUCTURE")["LAYOUT"] == "COG"
        assert m.compression.name == "deflate"
        np.testing.assert_array_equal(m.read(), data)
    for path in side_paths(dest).values():
        with rasterio.open(path) as s:
            assert s.overviews(1) and s.tags(ns="IMAGE_STRUCTURE")["LAYOUT"] == "COG"
    with rasterio.open(side_paths(dest)["count"]) as c:
        assert (c.read() == 1).all()


@pytest.mark.parametrize(("rule", "compress"), [("max", "deflate"), ("best_quality", "zstd")])
def test_gtiff_format_equals_cog_without_overviews(
    overlap: list[Path], tmp_path: Path, rule: str, compress: str
) -> None:
    """``fmt="gtiff"`` writes the same pixels and tags as the COGs, in one pass: tiled,
    compressed, predictor per dtype, no overviews, nothing left beside the outputs."""
    kwds = {"rule": rule, "resampling": "nearest", "compress": compress, "level": 3}
    cog = mosaic_date(overlap, tmp_path / "cog" / "2021-05-01.tif", **kwds)
    plain = mosaic_date(overlap, tmp_path / "plain" / "2021-05-01.tif", fmt="gtiff", **kwds)
    for name, path in ({"value": plain} | side_paths(plain)).items():
        other = cog if name == "value" else side_paths(cog)[name]
        with rasterio.open(path) as a, rasterio.open(other) as b:
            assert a.compression.name == compress and a.profile["tiled"]
            assert a.overviews(1) == []
            assert "LAYOUT" not in a.tags(ns="IMAGE_STRUCTURE")
            assert a.tags(ns="IMAGE_STRUCTURE")["PREDICTOR"] == "2"
            assert (a.crs, a.transform, a.nodata, a.descriptions, a.tags()) == (
                b.crs, b.transform, b.nodata, b.descriptions, b.tags()
            )  # fmt: skip
            np.testing.assert_array_equal(a.read(), b.read())
    assert sorted(p.name for p in plain.parent.iterdir()) == sorted(
        p.name for p in cog.parent.iterdir()
    )  # no temporary file or folder left behind


def test_gtiff_tiles_follow_the_window_and_the_level_takes_effect(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    data = rng.integers(0, 3, (1, 300, 300)) + np.arange(300)[None, None] * 7 + 1
    prof = geotiff_profile(
        crs="EPSG:32632", transform=Affine(10, 0, X0, 0, -10, Y0), width=300, height=300,
        count=1, dtype="uint16", nodata=0,
    )  # fmt: skip
    src = write_raster(tmp_path / "tiles" / "A" / "2021-01-01.tif", data.astype(np.uint16), prof)
    sizes = {}
    for block, level in ((512, 1), (512, 9), (80, 9)):
        dest = tmp_path / f"m{block}_{level}" / "2021-01-01.tif"
        mosaic_date([src], dest, rule="max", fmt="gtiff", block=block, level=level)
        with rasterio.open(dest) as m:
            assert m.block_shapes[0] == ((80, 80) if block == 80 else (256, 256))
            np.testing.assert_array_equal(m.read(), data)
        sizes[block, level] = dest.stat().st_size
    assert sizes[512, 9] < sizes[512, 1]  # zlevel reached the writer


def test_gtiff_format_float_predictor_and_bad_format(tmp_path: Path) -> None:
    data = np.linspace(-1, 1, 2 * 20 * 20, dtype=np.float32).reshape(2, 20, 20)
    prof = geotiff_profile(
        crs="EPSG:32632", transform=Affine(10, 0, X0, 0, -10, Y0), width=20, height=20,
        count=2, dtype="float32", nodata=float("nan"),
    )  # fmt: skip
    src = write_raster(tmp_path / "tiles" / "A" / "2021-01-01_embedding.tif", data, prof)
    dest = mosaic_date([src], tmp_path / "m" / "e.tif", rule="mean", fmt="gtiff")
    with rasterio.open(dest) as m:
        assert m.tags(ns="IMAGE_STRUCTURE")["PREDICTOR"] == "3"
        np.testing.assert_array_equal(m.read(), data)
    with pytest.raises(ConfigError, match=r"mosaic\.format: 'png'"):
        mosaic_date([src], tmp_path / "x" / "e.tif", rule="mean", fmt="png")
    assert not (tmp_path / "x").exists()


def test_bad_rule_and_resampling(overlap: list[Path], tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="'sum'"):
        mosaic_date(overlap, tmp_path / "x.tif", rule="sum")
    with pytest.raises(ConfigError, match="'spline9'"):
        mosaic_date(overlap, tmp_path / "x.tif", rule="mean", resampling="spline9")
    assert not (tmp_path / "x.tif").exists()


def test_reprojection_and_resolution(overlap: list[Path], tmp_path: Path) -> None:
    mosaic_date(overlap, tmp_path / "g.tif", rule="mean", crs="EPSG:4326")
    with rasterio.open(tmp_path / "g.tif") as src:
        assert src.crs.to_epsg() == 4326 and src.res[0] < 0.01
        data = src.read(1)
    valid = data != 0
    assert valid.mean() > 0.5 and set(np.unique(data[valid])) <= set(range(100, 201))
    mosaic_date(overlap, tmp_path / "r.tif", rule="first", resolution=20.0, resampling="nearest")
    with rasterio.open(tmp_path / "r.tif") as src:
        assert src.res == (20.0, 20.0) and (src.width, src.height) == (12, 8)

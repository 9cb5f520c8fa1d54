"""Region mosaics: product files, every rule on a hand-computed overlap, one grid for all
products, empty dates and regions, bad settings."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio

from cloudfree.errors import ConfigError, InputDataError
from cloudfree.io import OUTPUT_MARKER
from cloudfree.mosaic.region import mosaic_date, mosaic_region, product_files
from cloudfree.mosaic.write import side_paths

from .inputs import X0, date_settings, region_settings, write_at_origin, write_tile


def test_product_files_by_product_and_key_in_tile_order(tmp_path: Path) -> None:
    root = tmp_path / "tiles"
    for name in ("B/2021-05-01.tif", "A/2021-05-01.tif", "A/2021-05-01_embedding.tif",
                 "A/2021-05-01_quality.tif", "A/2021-05-01_2021-05-11_change.tif",
                 "A/notes.txt", "A/2021-5-1.tif"):  # fmt: skip
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text("")
    (root / "loose.tif").write_text("")  # not in a tile folder
    assert product_files(root) == {
        "reflectance": {"2021-05-01": [root / "A/2021-05-01.tif", root / "B/2021-05-01.tif"]},
        "embedding": {"2021-05-01": [root / "A/2021-05-01_embedding.tif"]},
        "change": {"2021-05-01_2021-05-11": [root / "A/2021-05-01_2021-05-11_change.tif"]},
    }


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
    mosaic_date(overlap, dest, **date_settings(rule=rule, resampling="nearest"))
    with rasterio.open(dest) as src:
        assert src.crs.to_epsg() == 32632 and (src.width, src.height) == (24, 16)
        assert src.bounds == pytest.approx((X0, 5000000.0 - 160, X0 + 240, 5000000.0))
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
    for cols, (name, value) in ((slice(8, 12), cols_8_11), (slice(12, 16), cols_12_15)):
        np.testing.assert_array_equal(data[0, 1:, cols], value)
        np.testing.assert_array_equal(data[1, 1:, cols], value + 1)
        np.testing.assert_array_equal(side["source"][1:, cols], ids[name])
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


def test_mosaic_region_products_shared_grid_and_empty_date(tmp_path: Path) -> None:
    root = tmp_path / "tiles"
    write_tile(root, "B", X0 + 80, 200)
    write_tile(root, "A", X0, 100)
    write_tile(root, "A", X0, 110, date="2021-05-11")
    change = np.full((1, 16, 16), 0.25, dtype=np.float32)
    write_at_origin(root / "A" / "2021-05-01_2021-05-11_change.tif", change, float("nan"))
    (root / "A" / "notes.txt").write_text("ignored")
    dest = tmp_path / "mosaic"
    dest.mkdir()  # an earlier run's mosaics, which carry the marker of cloudfree's outputs
    (dest / OUTPUT_MARKER).write_text("")
    (dest / "stale.tif").write_text("replaced as a whole")
    out = mosaic_region(
        root, dest, **region_settings(rule="first", resampling="nearest"),
        dates=["2021-05-01", "2021-05-21"],
    )  # fmt: skip
    assert [p.name for p in out] == ["2021-05-01.tif", "2021-05-11.tif", "2021-05-21.tif"]
    names = {p.name for p in dest.iterdir()}
    assert OUTPUT_MARKER in names
    for stem in ("2021-05-01", "2021-05-11", "2021-05-21", "2021-05-01_2021-05-11_change",
                 "composite"):  # fmt: skip
        assert {f"{stem}.tif"} | {f"{stem}_{s}.tif" for s in side_paths(Path("x")).keys()} <= names
    assert "stale.tif" not in names
    for p in dest.glob("*.tif"):  # one grid for the region
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
        mosaic_region(root, tmp_path / "other", **{**region_settings(), "rule": "nope"})
    assert not (tmp_path / "other").exists()


def test_empty_region_gives_empty_valid_mosaics(tmp_path: Path) -> None:
    (tmp_path / "tiles").mkdir()
    out = mosaic_region(
        tmp_path / "tiles", tmp_path / "m", **region_settings(rule="max"), dates=["2021-01-01"]
    )
    assert [p.name for p in out] == ["2021-01-01.tif"]
    for stem in ("2021-01-01", "composite"):
        with rasterio.open(tmp_path / "m" / f"{stem}_count.tif") as c:
            assert c.read().sum() == 0
        with rasterio.open(tmp_path / "m" / f"{stem}.tif") as m:
            assert m.count == 13 and (m.read() == 0).all()


def test_empty_region_mosaics_have_the_given_bands(tmp_path: Path) -> None:
    (tmp_path / "tiles").mkdir()
    mosaic_region(
        tmp_path / "tiles", tmp_path / "m", **region_settings(rule="max"), dates=["2021-01-01"],
        bands=["NDVI"],
    )  # fmt: skip
    for stem in ("2021-01-01", "composite"):
        with rasterio.open(tmp_path / "m" / f"{stem}.tif") as m:
            assert m.count == 1 and m.descriptions == ("NDVI",) and (m.read() == 0).all()


def test_bad_settings_name_their_key(overlap: list[Path], tmp_path: Path) -> None:
    settings = date_settings()
    with pytest.raises(ConfigError, match=r"mosaic\.rule: unknown rule 'sum'"):
        mosaic_date(overlap, tmp_path / "x.tif", **{**settings, "rule": "sum"})
    with pytest.raises(ConfigError, match=r"mosaic\.resampling: 'spline9'"):
        mosaic_date(overlap, tmp_path / "x.tif", **{**settings, "resampling": "spline9"})
    assert not (tmp_path / "x.tif").exists()
    region = region_settings()
    bad = {
        "change_rule": (r"mosaic\.change_rule: unknown rule 'sum'", "sum"),
        "compress": (r"mosaic\.compress: 'gzip'", "gzip"),
        "composite": (r"mosaic\.composite\.rule: unknown rule 'sum'",
                      {**region["composite"], "rule": "sum"}),
    }  # fmt: skip
    for key, (message, value) in bad.items():
        with pytest.raises(ConfigError, match=message):  # before anything is written
            mosaic_region(overlap[0].parents[1], tmp_path / "m", **{**region, key: value})
        assert not (tmp_path / "m").exists()
    with pytest.raises(InputDataError, match="does not exist"):
        mosaic_region(tmp_path / "missing", tmp_path / "m", **region)

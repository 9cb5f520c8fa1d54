"""Odd inputs of the tile and pack stages: checked in their own dtype before any cast, sizes
checked before anything is allocated, and tiles that another run rewrote are not packed."""

from __future__ import annotations

import logging
import re
import runpy
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import rasterio
from affine import Affine

from cloudfree.bands import S2_L1C_BANDS
from cloudfree.config import section, source_settings
from cloudfree.errors import ConfigError, InputDataError
from cloudfree.io import read_raster, write_raster
from cloudfree.manifest import read_manifest
from cloudfree.pack.load import load_series
from cloudfree.tiles import folder as folder_module
from cloudfree.tiles import grid as grid_module
from cloudfree.tiles.folder import folder_tiles
from cloudfree.tiles.region import download_tiles
from cloudfree.tiles.synthetic import region as synthetic_region
from cloudfree.tiles.synthetic.region import synthetic_tiles
from tests.pack.sample import region as pack_region_sample
from tests.tiles.test_folder import DATES, ORIGIN, folder_cfg, write_folder_series, write_tif

pytestmark = pytest.mark.reliability

REPO = Path(__file__).resolve().parents[2]
BANDS = ["B02", "B03", "B04", "B08"]
LEVEL = {"B02": 1000, "B03": 2000, "B04": 3000, "B05": 3500, "B08": 4000}  # DN, +- 100


@pytest.fixture
def nothing_big(monkeypatch):
    """Fail at once where the code would start allocating a huge region (tile windows,
    pixels read onto the grid, a synthetic scene): the checks must come first."""
    real_windows = grid_module.tile_windows

    def windows(width: int, height: int, size: int, overlap: int) -> dict:
        if (width // size) * (height // size) > 100_000:
            raise AssertionError(f"tile windows of a {width} x {height} px grid planned")
        return real_windows(width, height, size, overlap)

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("allocation started before the size was checked")

    monkeypatch.setattr(grid_module, "tile_windows", windows)
    monkeypatch.setattr(folder_module, "read_on_grid", refuse)
    monkeypatch.setattr(synthetic_region, "build_scene", refuse)


def four_band_series(root: Path, order_of: dict[str, list[str]] | None = None) -> Path:
    """Three dates of the four bands B02, B03, B04, B08 (each at its own DN level), with
    descriptions; ``order_of`` maps a date (YYYYMMDD) to the band order of its file."""
    rng = np.random.default_rng(0)
    for day in DATES:
        order = (order_of or {}).get(day, BANDS)
        data = np.stack([LEVEL[b] + rng.integers(-100, 100, (64, 64)) for b in order])
        path = write_tif(root / "img" / f"S2_{day}_L1C.tif", data.astype(np.uint16))
        with rasterio.open(path, "r+") as dst:
            dst.descriptions = tuple(order)
        write_tif(root / "cld" / f"CLD_{day}.tif", np.zeros((64, 64), np.uint8), nodata=255)
    return root


# 1. Cloud masks are checked in their own dtype, before the cast to uint8 ------------------


@pytest.mark.parametrize(
    ("dtype", "value", "shown"),
    [("int16", -1, r"\[-1\]"), ("int16", 300, r"\[300\]"), ("float32", 0.6, r"0\.6")],
)
def test_a_mask_value_that_is_no_class_is_refused_before_the_cast(tmp_path, dtype, value, shown):
    root = write_folder_series(tmp_path / "data", bands=4)
    mask = np.zeros((96, 96), dtype)
    mask[:10, :10] = value
    mask[50:, 50:] = 1
    write_tif(root / "cld" / "CLD_20210322.tif", mask, nodata=255)
    named = rf"CLD_20210322\.tif \(date 2021-03-22\): cloud mask \({dtype}\) holds values .*{shown}"
    with pytest.raises(InputDataError, match=named):
        folder_tiles("f", folder_cfg(root, bands=BANDS), tmp_path / "tiles")


def test_masks_of_other_dtypes_holding_only_classes_are_taken(tmp_path):
    """An int16 mask with nodata -1 and a float mask of whole classes are what they say."""
    root = write_folder_series(tmp_path / "data", bands=4)
    int_mask = np.zeros((96, 96), np.int16)
    int_mask[:32, :32] = 1
    int_mask[64:, 64:] = -1  # the file's nodata
    write_tif(root / "cld" / "CLD_20210105.tif", int_mask, nodata=-1)
    float_mask = np.zeros((96, 96), np.float32)
    float_mask[:32, :32] = 3.0
    write_tif(root / "cld" / "CLD_20210322.tif", float_mask, nodata=None)
    manifest = folder_tiles("f", folder_cfg(root, bands=BANDS), tmp_path / "tiles")
    first = manifest[manifest.date == "2021-01-05"].set_index("tile")
    assert set(np.unique(read_raster(first.at["r0c0", "mask"])[0])) == {1}
    assert set(np.unique(read_raster(first.at["r2c2", "mask"])[0])) == {255}
    last = manifest[manifest.date == "2021-03-22"].set_index("tile")
    assert set(np.unique(read_raster(last.at["r0c0", "mask"])[0])) == {3}


def test_the_pack_stage_checks_mask_values_before_the_cast(tmp_path):
    manifest = pack_region_sample(tmp_path / "tiles")
    row = manifest.iloc[1]
    mask, prof = read_raster(row["mask"])
    bad = mask[0].astype(np.int16)
    bad[0, 0] = -1
    write_raster(row["mask"], bad, {**prof, "dtype": "int16"})
    rows = manifest[manifest.tile == row.tile].sort_values("date")
    where = re.escape(f"{row['mask']} (tile a, date {row.date}): cloud mask (int16)")
    with pytest.raises(InputDataError, match=rf"{where}.*\[-1\]"):
        load_series(rows, S2_L1C_BANDS)


# 2. Band descriptions decide which band is which ------------------------------------------


def test_a_date_with_its_bands_in_another_order_is_reordered_by_its_descriptions(tmp_path):
    root = four_band_series(tmp_path / "data", {"20210210": ["B08", "B04", "B03", "B02"]})
    manifest = folder_tiles("f", folder_cfg(root, bands=BANDS), tmp_path / "tiles")
    for row in manifest.itertuples():
        img, _ = read_raster(row.image)
        means = img.reshape(4, -1).mean(axis=1)
        np.testing.assert_allclose(means, [LEVEL[b] for b in BANDS], atol=50, err_msg=row.date)


def test_a_configured_band_missing_from_the_descriptions_is_refused(tmp_path):
    root = four_band_series(tmp_path / "data", {"20210322": ["B02", "B03", "B04", "B05"]})
    with pytest.raises(
        InputDataError, match=r"S2_20210322_L1C\.tif \(date 2021-03-22\): .*B08 .*missing"
    ):
        folder_tiles("f", folder_cfg(root, bands=BANDS), tmp_path / "tiles")


def test_the_pack_stage_reorders_a_date_by_its_band_descriptions(tmp_path):
    manifest = pack_region_sample(tmp_path / "tiles")
    for row in manifest.itertuples():
        img, prof = read_raster(row.image)
        write_raster(row.image, img[[1, 2, 3, 7]], prof, band_names=BANDS)
    row = manifest.iloc[2]
    img, prof = read_raster(row.image)
    write_raster(row.image, img[::-1], prof, band_names=BANDS[::-1])
    rows = manifest[manifest.tile == row.tile].sort_values("date")
    s2, _ = load_series(rows, BANDS)
    t = rows["date"].tolist().index(row.date)
    np.testing.assert_array_equal(s2[t], img)


# 3. dtype, value range and scale -----------------------------------------------------------


def test_a_float_date_among_dn_dates_is_refused(tmp_path):
    root = write_folder_series(tmp_path / "data", bands=4)
    path = root / "img" / "S2_20210210_L1C.tif"
    with rasterio.open(path) as src:
        refl = src.read().astype(np.float32) / 10000
        origin, res = (src.transform.c, src.transform.f), src.res[0]
    write_tif(path, refl, res=res, origin=origin, nodata=None)
    with pytest.raises(
        InputDataError, match=r"S2_20210210_L1C\.tif \(date 2021-02-10\): float32 pixels.*uint16"
    ):
        folder_tiles("f", folder_cfg(root, bands=BANDS), tmp_path / "tiles")


@pytest.mark.parametrize(
    ("dtype", "scale", "why"),
    [("float32", 0.0001, "brightest"), ("uint16", 1.0, "outside")],
)
def test_values_of_implausible_reflectance_are_refused(tmp_path, dtype, scale, why):
    """Reflectance 0..1 read with the DN scale, DN read as reflectance: every pixel would
    be DN 1 or 65535."""
    root = tmp_path / "data"
    for day in DATES:
        data = np.random.default_rng(1).integers(500, 4000, (4, 64, 64)).astype(dtype)
        if dtype == "float32":
            data /= 10000
        write_tif(root / "img" / f"S2_{day}_L1C.tif", data, nodata=None)
        write_tif(root / "cld" / f"CLD_{day}.tif", np.zeros((64, 64), np.uint8), nodata=255)
    cfg = folder_cfg(root, bands=BANDS, scale=scale)
    with pytest.raises(InputDataError, match=rf"S2_20210105_L1C\.tif \(date 2021-01-05\).*{why}"):
        folder_tiles("f", cfg, tmp_path / "tiles")


def test_non_finite_values_become_nodata_with_a_count_in_the_log(tmp_path, caplog):
    root = tmp_path / "data"
    for day in DATES:
        data = np.random.default_rng(2).uniform(0.05, 0.4, (4, 64, 64)).astype(np.float32)
        if day == DATES[0]:
            data[:, :4, :8] = np.inf
        write_tif(root / "img" / f"S2_{day}_L1C.tif", data, nodata=None)
        write_tif(root / "cld" / f"CLD_{day}.tif", np.zeros((64, 64), np.uint8), nodata=255)
    cfg = folder_cfg(root, bands=BANDS, scale=1.0, resampling="nearest", min_valid=0.0)
    with caplog.at_level(logging.WARNING, logger="cloudfree"):
        manifest = folder_tiles("f", cfg, tmp_path / "tiles")
    assert "S2_20210105_L1C.tif (date 2021-01-05): 32 pixels" in caplog.text
    row = manifest[(manifest.date == "2021-01-05") & (manifest.tile == "r0c0")].iloc[0]
    img, _ = read_raster(row.image)
    assert (img[:, :4, :8] == 0).all() and (img[:, 4:, :] > 1).all()
    mask, _ = read_raster(row["mask"])
    assert (mask[0, :4, :8] == 255).all()


@pytest.mark.parametrize("scale", [0, -0.0001])
def test_a_scale_that_is_not_positive_is_refused(tmp_path, scale):
    root = write_folder_series(tmp_path / "data", bands=4)
    cfg = {**folder_cfg(root, bands=BANDS), "scale": scale}
    with pytest.raises(ConfigError, match=r"regions\.f\.folder\.scale"):
        folder_tiles("f", cfg, tmp_path / "tiles")
    with pytest.raises(ConfigError, match=r"regions\.r\.folder\.scale"):
        source_settings("folder", {"images": "x/*.tif", "scale": scale})


# 4. Sizes are checked before anything is allocated ----------------------------------------


def test_a_header_claiming_a_huge_image_is_refused_before_planning(tmp_path, nothing_big):
    root = write_folder_series(tmp_path / "data", bands=4)
    huge = root / "img" / "S2_20210210_L1C.tif"
    huge.unlink()
    with rasterio.open(
        huge, "w", driver="GTiff", width=100_000, height=100_000, count=4, dtype="uint16",
        crs="EPSG:32737", transform=Affine(10, 0, ORIGIN[0], 0, -10, ORIGIN[1]), nodata=0,
        tiled=True, compress="deflate", sparse_ok=True,
    ):  # fmt: skip
        pass
    assert huge.stat().st_size < 5_000_000
    cfg = folder_cfg(root, bands=BANDS, masks=None)
    with pytest.raises(
        ConfigError, match=r"regions\.f: .*9765625 tiles.*regions\.f\.folder\.max_tiles \(20000\)"
    ):
        folder_tiles("f", cfg, tmp_path / "tiles")


def test_a_tiny_resolution_is_refused_before_planning(tmp_path, nothing_big):
    root = write_folder_series(tmp_path / "data", bands=4)
    with pytest.raises(ConfigError, match=r"regions\.f: .* tiles.*folder\.max_tiles"):
        folder_tiles("f", folder_cfg(root, bands=BANDS, resolution=0.001), tmp_path / "tiles")


def test_a_row_of_tiles_too_large_for_memory_is_refused_before_reading(tmp_path, nothing_big):
    root = write_folder_series(tmp_path / "data", bands=4, size=64)
    wide = root / "img" / "S2_20210210_L1C.tif"
    with rasterio.open(
        wide, "w", driver="GTiff", width=90_000, height=8192, count=4, dtype="uint16",
        crs="EPSG:32737", transform=Affine(10, 0, ORIGIN[0], 0, -10, ORIGIN[1]), nodata=0,
        tiled=True, compress="deflate", sparse_ok=True,
    ):  # fmt: skip
        pass
    cfg = folder_cfg(root, bands=BANDS, masks=None, tile_size=8192)
    with pytest.raises(ConfigError, match=r"regions\.f: .*GB.*regions\.f\.folder\.max_memory_gb"):
        folder_tiles("f", cfg, tmp_path / "tiles")


def _far_away_date(root: Path) -> Path:
    """The second date's image and mask moved 1,000 km east."""
    far = (ORIGIN[0] + 1_000_000.0, ORIGIN[1])
    img = np.random.default_rng(3).integers(500, 4000, (4, 96, 96)).astype(np.uint16)
    path = write_tif(root / "img" / "S2_20210210_L1C.tif", img, origin=far)
    write_tif(root / "cld" / "CLD_20210210.tif", np.zeros((96, 96), np.uint8), origin=far,
              nodata=255)  # fmt: skip
    return path


def test_a_date_far_off_the_others_is_refused_by_default(tmp_path, nothing_big):
    root = write_folder_series(tmp_path / "data", bands=4)
    _far_away_date(root)
    with pytest.raises(
        InputDataError,
        match=r"S2_20210210_L1C\.tif \(date 2021-02-10\): .*far off.*regions\.f\.folder\.outliers",
    ):
        folder_tiles("f", folder_cfg(root, bands=BANDS), tmp_path / "tiles")


def test_a_date_far_off_the_others_is_left_out_with_outliers_drop(tmp_path, caplog):
    root = write_folder_series(tmp_path / "data", bands=4)
    _far_away_date(root)
    cfg = folder_cfg(root, bands=BANDS, outliers="drop")
    with caplog.at_level(logging.WARNING, logger="cloudfree"):
        manifest = folder_tiles("f", cfg, tmp_path / "tiles")
    assert "S2_20210210_L1C.tif (date 2021-02-10)" in caplog.text and "left out" in caplog.text
    assert sorted(manifest["date"].unique()) == ["2021-01-05", "2021-03-22"]
    assert manifest["tile"].nunique() == 9  # 96 px of the two other dates: 3 x 3 tiles


@pytest.mark.parametrize(
    ("values", "named"),
    [
        ({"tile_size": 100_000, "overlap": 0}, r"regions\.s\.synthetic\.max_memory_gb"),
        ({"tiles_x": 200, "tiles_y": 200, "tile_size": 16, "overlap": 0},
         r"40000 tiles.*regions\.s\.synthetic\.max_tiles \(20000\)"),
    ],
)  # fmt: skip
def test_a_huge_synthetic_region_is_refused_before_allocating(tmp_path, nothing_big, values, named):
    with pytest.raises(ConfigError, match=named):
        synthetic_tiles("s", source_settings("synthetic", values), tmp_path / "tiles")


# 5. Tiles that another run rewrote are not packed -----------------------------------------


def _synthetic(cloudiness: float) -> dict[str, Any]:
    """A small synthetic region; the cloudiness changes its pixels, not its tile or dates."""
    values = {"tiles_x": 3, "tiles_y": 1, "tile_size": 32, "overlap": 0, "n_dates": 2}
    return {
        "source": "synthetic",
        "synthetic": source_settings("synthetic", {**values, "cloudiness": cloudiness}),
    }


def _pack_script(manifest: Path, h5: Path) -> None:
    """Rule pack_hdf5's script, as Snakemake runs it."""

    class Input(SimpleNamespace):
        def get(self, key: str, default: Any = None) -> Any:
            return getattr(self, key, default)

    smk = SimpleNamespace(
        scriptdir=str(REPO / "workflow/scripts"), log=[], rule="pack_hdf5",
        wildcards={"region": "r"}, input=Input(manifest=str(manifest)),
        output=SimpleNamespace(h5=str(h5)),
        params=SimpleNamespace(pack=section("pack"), evaluation=section("evaluation")),
    )  # fmt: skip
    runpy.run_path(str(REPO / "workflow/scripts/pack_hdf5.py"), init_globals={"snakemake": smk})


def test_a_manifest_whose_tiles_another_run_rewrote_is_not_packed(tmp_path):
    shared = tmp_path / "shared_resources"
    one, two = tmp_path / "one", tmp_path / "two"
    for work in (one, two):
        work.mkdir()
        (work / "resources").symlink_to(shared, target_is_directory=True)
    shared.mkdir()
    first = one / "results/tiles/r.csv"
    download_tiles("r", _synthetic(0.2), one / "resources/tiles/r", first, {})
    download_tiles("r", _synthetic(0.6), two / "resources/tiles/r", two / "results/tiles/r.csv", {})
    assert read_manifest(first)["image"].map(lambda p: Path(p).exists()).all()  # same names
    with pytest.raises(InputDataError) as err:
        _pack_script(first, one / "results/hdf5/r.h5")
    message = str(err.value)
    assert str(first) in message and str(one / "resources/tiles/r") in message
    assert "another run rewrote" in message and "download_tiles" in message
    assert not (one / "results/hdf5/r.h5").exists()
    # the second working directory's manifest matches the folder: it packs
    _pack_script(two / "results/tiles/r.csv", two / "results/hdf5/r.h5")
    assert (two / "results/hdf5/r.h5").exists()

"""Tests of cloudfree.tiles.folder: per-date GeoTIFFs on mixed grids, masks or probabilities."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine
from rasterio.crs import CRS
from rasterio.enums import Resampling

from cloudfree.config import source_settings
from cloudfree.errors import ConfigError, InputDataError
from cloudfree.manifest import read_manifest
from cloudfree.tiles.folder import FolderSpec, folder_tiles, parse_date
from cloudfree.tiles.folder_bands import band_indexes, description_keys
from cloudfree.tiles.folder_checks import Image, check_dtypes, far_off
from cloudfree.tiles.grid import Grid, read_on_grid
from cloudfree.tiles.region import download_tiles, staging_dir

ORIGIN = (500000.0, 8300000.0)
DATES = ("20210105", "20210210", "20210322")


def write_tif(path: Path, data: np.ndarray, *, crs="EPSG:32737", res=10.0, origin=ORIGIN, nodata=0):
    data = data[None] if data.ndim == 2 else data
    path.parent.mkdir(parents=True, exist_ok=True)
    prof = dict(
        driver="GTiff", width=data.shape[2], height=data.shape[1], count=data.shape[0],
        dtype=data.dtype.name, crs=crs, transform=Affine(res, 0, origin[0], 0, -res, origin[1]),
        nodata=nodata,
    )  # fmt: skip
    with rasterio.open(path, "w", **prof) as dst:
        dst.write(data)
    return path


def write_folder_series(root: Path, size: int = 96, bands: int = 13, seed: int = 0) -> Path:
    """Three dates of ``bands`` x uint16 images with 0/1 masks; the second date at 20 m and
    shifted by 10 px, as files of one series often are."""
    rng = np.random.default_rng(seed)
    for i, day in enumerate(DATES):
        res, n = (20.0, size // 2) if i == 1 else (10.0, size)
        origin = (ORIGIN[0] + 100.0, ORIGIN[1]) if i == 1 else ORIGIN
        img = rng.integers(500, 4000, size=(bands, n, n), dtype=np.uint16)
        mask = np.zeros((n, n), np.uint8)
        mask[: n // 3, : n // 3] = 1
        write_tif(root / "img" / f"S2_{day}_L1C.tif", img, res=res, origin=origin)
        write_tif(root / "cld" / f"CLD_{day}.tif", mask, res=res, origin=origin, nodata=255)
    return root


def folder_cfg(root: Path, **extra) -> dict:
    """The resolved ``folder`` section of the series under ``root``."""
    return source_settings("folder", {
        "images": str(root / "img" / "*.tif"), "masks": str(root / "cld" / "*.tif"),
        "date_regex": r"_(\d{8})", "tile_size": 32, "overlap": 0, "block": 1,
        "val_fraction": 0.34, "test_fraction": 0.34, **extra,
    })  # fmt: skip


def run(region_cfg: dict, tiles: Path, csv: Path):
    """The tile stage on a folder region (its masks come with it: no detector settings)."""
    return download_tiles("f", {"source": "folder", "folder": region_cfg}, tiles, csv, {})


def test_dates_from_names():
    assert parse_date("x/S2_20210105_L1C.tif", r"_(\d{8})_") == "2021-01-05"
    assert parse_date("T37_2021-01-05.tif", r"(\d{4}-\d{2}-\d{2})") == "2021-01-05"
    with pytest.raises(InputDataError, match=r"no_date\.tif: no date"):
        parse_date("dir/no_date.tif", r"_(\d{8})_")


def test_folder_tiles_on_one_grid(tmp_path):
    root = write_folder_series(tmp_path / "data")
    tiles, csv = tmp_path / "resources/tiles/f", tmp_path / "results/tiles/f.csv"
    manifest = run(folder_cfg(root), tiles, csv)
    assert read_manifest(csv).equals(manifest)
    # 96 px at 10 m, plus the shifted second date: 106 px wide, 4 x 3 tiles of 32 px
    assert manifest["tile"].nunique() == 12 and set(manifest["split"]) == {"train", "val", "test"}
    assert list(manifest.groupby("tile")["date"].apply(list).iloc[0]) == [
        "2021-01-05",
        "2021-02-10",
        "2021-03-22",
    ]
    for _, row in manifest.iterrows():
        with rasterio.open(row["image"]) as img, rasterio.open(row["mask"]) as msk:
            assert img.crs.to_epsg() == 32737 and img.res == (10.0, 10.0)
            assert img.count == 13 and img.dtypes[0] == "uint16"
            assert msk.transform == img.transform and msk.shape == img.shape
            assert img.bounds == pytest.approx((row.left, row.bottom, row.right, row.top))
    first = manifest[manifest.date == "2021-01-05"].set_index("tile")
    with rasterio.open(first.at["r0c0", "mask"]) as a, rasterio.open(first.at["r1c1", "mask"]) as b:
        assert (a.read(1) == 1).all() and (b.read(1) == 0).all()  # cloud: upper-left third
    assert not staging_dir(tiles).exists()


def test_tiles_equal_one_warp_of_the_whole_date(tmp_path):
    """Dates are warped a row of tiles at a time; the tiles equal one warp of the whole
    region grid (also for the 20 m date shifted by 10 px, resampled bilinearly)."""
    root = write_folder_series(tmp_path / "data", bands=2)
    manifest = folder_tiles(
        "f", folder_cfg(root, overlap=8, bands=["B02", "B03"]), tmp_path / "tiles"
    )
    left, top = manifest["left"].min(), manifest["top"].max()
    width = round((manifest["right"].max() - left) / 10)
    height = round((top - manifest["bottom"].min()) / 10)
    grid = Grid(CRS.from_epsg(32737), Affine(10, 0, left, 0, -10, top), width, height)
    assert manifest["tile"].nunique() == 20  # 4 rows of 5 tiles: four strips per date
    for day in DATES:
        whole = read_on_grid(
            root / "img" / f"S2_{day}_L1C.tif", grid, resampling=Resampling.bilinear,
            dst_nodata=np.nan,
        )  # fmt: skip
        iso = f"{day[:4]}-{day[4:6]}-{day[6:]}"
        for _, row in manifest[manifest["date"] == iso].iterrows():
            c0, r0 = round((row.left - left) / 10), round((top - row.top) / 10)
            part = whole[:, r0 : r0 + 32, c0 : c0 + 32]
            expected = np.where(np.isnan(part), 0, np.rint(part)).astype(np.uint16)
            with rasterio.open(row["image"]) as img:
                np.testing.assert_array_equal(img.read(), expected)


def test_probabilities_with_threshold_and_dropped_tiles(tmp_path):
    root = write_folder_series(tmp_path / "data", bands=1)
    for i, day in enumerate(DATES):  # each on its image's grid (the second at 20 m, shifted)
        n, res, x0 = (48, 20.0, ORIGIN[0] + 100.0) if i == 1 else (96, 10.0, ORIGIN[0])
        p = np.full((n, n), 0.2, np.float32)
        p[: n // 2] = 0.9
        write_tif(root / "prob" / f"P_{day}.tif", p, res=res, origin=(x0, ORIGIN[1]), nodata=None)
    probs = str(root / "prob" / "*.tif")
    cfg = folder_cfg(root, masks=None, probabilities=probs, threshold=0.5, bands=["NDVI"],
                     scale=0.0002, offset=-0.05, min_valid=0.85)  # fmt: skip
    manifest = folder_tiles("f", cfg, tmp_path / "out")
    # the right column of tiles (x from 74 px) has no data beyond 96 px on two dates: dropped
    assert sorted(manifest["tile"].unique()) == [f"r{r}c{c}" for r in range(3) for c in range(3)]
    row = manifest[manifest.tile == "r0c0"].iloc[0]
    with rasterio.open(row["mask"]) as m, rasterio.open(row.probability) as p:
        assert m.read(1)[0, 0] == 1 and p.dtypes[0] == "float32"
    with rasterio.open(row.image) as img:
        assert img.count == 1 and img.descriptions == ("NDVI",)
    assert not (tmp_path / "out" / "r0c3").exists()


@pytest.mark.parametrize(
    ("breakage", "message"),
    [
        ("truncate", r"S2_20210210_L1C\.tif: cannot"),
        ("nodate", r"S2_undated\.tif: no date"),
        (
            "bands",
            r"S2_20210105_L1C\.tif \(date 2021-01-05\): 4 bands, but "
            r"regions\.f\.folder\.bands lists 13",
        ),
        ("mask_grid", r"CLD_20210322\.tif: cloud mask covers 0%"),
        ("mask_nocrs", r"CLD_20210105\.tif: cloud mask has no CRS"),
        ("empty", r"folder\.images: no files match"),
    ],
)
def test_bad_input_names_the_file_and_leaves_nothing(tmp_path, breakage, message):
    root = write_folder_series(tmp_path / "data")
    img = root / "img"
    if breakage == "truncate":
        data = (img / "S2_20210210_L1C.tif").read_bytes()
        (img / "S2_20210210_L1C.tif").write_bytes(data[: len(data) // 2])
    elif breakage == "nodate":
        write_tif(img / "S2_undated.tif", np.ones((13, 8, 8), np.uint16))
    elif breakage == "bands":
        write_tif(img / "S2_20210105_L1C.tif", np.ones((4, 96, 96), np.uint16))
    elif breakage == "mask_grid":
        write_tif(root / "cld" / "CLD_20210322.tif", np.zeros((96, 96), np.uint8),
                  origin=(700000.0, 8300000.0))  # fmt: skip
    elif breakage == "mask_nocrs":
        path = root / "cld" / "CLD_20210105.tif"
        path.unlink()
        with rasterio.open(path, "w", driver="GTiff", width=96, height=96, count=1,
                           dtype="uint8") as dst:  # fmt: skip
            dst.write(np.zeros((1, 96, 96), np.uint8))
    elif breakage == "empty":
        for p in img.iterdir():
            p.unlink()
    tiles, csv = tmp_path / "tiles/f", tmp_path / "f.csv"
    with pytest.raises(InputDataError, match=message):
        run(folder_cfg(root), tiles, csv)
    assert not tiles.exists() and not csv.exists() and not staging_dir(tiles).exists()


def test_spec_checks_what_the_schema_cannot(tmp_path):
    cfg = folder_cfg(tmp_path)
    spec = FolderSpec.from_dict(cfg)
    assert spec.bands == tuple(cfg["bands"]) and spec.resampling == "bilinear"  # schema defaults
    for change, message in [
        ({"images": ""}, r"folder\.images: a glob pattern"),
        ({"probabilities": "p/*.tif"}, "either masks or probabilities, not both"),
        ({"band_indexes": [1, 2]}, r"folder\.band_indexes: needs one index per name"),
        ({"date_regex": "(unclosed"}, r"folder\.date_regex"),
        ({"colour": 1}, r"folder: unknown keys \['colour'\]"),
    ]:
        with pytest.raises(ConfigError, match=message):
            FolderSpec.from_dict({**cfg, **change})
    with pytest.raises(ConfigError, match=r"folder: missing keys \['resampling'\]"):
        FolderSpec.from_dict({k: v for k, v in cfg.items() if k != "resampling"})
    # the schema holds the resampling methods rasterio's lookup is given
    with pytest.raises(ConfigError, match=r"folder\.resampling: 'gauss' is not one of"):
        folder_cfg(tmp_path, resampling="gauss")
    assert FolderSpec.from_dict(folder_cfg(tmp_path, resampling="cubic_spline")).resampling == (
        "cubic_spline"
    )


def _spec(**extra) -> FolderSpec:
    return FolderSpec.from_dict(folder_cfg(Path("x"), bands=["B02", "B03", "B04"], **extra))


def test_bands_are_taken_by_their_descriptions_when_the_file_has_them():
    spec, none = _spec(), (None, None, None, None)
    assert band_indexes("f", 3, (None,) * 3, spec, "folder") is None  # by position
    assert band_indexes("f", 4, (" b04", "B02", "B03 ", "B08"), spec, "folder") == (2, 3, 1)
    long = ("B04 L1C TOA reflectance x10000", "B2 (blue)", "b03", "B8A")
    assert band_indexes("f", 4, long, spec, "folder") == (2, 3, 1)
    assert description_keys("B8A: narrow NIR") == {"B8A", "B8A: NARROW NIR"}
    assert band_indexes("f", 4, none, _spec(band_indexes=[4, 3, 2]), "folder") == (4, 3, 2)
    # descriptions of another kind: the configured positions hold
    other = ("blue", "green", "red", "nir")
    assert band_indexes("f", 4, other, _spec(band_indexes=[1, 2, 3]), "folder") == (1, 2, 3)
    with pytest.raises(InputDataError, match=r"f: band descriptions blue, .*B02, B03, B04 of"):
        band_indexes("f", 4, other, spec, "folder")
    with pytest.raises(InputDataError, match=r"B04 of folder\.bands \(B02, B03, B04\) missing"):
        band_indexes("f", 3, ("B02", "B03", "B05"), spec, "folder")
    with pytest.raises(InputDataError, match=r"name B02 more than once"):
        band_indexes("f", 4, ("B02", "B03", "B04", "B02"), spec, "folder")
    with pytest.raises(InputDataError, match=r"at bands 1, 2, 3, but folder\.band_indexes says 3"):
        band_indexes("f", 3, ("B02", "B03", "B04"), _spec(band_indexes=[3, 2, 1]), "folder")
    with pytest.raises(InputDataError, match=r"f: 4 bands, but folder\.bands lists 3"):
        band_indexes("f", 4, none, spec, "folder")


def test_dates_of_another_dtype_kind_are_refused_naming_the_odd_one(tmp_path):
    def image(iso: str, dtype: str) -> Image:
        return Image(f"{iso}.tif", iso, CRS.from_epsg(32737), 10.0, (0, 0, 1, 1), 1, 1, dtype,
                     None)  # fmt: skip

    check_dtypes({d: image(d, t) for d, t in [("a", "uint16"), ("b", "int16")]}, "folder")
    three = {"a": image("a", "uint16"), "b": image("b", "float32"), "c": image("c", "uint16")}
    with pytest.raises(InputDataError, match=r"b\.tif \(date b\): float32 pixels, but 2 of the 3"):
        check_dtypes(three, "folder")
    tie = {"a": image("a", "float64"), "b": image("b", "uint16")}  # the earliest date's kind
    with pytest.raises(InputDataError, match=r"b\.tif \(date b\): uint16 pixels.*are float"):
        check_dtypes(tie, "folder")


def test_footprints_far_off_the_median_are_found():
    near = {"a": (0, 0, 10, 10), "b": (2, 2, 12, 12), "c": (1, -1, 9, 9)}
    assert far_off(near)[0] == []
    far, median = far_off({**near, "d": (1000, 0, 1010, 10)})
    assert far == ["d"] and median == (1.5, 0.0, 11.0, 10.0)
    assert far_off({"a": (0, 0, 10, 10), "b": (20, 0, 30, 10)})[0] == ["a", "b"]  # who is off?


def test_the_new_keys_are_checked(tmp_path):
    cfg = folder_cfg(tmp_path)
    for change, message in [
        ({"scale": 0}, r"folder\.scale: 0 must be > 0"),
        ({"scale": float("nan")}, r"folder\.scale: nan must be > 0"),
        ({"scale": float("inf")}, r"folder\.scale: inf must be > 0 and finite"),
        ({"offset": float("inf")}, r"folder\.offset: inf must be a finite number"),
        ({"outliers": "keep"}, r"folder\.outliers: 'keep' is not one of \['error', 'drop'\]"),
        ({"max_memory_gb": 0}, r"folder\.max_memory_gb: 0 must be > 0"),
    ]:
        with pytest.raises(ConfigError, match=message):
            FolderSpec.from_dict({**cfg, **change})
    for key, value in [("outliers", "keep"), ("max_tiles", 0), ("max_memory_gb", 0)]:
        with pytest.raises(ConfigError, match=rf"regions\.r\.folder\.{key}"):
            folder_cfg(tmp_path, **{key: value})
    assert FolderSpec.from_dict(cfg).max_tiles == 20000 and FolderSpec.from_dict(cfg).outliers == (
        "error"
    )

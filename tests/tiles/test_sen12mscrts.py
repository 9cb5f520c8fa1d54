"""Tests of cloudfree.tiles.sen12mscrts on a small fake tree named exactly like the dataset."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import rasterio
from affine import Affine

from cloudfree.cli.pack import main
from cloudfree.config import section, source_settings
from cloudfree.errors import ConfigError, InputDataError
from cloudfree.tiles.region import download_tiles, staging_dir
from cloudfree.tiles.sen12mscrts import Sen12mscrtsSpec, region_rois, roi_table, sen12mscrts_tiles

DATES = ("2018-01-03", "2018-01-15", "2018-02-02")


def make_tree(root: Path, rois=("ROIs2017/32", "ROIs2017/22", "ROIs1970/21"), patches=(3, 7),
              dates=DATES, size=256, seed=0, shift_days=0) -> Path:  # fmt: skip
    """S1 and S2 files for each ROI, patch and time point, named as in the dataset.
    ``shift_days``: the k-th ROI's dates are k * shift_days later (ROIs of one region were
    acquired on different days in the dataset)."""
    rng = np.random.default_rng(seed)
    for k, roi in enumerate(rois):
        rois_dir, n = roi.split("/")
        roi_dates = [
            (date.fromisoformat(d) + timedelta(days=k * shift_days)).isoformat() for d in dates
        ]
        for patch in patches:
            x0, y0 = 300000.0 + 10000 * k + 2560 * patch, 9000000.0
            tr = Affine(10, 0, x0, 0, -10, y0)
            for t, day in enumerate(roi_dates):
                for mod, count, dtype in (("s1", 2, "float32"), ("s2", 13, "uint16")):
                    d = root / rois_dir / n / mod.upper() / str(t)
                    d.mkdir(parents=True, exist_ok=True)
                    name = f"{mod}_{rois_dir}_{n}_ImgNo_{t}_{day}_patch_{patch}.tif"
                    if dtype == "uint16":
                        data = rng.integers(300, 3000, (count, size, size)).astype(dtype)
                    else:
                        data = rng.uniform(-25, 0, (count, size, size)).astype(dtype)
                    with rasterio.open(d / name, "w", driver="GTiff", width=size, height=size,
                                       count=count, dtype=dtype, crs="EPSG:32736",
                                       transform=tr) as dst:  # fmt: skip
                        dst.write(data)
    return root


def fake_detector(manifest, dest, clouds_cfg, threads=None):
    """Stands in for s2cloudless in unit tests: an all-clear mask on each image's grid."""
    out = manifest.copy()
    for idx, row in out.iterrows():
        with rasterio.open(row["image"]) as src:
            prof = dict(src.profile, driver="GTiff", count=1, dtype="uint8", nodata=255)
        path = Path(dest) / row["tile"] / f"{row['date']}_mask.tif"
        path.parent.mkdir(parents=True, exist_ok=True)
        with rasterio.open(path, "w", **prof) as dst:
            dst.write(np.zeros((1, prof["height"], prof["width"]), np.uint8))
        out.at[idx, "mask"] = str(path)
        out.at[idx, "probability"] = ""
    return out


@pytest.fixture
def tree(tmp_path):
    return make_tree(tmp_path / "SEN12MSCRTS")


def region(**spec) -> dict:
    """A sen12mscrts region's resolved config."""
    return {"source": "sen12mscrts", "sen12mscrts": source_settings("sen12mscrts", spec)}


def run(name: str, region_cfg: dict, tiles: Path, csv: Path):
    """The tile stage with the schema's detector settings (the dataset has no masks)."""
    clouds = {"detector": section("clouds")["detector"]}
    return download_tiles(name, region_cfg, tiles, csv, clouds)


def test_roi_lists_are_the_datasets():
    assert sorted(region_rois("africa", ("test",))) == ["ROIs2017/140", "ROIs2017/32"]
    assert len(region_rois("africa", ("train", "val", "test"))) == 9
    table = roi_table()
    for region in ("africa", "america", "asiaEast", "asiaWest", "europa"):
        assert set(table[table.region == region].split) == {"train", "val", "test"}
    every = table[table.region == "all"]
    assert len(every) == 53 and (every.split == "test").sum() == 13


def test_manifest_points_at_the_dataset(tmp_path, tree, monkeypatch):
    monkeypatch.setattr("cloudfree.tiles.region.masks_for_manifest", fake_detector)
    cfg = region(root=str(tree), region="africa", s1=True)
    tiles, csv = tmp_path / "tiles/africa", tmp_path / "africa.csv"
    manifest = run("africa", cfg, tiles, csv)
    assert sorted(manifest.tile.unique()) == [
        "ROIs1970_21_p3", "ROIs1970_21_p7", "ROIs2017_22_p3", "ROIs2017_22_p7",
        "ROIs2017_32_p3", "ROIs2017_32_p7",
    ]  # fmt: skip
    split = manifest.groupby("tile")["split"].first()
    assert split["ROIs2017_32_p3"] == "test" and split["ROIs2017_22_p7"] == "val"
    assert split["ROIs1970_21_p3"] == "train"
    row = manifest.iloc[0]
    assert list(manifest[manifest.tile == row.tile].date) == list(DATES)
    assert row.image.startswith(str(tree.resolve())) and "_S1" not in row.image
    assert "/S1/0/s1_" in row.s1 and row["mask"].startswith(str(tiles))
    with rasterio.open(row.image) as src, rasterio.open(row["mask"]) as msk:
        assert src.count == 13 and msk.transform == src.transform
        assert src.bounds == pytest.approx((row.left, row.bottom, row.right, row.top))
    # nothing copied: the tile folder holds the masks only
    assert not list(tiles.rglob("*.vrt")) and not staging_dir(tiles).exists()


def test_patches_cropped_into_vrt_windows(tmp_path, tree):
    cfg = source_settings("sen12mscrts", {"root": str(tree), "region": "africa",
                          "splits": ["test"], "patches": [7], "crop": 128, "s1": True})  # fmt: skip
    rows = sen12mscrts_tiles("africa", cfg, tmp_path / "out")
    assert sorted(rows.tile.unique()) == [
        f"ROIs2017_32_p7_r{r}c{c}" for r in (0, 1) for c in (0, 1)
    ]
    row = rows[rows.tile.str.endswith("r1c0")].iloc[0]
    assert row.image.endswith(".vrt") and Path(row.image).stat().st_size < 20000
    src_file = next((tree / "ROIs2017/32/S2/0").glob("*patch_7.tif"))
    with rasterio.open(row.image) as vrt, rasterio.open(src_file) as full:
        assert vrt.shape == (128, 128) and vrt.count == 13
        assert np.array_equal(vrt.read(), full.read(window=((128, 256), (0, 128))))
        assert vrt.transform == full.window_transform(((128, 256), (0, 128)))
        assert vrt.bounds == pytest.approx((row.left, row.bottom, row.right, row.top))
    with rasterio.open(row.s1) as s1:
        assert s1.count == 2 and s1.dtypes[0] == "float32"


def test_real_detector_fills_masks(tmp_path):
    tree = make_tree(tmp_path / "ds", rois=("ROIs2017/32",), patches=(1,), dates=DATES[:2])
    cfg = region(root=str(tree), region="africa", crop=64, patches=[1])
    manifest = run("africa", cfg, tmp_path / "t/africa", tmp_path / "africa.csv")
    assert len(manifest) == 16 * 2 and (manifest["mask"] != "").all()
    with rasterio.open(manifest.iloc[0]["mask"]) as m, rasterio.open(manifest.iloc[0].image) as i:
        assert m.transform == i.transform and m.dtypes[0] == "uint8"


def test_detector_gets_the_schema_settings_and_the_job_threads(tmp_path, tree, monkeypatch):
    seen = []

    def recording(manifest, dest, clouds_cfg, threads=None):
        seen.append((clouds_cfg["detector"]["resolution"], threads, manifest["tile"].nunique()))
        return fake_detector(manifest, dest, clouds_cfg)

    monkeypatch.setattr("cloudfree.tiles.region.masks_for_manifest", recording)
    cfg = region(root=str(tree), region="africa", rois=["ROIs2017/32"], patches=[3])
    clouds = {"detector": section("clouds")["detector"]}
    download_tiles("a", cfg, tmp_path / "tiles/a", tmp_path / "a.csv", clouds, threads=3)
    assert seen == [(40, 3, 1)]  # the schema's 40 m working grid, the job's 3 threads


@pytest.mark.parametrize(
    ("breakage", "message"),
    [
        ("undated", r"s2_ROIs2017_32_ImgNo_1_patch_3\.tif: not a SEN12MS-CR-TS file name"),
        ("truncated", r"s2_ROIs2017_32_ImgNo_1_2018-01-15_patch_3\.tif: cannot open"),
        ("no_rois", r"ROI list of region 'africa', splits \['val'\], rois \['ROIs1158/106'\]"),
        ("empty_root", r"none of the 9 ROI folders of region 'africa'"),
    ],
)
def test_bad_input_names_the_file(tmp_path, tree, breakage, message, monkeypatch):
    monkeypatch.setattr("cloudfree.tiles.region.masks_for_manifest", fake_detector)
    s2 = tree / "ROIs2017/32/S2/1"
    cfg = {"root": str(tree), "region": "africa"}
    if breakage == "undated":
        next(s2.glob("*patch_3.tif")).rename(s2 / "s2_ROIs2017_32_ImgNo_1_patch_3.tif")
    elif breakage == "truncated":
        f = next(s2.glob("*patch_3.tif"))
        f.write_bytes(f.read_bytes()[:300])
    elif breakage == "no_rois":
        cfg.update(splits=["val"], rois=["ROIs1158/106"])
    elif breakage == "empty_root":
        cfg["root"] = str(tmp_path / "empty")
        (tmp_path / "empty").mkdir()
    tiles, csv = tmp_path / "tiles/a", tmp_path / "a.csv"
    with pytest.raises(InputDataError, match=message):
        run("a", region(**cfg), tiles, csv)
    assert not tiles.exists() and not csv.exists() and not staging_dir(tiles).exists()


def test_command_line_packs_a_split(tmp_path, tree, monkeypatch, capsys):
    monkeypatch.setattr("cloudfree.tiles.region.masks_for_manifest", fake_detector)
    seen = {}

    def fake_pack(manifest: pd.DataFrame, dest, **kwargs):
        seen.update(manifest=manifest, dest=dest, kwargs=kwargs)
        Path(dest).write_text("packed")
        return Path(dest)

    monkeypatch.setattr("cloudfree.cli.pack.pack_region", fake_pack)
    assert main(["sen12mscrts", str(tree), "test", "africa", str(tmp_path / "a.h5")]) == 0
    assert set(seen["manifest"].split) == {"test"} and seen["manifest"].tile.nunique() == 2
    pack = seen["kwargs"]["pack"]
    assert (pack["compression"], pack["compression_level"]) == ("blosc_lz4hc", 4)
    assert main(["sen12mscrts", str(tmp_path / "nowhere"), "test", "africa", "x.h5"]) == 1
    assert "nowhere" in capsys.readouterr().err
    csv = tmp_path / "m.csv"
    seen["manifest"].to_csv(csv, index=False)
    assert main(["--compression", "lzf", "manifest", str(csv), str(tmp_path / "m.h5")]) == 0
    assert seen["kwargs"]["pack"]["compression"] == "lzf" and len(seen["manifest"]) == 6


def test_spec_needs_the_resolved_section(tree):
    cfg = source_settings("sen12mscrts", {"root": str(tree)})
    spec = Sen12mscrtsSpec.from_dict(cfg)
    assert spec.splits == ("train", "val", "test") and spec.crop_overlap == 0  # schema defaults
    assert spec.region is None and spec.rois is None and not spec.s1
    with pytest.raises(ConfigError, match=r"sen12mscrts\.root: the dataset folder is required"):
        Sen12mscrtsSpec.from_dict({**cfg, "root": ""})
    with pytest.raises(ConfigError, match=r"sen12mscrts: missing keys \['crop_overlap'\]"):
        Sen12mscrtsSpec.from_dict({k: v for k, v in cfg.items() if k != "crop_overlap"})

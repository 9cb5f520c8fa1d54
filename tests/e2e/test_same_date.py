"""End to end with two acquisitions of one date in a ``folder`` region: the whole chain runs
(one `snakemake -c 2`), the manifest names the files merged into the date, and the merged
tiles take the pixels cloudy in the first acquisition from the second."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
import rasterio

from cloudfree.manifest import read_manifest

from ..tiles.test_folder import write_tif
from ..workflow_run import snakemake, tiny_config, write_config

pytestmark = pytest.mark.e2e
DATES = ["2021-03-02", "2021-03-12", "2021-03-22", "2021-04-01", "2021-04-11"]
MERGED = "2021-03-22"  # the date of two acquisitions


def folder_data(root: Path) -> dict:
    """Five dates of a 96 x 32 px 13-band series with moving cloud rectangles; the middle
    date has a second acquisition (``_L1C_b``) cloudy on rows 20-32 only."""
    rng = np.random.default_rng(1)
    second = {}
    for i, day in enumerate(DATES):
        stamp = day.replace("-", "")
        img = rng.integers(500, 4000, size=(13, 32, 96), dtype=np.uint16)
        mask = np.zeros((32, 96), np.uint8)
        mask[4:20, 10 * i : 10 * i + 30] = 1
        write_tif(root / "img" / f"S2_{stamp}_L1C.tif", img)
        write_tif(root / "cld" / f"S2_{stamp}_CLD.tif", mask, nodata=255)
        if day == MERGED:
            other = rng.integers(500, 4000, size=(13, 32, 96), dtype=np.uint16)
            cloud = np.zeros((32, 96), np.uint8)
            cloud[20:, :] = 1
            write_tif(root / "img" / f"S2_{stamp}_L1C_b.tif", other)
            write_tif(root / "cld" / f"S2_{stamp}_CLD_b.tif", cloud, nodata=255)
            second = {"first": (img, mask), "second": (other, cloud)}
    np.savez(root / "merged.npz", img=second["first"][0], mask=second["first"][1],
             other=second["second"][0], cloud=second["second"][1])  # fmt: skip
    return {"source": "folder", "folder": {
        "images": str(root / "img" / "*.tif"), "masks": str(root / "cld" / "*.tif"),
        "date_regex": r"_(\d{8})_", "tile_size": 32, "block": 1, "val_fraction": 0.34,
        "test_fraction": 0.34,
    }}  # fmt: skip


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    workdir = tmp_path_factory.mktemp("same_date")
    config = tiny_config(steps=10, val_every=5)
    config["regions"] = {"site": folder_data(workdir / "data")}
    write_config(workdir, config)
    snakemake(workdir, "-c", "2", "all")  # the whole chain
    return workdir


def test_the_whole_chain_runs_with_a_merged_date(workdir):
    manifest = read_manifest(workdir / "results/tiles/site.csv")
    assert sorted(manifest["date"].unique()) == DATES  # one date, not two
    metrics = pd.read_csv(workdir / "results/metrics/site.csv")
    assert len(metrics) > 0
    assert set(metrics["tile"]) <= set(manifest.loc[manifest.split == "test", "tile"])
    assert any((workdir / "results/mosaics/site/site").iterdir())
    with h5py.File(workdir / "results/hdf5/site.h5") as h5:
        for tile in h5["tiles"].values():
            assert tile["s2"].shape[0] == len(DATES)  # T, C, H, W: one merged date


def test_the_manifest_names_the_merged_files_and_the_pixels_come_from_the_clear_one(workdir):
    manifest = read_manifest(workdir / "results/tiles/site.csv")
    data = workdir / "data"
    first = str(data / "img" / "S2_20210322_L1C.tif")
    second = str(data / "img" / "S2_20210322_L1C_b.tif")
    merged = manifest[manifest["date"] == MERGED].set_index("tile")
    # the first file is the less cloudy on every tile (its cloud: 16 rows of columns 20-50;
    # the second's: 12 full rows), so it comes first, and the second fills its cloud; on
    # r0c2 the first is clear: the second gives no pixel and is not listed
    assert list(merged.loc[["r0c0", "r0c1"], "acquisitions"]) == [f"{first};{second}"] * 2
    assert list(merged.loc[["r0c0", "r0c1"], "merge"]) == ["least_cloudy"] * 2
    assert (merged.at["r0c2", "acquisitions"], merged.at["r0c2", "merge"]) == (first, "")
    others = manifest[manifest["date"] != MERGED]
    assert (others["merge"] == "").all()
    assert all(";" not in a and a.endswith("_L1C.tif") for a in others["acquisitions"])
    ref = np.load(data / "merged.npz")
    img, mask, other, cloud = ref["img"], ref["mask"], ref["other"], ref["cloud"]
    expected = np.where(mask.astype(bool) & ~cloud.astype(bool), other, img)
    expected_mask = (mask.astype(bool) & cloud.astype(bool)).astype(np.uint8)
    checked = 0
    for tile, row in merged.iterrows():
        with (
            rasterio.open(workdir / row["image"]) as src,
            rasterio.open(workdir / row["mask"]) as m,
        ):
            dn, got_mask, tags = src.read(), m.read(1), src.tags()
        c0 = int(tile.split("c")[1]) * 32
        np.testing.assert_array_equal(dn, expected[:, :, c0 : c0 + 32])
        np.testing.assert_array_equal(got_mask, expected_mask[:, c0 : c0 + 32])
        assert tags["SOURCE_FILE"] == row["acquisitions"]
        # a pixel cloudy in the first acquisition and clear in the second comes from the second
        rows, cols = np.nonzero(mask[:, c0 : c0 + 32] & (1 - cloud[:, c0 : c0 + 32]))
        if len(rows):
            r, c = rows[0], cols[0]
            assert (dn[:, r, c] == other[:, r, c0 + c]).all() and got_mask[r, c] == 0
            checked += 1
    assert checked >= 2

"""End to end on each real tile source: `snakemake results/tiles/<region>.csv` first (the
tile stage alone), then the whole chain, unchanged, on tiny data in a temp dir.  The STAC
region takes Sentinel-1 from the same catalogue too, and its model reads it."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
import rasterio
import torch
from rasterio.warp import transform_bounds

from ..stac_server import CRS as STAC_CRS
from ..stac_server import ORIGIN as STAC_ORIGIN
from ..stac_server import StacServer, make_s1_scenes, make_scenes
from ..tiles.test_folder import write_tif
from ..tiles.test_sen12mscrts import make_tree
from ..workflow_run import snakemake, tiny_config, write_config

pytestmark = pytest.mark.e2e
DATES = ["2021-03-02", "2021-03-12", "2021-03-22", "2021-04-01", "2021-04-11"]
# Sentinel-1 two days after each optical date but the last (8 days from 2021-04-03: none)
S1_DATES = ["2021-03-04", "2021-03-14", "2021-03-24", "2021-04-03"]
SPLIT = {"block": 1, "val_fraction": 0.34, "test_fraction": 0.34}


def folder_data(root: Path) -> dict:
    """Five dates of a 96 x 32 px 13-band series with moving cloud rectangles."""
    rng = np.random.default_rng(1)
    for i, day in enumerate(DATES):
        stamp = day.replace("-", "")
        img = rng.integers(500, 4000, size=(13, 32, 96), dtype=np.uint16)
        mask = np.zeros((32, 96), np.uint8)
        mask[4:20, 10 * i : 10 * i + 30] = 1
        write_tif(root / "img" / f"S2_{stamp}_L1C.tif", img)
        write_tif(root / "cld" / f"S2_{stamp}_CLD.tif", mask, nodata=255)
    return {"source": "folder", "folder": {
        "images": str(root / "img" / "*.tif"), "masks": str(root / "cld" / "*.tif"),
        "date_regex": r"_(\d{8})_", "tile_size": 32, **SPLIT,
    }}  # fmt: skip


def stac_region(url: str) -> dict:
    box = (STAC_ORIGIN[0] + 20, STAC_ORIGIN[1] - 360, STAC_ORIGIN[0] + 940, STAC_ORIGIN[1] - 20)
    return {"source": "stac", "stac": {
        "url": url, "bbox": list(transform_bounds(STAC_CRS, "EPSG:4326", *box)),
        "start": DATES[0], "end": DATES[-1], "crs": STAC_CRS, "tile_size": 32,
        "retries": 3, "backoff": 0.05, "s1": {"orbit_state": "descending"}, **SPLIT,
    }}  # fmt: skip


def sen12mscrts_region(root: Path) -> dict:
    # each ROI acquired on its own days, as in the dataset: tiles of one region differ
    make_tree(root, rois=("ROIs2017/32", "ROIs2017/22", "ROIs1970/21"), patches=(1,),
              dates=DATES[:4], size=256, shift_days=2)  # fmt: skip
    return {"source": "sen12mscrts", "sen12mscrts": {"root": str(root), "region": "africa"}}


@pytest.fixture(scope="module")
def stac_server(tmp_path_factory):
    root = tmp_path_factory.mktemp("cogs")
    items = make_scenes(root, DATES, [5.0] * len(DATES)) + make_s1_scenes(root, S1_DATES)
    with StacServer(root, items, fail_every=9) as srv:
        yield srv


@pytest.fixture(scope="module", params=["folder", "stac", "sen12mscrts"])
def source_run(request, tmp_path_factory, stac_server) -> tuple[str, Path]:
    source = request.param
    workdir = tmp_path_factory.mktemp(source)
    region = {
        "folder": lambda: folder_data(workdir / "data"),
        "stac": lambda: stac_region(stac_server.url),
        "sen12mscrts": lambda: sen12mscrts_region(workdir / "SEN12MSCRTS"),
    }[source]()
    config = tiny_config(steps=10, val_every=5)
    config["regions"] = {"site": region}
    if source == "stac":
        config["train"]["inputs"] = {"s1": True}
    write_config(workdir, config)
    snakemake(workdir, "-c", "2", "results/tiles/site.csv")
    return source, workdir


def test_tile_stage_through_snakemake(source_run):
    source, workdir = source_run
    manifest = pd.read_csv(workdir / "results/tiles/site.csv", keep_default_na=False)
    assert (manifest["source"] == source).all()
    assert set(manifest["split"]) == {"train", "val", "test"}
    assert not (workdir / "results/metrics").exists()  # only the tile stage ran
    for _, rows in manifest.groupby("tile"):
        assert list(rows["date"]) == sorted(rows["date"]) and len(rows) >= 4
        grids = set()
        for _, row in rows.iterrows():
            with rasterio.open(workdir / row["image"]) as img:
                with rasterio.open(workdir / row["mask"]) as msk:
                    assert img.count == 13 and img.dtypes[0] == "uint16"
                    assert msk.transform == img.transform and msk.crs == img.crs
                    assert img.bounds == pytest.approx((row.left, row.bottom, row.right, row.top))
                    grids.add((img.crs.to_string(), tuple(img.transform)))
        assert len(grids) == 1  # one grid through the dates
    if source == "sen12mscrts":  # three ROIs, three series of dates
        assert manifest.groupby("tile")["date"].apply(tuple).nunique() == 3


def test_rest_of_the_chain_runs_unchanged(source_run):
    source, workdir = source_run
    snakemake(workdir, "-c", "2")
    if source == "sen12mscrts":  # scattered ROIs: no region mosaic unless asked for
        assert not (workdir / "results/mosaics").exists()
        snakemake(workdir, "-c", "2", "results/mosaics/site/site")
    metrics = pd.read_csv(workdir / "results/metrics/site.csv")
    assert len(metrics) > 0
    manifest = pd.read_csv(workdir / "results/tiles/site.csv", keep_default_na=False)
    test_tiles = set(manifest.loc[manifest.split == "test", "tile"])
    assert set(metrics["tile"]) <= test_tiles
    assert any((workdir / "results/mosaics/site/site").iterdir())
    if source == "stac":
        check_stac_s1(workdir, manifest)


def check_stac_s1(workdir: Path, manifest: pd.DataFrame) -> None:
    """Each date's S1 is the catalogue's day two days later (none for the last date), in dB
    on the tile's grid, packed beside the optical series and read by the model."""
    assert (manifest.loc[manifest["date"] == DATES[-1], "s1"] == "").all()
    rest = manifest[manifest["date"] != DATES[-1]]
    assert (rest["s1"] != "").all()
    for _, row in rest.iterrows():
        with rasterio.open(workdir / row["s1"]) as src:
            with rasterio.open(workdir / row["image"]) as img:
                assert src.transform == img.transform and src.tags()["S1_DAYS"] == "2"
            db = src.read()
        assert -25 < np.nanmean(db[0]) < -5 and np.nanmean(db[1]) < np.nanmean(db[0])
    with h5py.File(workdir / "results/hdf5/site.h5") as h5:
        for tile in h5["tiles"].values():
            s1 = tile["s1"][()]
            assert np.isnan(s1[-1]).all() and np.isfinite(s1[:-1]).mean() > 0.5
    blob = torch.load(workdir / "results/models/site/model.pt", weights_only=True)
    assert blob["model"]["kwargs"]["s1_channels"] == 2 and blob["params"]["inputs"]["s1"]

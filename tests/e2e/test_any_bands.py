"""End to end on a `folder` region whose images are not the 13 Sentinel-2 L1C bands: a single
index (NDVI) and four bands.  The band names travel from the tiles' band descriptions
through the packed file, the model file, the predictions, the mosaics and the metrics."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import rasterio
import torch

from cloudfree.packed import packed_bands

from ..tiles.test_folder import write_tif
from ..workflow_run import snakemake, tiny_config, write_config

pytestmark = pytest.mark.e2e
DATES = ["2021-03-02", "2021-03-12", "2021-03-22", "2021-04-01", "2021-04-11"]
SPLIT = {"block": 1, "val_fraction": 0.34, "test_fraction": 0.34}
CASES = {"ndvi": ["NDVI"], "four": ["B02", "B03", "B04", "B08"]}


def folder_data(root: Path, bands: list[str]) -> dict:
    """Five dates of a 96 x 32 px series of ``bands`` (float reflectance-like values in
    [0.05, 0.9], a smooth field plus noise) with moving cloud rectangles."""
    rng = np.random.default_rng(3)
    yy, xx = np.mgrid[0:32, 0:96]
    field = (0.3 + 0.2 * np.sin(xx / 9.0) * np.cos(yy / 7.0)).astype(np.float32)
    for i, day in enumerate(DATES):
        stamp = day.replace("-", "")
        img = np.stack(
            [field * (1 + 0.1 * b) + rng.normal(0, 0.01, field.shape) for b in range(len(bands))]
        )
        img = np.clip(img + 0.02 * i, 0.05, 0.9).astype(np.float32)
        mask = np.zeros((32, 96), np.uint8)
        for x0 in (0, 32, 64):  # a cloud in every tile, moving between dates
            mask[4 + 2 * i : 18 + 2 * i, x0 + 3 * i : x0 + 3 * i + 14] = 1
        write_tif(root / "img" / f"S2_{stamp}_X.tif", img, nodata=None)
        write_tif(root / "cld" / f"S2_{stamp}_CLD.tif", mask, nodata=255)
    return {"source": "folder", "folder": {
        "images": str(root / "img" / "*.tif"), "masks": str(root / "cld" / "*.tif"),
        "date_regex": r"_(\d{8})_", "tile_size": 32, "bands": bands, "scale": 1.0, **SPLIT,
    }}  # fmt: skip


@pytest.fixture(scope="module", params=sorted(CASES))
def run(request, tmp_path_factory) -> tuple[list[str], Path]:
    bands = CASES[request.param]
    workdir = tmp_path_factory.mktemp(request.param)
    config = tiny_config(steps=10, val_every=5)
    config["regions"] = {"site": folder_data(workdir / "data", bands)}
    config["evaluation"] = {"date_fraction": 1.0}  # gaps on every test date
    write_config(workdir, config)
    snakemake(workdir, "-c", "2")
    return bands, workdir


def test_band_names_travel_through_the_chain(run) -> None:
    bands, workdir = run
    results = workdir / "results"
    assert list(packed_bands(results / "hdf5/site.h5")) == bands
    blob = torch.load(results / "models/site/model.pt", map_location="cpu", weights_only=True)
    assert list(blob["bands"]) == bands
    predicted = sorted((results / "predictions/site/site/tiles").glob("*/????-??-??.tif"))
    assert predicted
    with rasterio.open(predicted[0]) as src:
        assert src.count == len(bands) and list(src.descriptions) == bands
    mosaics = sorted((results / "mosaics/site/site").glob("????-??-??.tif"))
    assert [m.stem for m in mosaics] == DATES
    with rasterio.open(mosaics[0]) as src:
        assert src.count == len(bands) and list(src.descriptions) == bands
    assert (results / "mosaics/site/site_quicklook.png").stat().st_size > 0


def test_metrics_have_one_column_per_band(run) -> None:
    bands, workdir = run
    metrics = pd.read_csv(workdir / "results/metrics/site.csv")
    band_cols = [c for c in metrics.columns if c.startswith("mae_masked_") and c[11:] in bands]
    assert band_cols == [f"mae_masked_{b}" for b in bands]
    assert not any(c in metrics.columns for c in ("mae_masked_B01", "mae_masked_B8A"))
    model = metrics[(metrics["method"] == "model") & (metrics["n_masked"] > 0)]
    assert len(model) > 0
    for col in ["mae_masked", *band_cols]:
        assert np.isfinite(model[col]).all()
    assert (workdir / "results/metrics/site_examples.png").stat().st_size > 0

"""End to end: inference products and region mosaics from the real `snakemake` command."""

from __future__ import annotations

import itertools
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import rasterio
import yaml

from ..mosaic.cog_layout import read_layout
from ..workflow_run import planned_jobs, snakemake, tiny_config, write_config

pytestmark = pytest.mark.e2e
SIDE = ("count", "source", "date", "quality")


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    workdir = tmp_path_factory.mktemp("mosaics")
    config = tiny_config(steps=10)
    config["infer"] = {
        "window": 16, "overlap": 8,
        "embeddings": {"enabled": True, "channels": [0, 1, 2]},
        "change": {"enabled": True},
    }  # fmt: skip
    config["mosaic"] = {"rule": "best_quality", "compress": "zstd"}
    write_config(workdir, config)
    snakemake(workdir, "-c", "2", "results/mosaics/africa/africa")
    return workdir


def _info(path: Path) -> str:
    """gdalinfo's report, or rasterio's `rio info` where the GDAL tools are not installed."""
    gdalinfo = shutil.which("gdalinfo")
    rio = [sys.executable, "-c", "from rasterio.rio.main import main_group; main_group()"]
    cmd = [gdalinfo, str(path)] if gdalinfo else [*rio, "info", str(path)]
    return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout


def test_every_date_and_product_has_a_mosaic_with_side_layers(run: Path) -> None:
    manifest = pd.read_csv(run / "results/tiles/africa.csv", dtype={"date": str})
    dates = sorted(manifest["date"].unique())
    folder = run / "results/mosaics/africa/africa"
    pairs = [f"{a}_{b}_change" for a, b in itertools.pairwise(dates)]
    stems = [*dates, *(f"{d}_embedding" for d in dates), *pairs, "composite"]
    grids = set()
    for stem in stems:
        for name in (stem, *(f"{stem}_{s}" for s in SIDE)):
            path = folder / f"{name}.tif"
            with rasterio.open(path) as src:
                assert src.tags(ns="IMAGE_STRUCTURE")["LAYOUT"] == "COG"
                assert src.crs.to_epsg() == 32737
                grids.add((src.transform, src.width, src.height))
            info = _info(path)
            assert "32737" in info or "UTM zone 37S" in info
            assert read_layout(path).errors() == []
    assert len(grids) == 1  # one grid for every mosaic of the region
    assert (run / "results/mosaics/africa/africa_quicklook.png").stat().st_size > 0
    log = (run / "results/logs/mosaic/africa/africa.log").read_text()
    assert re.search(r"mosaics of \S+ \(\d+ x \d+ windows\): (\d+) of \1 \(100 %\)", log)


def test_mosaic_values_and_side_layers(run: Path) -> None:
    manifest = pd.read_csv(run / "results/tiles/africa.csv", dtype={"date": str})
    date = sorted(manifest["date"].unique())[0]
    folder = run / "results/mosaics/africa/africa"
    with rasterio.open(folder / f"{date}.tif") as src:
        assert src.count == 13 and src.dtypes[0] == "uint16" and src.nodata == 0
        assert src.bounds.left == pytest.approx(manifest["left"].min())
        assert src.bounds.right == pytest.approx(manifest["right"].max())
        data = src.read()
    layers = {s: rasterio.open(folder / f"{date}_{s}.tif").read(1) for s in SIDE}
    assert layers["count"].min() >= 1 and layers["count"].max() == 2  # neighbours overlap
    assert (data > 0).all()
    assert set(np.unique(layers["source"])) == {1, 2, 3}
    assert (layers["date"] == int(date.replace("-", ""))).all()
    assert set(np.unique(layers["quality"])) <= {1, 2, 3}
    composite_dates = np.unique(rasterio.open(folder / "composite_date.tif").read(1))
    assert set(composite_dates) <= {int(d.replace("-", "")) for d in manifest["date"]}
    assert rasterio.open(folder / "composite_count.tif").read(1).max() == 2 * len(
        manifest["date"].unique()
    )


def test_format_change_reruns_only_the_mosaics_as_plain_geotiffs(run: Path) -> None:
    """`mosaic.format: gtiff` reruns the mosaic job alone; same pixels, no overviews."""
    folder = run / "results/mosaics/africa/africa"
    cogs = {p.name: rasterio.open(p).read() for p in sorted(folder.glob("*.tif"))}
    config = yaml.safe_load((run / "config.yaml").read_text())
    config["mosaic"]["format"] = "gtiff"
    write_config(run, config)
    plan = planned_jobs(snakemake(run, "-n", "results/mosaics/africa/africa"))
    assert plan == [("mosaic", {"experiment": "africa", "region": "africa"})]
    snakemake(run, "-c", "2", "results/mosaics/africa/africa")
    assert sorted(p.name for p in folder.glob("*.tif")) == sorted(cogs)
    for name, data in cogs.items():
        with rasterio.open(folder / name) as src:
            assert src.overviews(1) == [] and src.compression.name == "zstd"
            assert "LAYOUT" not in src.tags(ns="IMAGE_STRUCTURE")
            np.testing.assert_array_equal(src.read(), data)

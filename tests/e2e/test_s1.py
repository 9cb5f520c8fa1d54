"""Sentinel-1 through the real snakemake command: a synthetic region with S1, a model that
reads it, and what each stage keeps of it."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
import rasterio
import torch

from ..workflow_run import snakemake, tiny_config, write_config

pytestmark = pytest.mark.e2e


def test_a_model_with_s1_runs_through_the_chain(tmp_path: Path) -> None:
    config = tiny_config(steps=10)
    del config["regions"]["europa"]
    config["regions"]["africa"]["synthetic"].update(s1=True, s1_outages=0.3)
    config["experiments"] = {"radar": {"regions": ["africa"], "train": {"inputs": {"s1": True}}}}
    write_config(tmp_path, config)
    snakemake(tmp_path, "-c2", "results/metrics/africa.csv")

    manifest = pd.read_csv(tmp_path / "results/tiles/africa.csv", dtype=str, keep_default_na=False)
    assert manifest["s1"].astype(bool).any()
    row = manifest[manifest["s1"].astype(bool)].iloc[0]
    with rasterio.open(tmp_path / row["s1"]) as src:
        assert list(src.descriptions) == ["VV", "VH"] and abs(int(src.tags()["S1_DAYS"])) <= 6
        db = src.read()
    assert np.isfinite(db).all() and -40 < db.mean() < 5  # backscatter in dB
    with h5py.File(tmp_path / "results/hdf5/africa.h5") as h5:
        tile = h5["tiles"][row["tile"]]
        s1 = tile["s1"][()]
        dates = [d.decode() if isinstance(d, bytes) else str(d) for d in tile["dates"][()]]
    missing = manifest[(manifest["tile"] == row["tile"]) & ~manifest["s1"].astype(bool)]
    for day in missing["date"]:  # no acquisition close enough: no S1 that date
        assert np.isnan(s1[dates.index(day)]).all()
    blob = torch.load(tmp_path / "results/models/radar/model.pt", weights_only=True)
    assert blob["model"]["kwargs"]["s1_channels"] == 2 and blob["params"]["inputs"]["s1"]
    table = pd.read_csv(tmp_path / "results/metrics/africa.csv")
    assert set(table["experiment"]) == {"radar"} and table["mae_masked"].notna().any()

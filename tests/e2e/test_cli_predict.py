"""``cloudfree predict`` on a tile of the tiny run, from the GeoTIFFs and masks its manifest
lists and the run's model file, gives the infer rule's output tiles pixel for pixel."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import rasterio

from cloudfree.cli.predict import main

from ..workflow_run import REPO

pytestmark = pytest.mark.e2e

REGION = "africa"  # its model is experiment africa's


def _tile(run: Path) -> tuple[str, pd.DataFrame, Path]:
    """A tile with predictions, its manifest rows of the predicted dates, its output folder."""
    manifest = pd.read_csv(run / f"results/tiles/{REGION}.csv", dtype=str)
    tiles = run / f"results/predictions/{REGION}/{REGION}/tiles"
    name = sorted(p.name for p in tiles.iterdir() if p.is_dir())[0]
    dates = sorted(p.stem for p in (tiles / name).glob("????-??-??.tif"))
    rows = manifest[(manifest["tile"] == name) & manifest["date"].isin(dates)]
    assert len(rows) == len(dates) >= 2
    return name, rows.sort_values("date"), tiles / name


def _path(run: Path, value: str) -> str:
    return value if os.path.isabs(value) else str(run / value)


def _same_outputs(ours: Path, rule: Path, dates: list[str]) -> None:
    for date in dates:
        for name in (f"{date}.tif", f"{date}_quality.tif"):
            with rasterio.open(rule / name) as a, rasterio.open(ours / name) as b:
                assert (b.crs, b.transform, b.nodata) == (a.crs, a.transform, a.nodata), name
                assert b.descriptions == a.descriptions
                assert b.scales == a.scales
                assert b.tags()["DATE"] == a.tags()["DATE"] == date
                assert b.tags()["TILE"] == a.tags()["TILE"]
                np.testing.assert_array_equal(b.read(), a.read(), err_msg=name)


def test_predict_from_geotiffs_gives_the_infer_rules_tiles(run: Path, tmp_path: Path) -> None:
    _, rows, rule = _tile(run)
    model = run / f"results/models/{REGION}/model.pt"
    out = tmp_path / "out"
    cmd = [
        sys.executable, "-m", "cloudfree.cli.predict", str(model),
        *(_path(run, p) for p in rows["image"]), "--masks", *(_path(run, p) for p in rows["mask"]),
        "--out", str(out), "--device", "cpu",
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr
    dates = list(rows["date"])
    written = sorted(p.name for p in out.glob("*.tif"))
    assert written == sorted([f"{d}.tif" for d in dates] + [f"{d}_quality.tif" for d in dates])
    _same_outputs(out, rule, dates)  # the folder is the tile's name: its TILE tag too


def test_predict_from_the_manifest(
    run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    name, rows, rule = _tile(run)
    monkeypatch.chdir(run)  # the manifest's paths are relative to the run's directory
    args = [
        f"results/models/{REGION}/model.pt", "--manifest", f"results/tiles/{REGION}.csv",
        "--tile", name, "--out", str(tmp_path), "--device", "cpu",
    ]  # fmt: skip
    code = main(args)
    assert code == 0
    _same_outputs(tmp_path / name, rule, list(rows["date"]))

"""End to end: ``cloudfree score`` on one test tile and date of the tiny run gives the metrics
rule's row for that tile, date and model.

The rule scores the model's output with the evaluation gaps hidden (``eval.h5`` beside the
run's predictions), against the packed truth, on the tile's clear pixels; the command gets
the same three things as GeoTIFFs: that output, the gap of the date (the packed file's
``gap``) and the packed truth with its cloud mask."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest

from cloudfree.io import geotiff_profile, write_raster
from cloudfree.metrics.region import TEXT_COLUMNS, score_model
from cloudfree.packed import TileSeries, open_packed, packed_bands, read_tile

from ..workflow_run import REPO

pytestmark = pytest.mark.e2e
REGION = "africa"
# The command line as the console script runs it (cloudfree.cli.main).
COMMAND = [sys.executable, "-c", "import sys; from cloudfree.cli import main; sys.exit(main())"]


def scored_row(run: Path) -> pd.Series:
    """The metrics rule's first model row of the region with masked pixels."""
    table = pd.read_csv(run / f"results/metrics/{REGION}.csv",
                        dtype=dict.fromkeys(TEXT_COLUMNS, str))  # fmt: skip
    rows = table[(table["method"] == "model") & (table["n_masked"] > 0)]
    rows = rows[rows["evaluation"] == "transductive"]
    assert len(rows) > 0
    return rows.iloc[0]


def write_date(tile: TileSeries, t: int, pred: np.ndarray, bands: tuple[str, ...], out: Path):
    """The prediction, gap, truth and cloud mask of date ``t`` of ``tile`` as GeoTIFFs."""
    h, w = tile.mask.shape[1:]

    def profile(dtype: str, nodata: float | None) -> dict:
        return geotiff_profile(crs=tile.crs, transform=tile.transform, width=w, height=h,
                               count=1, dtype=dtype, nodata=nodata)  # fmt: skip

    assert tile.gap is not None and tile.gap[t].any()
    return (
        write_raster(out / "pred.tif", pred, profile("float32", None), band_names=bands),
        write_raster(out / "gap.tif", tile.gap[t].astype(np.uint8), profile("uint8", None)),
        write_raster(out / "truth.tif", tile.s2[t], profile("uint16", tile.nodata),
                     band_names=bands),
        write_raster(out / "clouds.tif", tile.mask[t], profile("uint8", 255)),
    )  # fmt: skip


def test_score_gives_the_metrics_rules_row(run: Path, tmp_path: Path) -> None:
    row = scored_row(run)
    packed = run / f"results/hdf5/{REGION}.h5"
    evaluation = run / f"results/predictions/{row['run']}/{REGION}/eval.h5"
    with open_packed(packed) as h5:
        tile = read_tile(h5, row["tile"])
    t = tile.dates.index(row["date"])
    with h5py.File(evaluation, "r") as ev:
        pred = ev[f"tiles/{row['tile']}/pred"][t]
    bands = packed_bands(packed)
    pred_tif, gap_tif, truth_tif, clouds_tif = write_date(tile, t, pred, bands, tmp_path)
    out = tmp_path / "score.csv"
    proc = subprocess.run(
        [*COMMAND, "score", str(pred_tif), str(gap_tif), str(truth_tif),
         "--clouds", str(clouds_tif), "--out", str(out)],
        capture_output=True, text=True, cwd=REPO, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    got = pd.read_csv(out).iloc[0]
    columns = [c for c in got.index if c in row.index]
    assert len(columns) == 3 * 6 + len(bands) + 1  # every score, per band, cloud_fraction
    assert got["n_masked"] == row["n_masked"] and got["n_observed"] == row["n_observed"]
    # The rule's table is written with 6 significant digits (%.6g): equal to that rounding.
    np.testing.assert_allclose(
        got[columns].to_numpy(float), row[columns].to_numpy(float), rtol=5e-6, atol=0
    )
    # Before rounding, the rule's own numbers (its function on the run's files) are the same
    # to the last bit: the same code on the same float32 arrays (the CSV written by the
    # command keeps every digit).
    exact = score_model(packed, evaluation, experiment=row["experiment"], holdout=None).dates
    exact = exact[(exact["tile"] == row["tile"]) & (exact["date"] == row["date"])].iloc[0]
    np.testing.assert_array_equal(got[columns].to_numpy(float), exact[columns].to_numpy(float))


def test_the_delivered_product_keeps_every_clear_pixel(run: Path, tmp_path: Path) -> None:
    """The run's product GeoTIFF (uint16, scale tags) keeps the observed clear pixels: scored
    against the truth, every clear pixel is exact, whatever the mask hides."""
    row = scored_row(run)
    packed = run / f"results/hdf5/{REGION}.h5"
    with open_packed(packed) as h5:
        tile = read_tile(h5, row["tile"])
    t = tile.dates.index(row["date"])
    product = run / f"results/predictions/{row['run']}/{REGION}/tiles/{row['tile']}"
    product = product / f"{row['date']}.tif"
    dummy = np.zeros_like(tile.s2[t], dtype=np.float32)
    _, gap_tif, truth_tif, clouds_tif = write_date(tile, t, dummy, packed_bands(packed), tmp_path)
    proc = subprocess.run(
        [*COMMAND, "score", str(product), str(gap_tif), str(truth_tif), "--clouds",
         str(clouds_tif), "--format", "json"],
        capture_output=True, text=True, cwd=REPO, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout)
    assert got["n_masked"] == row["n_masked"] and got["n_all"] == row["n_all"]
    assert got["mae_masked"] == 0 and got["mae_observed"] == 0 and got["mae_all"] == 0

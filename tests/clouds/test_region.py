"""Tests of cloudfree.clouds.region: the statistics tables of a region from its masks."""

import logging

import numpy as np
import pandas as pd
import pytest
from rasterio.transform import from_origin

from cloudfree.clouds.figures import (
    clear_dates_distribution,
    coverage_heatmap,
    run_length_histogram,
)
from cloudfree.clouds.region import cloud_statistics, region_statistics
from cloudfree.clouds.selection import read_selection
from cloudfree.config import section
from cloudfree.io import geotiff_profile, read_raster, write_raster
from cloudfree.manifest import write_manifest

from ..series import write_series
from .test_stats import HAND_RUNS, HAND_SERIES

SELECTION = section("clouds")["selection"]


def _write_hand_tile(root, series, dates, *, tile="h"):
    """One tile whose (T, 1, W) masks are ``series`` repeated down 5 rows."""
    _, _, w = series.shape
    rows = []
    prof = geotiff_profile(
        crs="EPSG:32632", transform=from_origin(600000.0, 5000000.0, 10.0, 10.0),
        width=w, height=5, count=1, dtype="uint8", nodata=255,
    )  # fmt: skip
    for k, date in enumerate(dates):
        mask = np.repeat(series[k], 5, axis=0)
        path = write_raster(root / tile / f"{date}_CLD.tif", mask, prof)
        rows.append(
            {
                "region": "hand", "source": "synthetic", "tile": tile, "date": date,
                "split": "train", "image": str(path), "mask": str(path), "crs": "EPSG:32632",
                "left": 600000.0, "bottom": 4999950.0, "right": 600000.0 + 10 * w,
                "top": 5000000.0, "width": w, "height": 5,
            }
        )  # fmt: skip
    return pd.DataFrame(rows)


def test_region_run_lengths_on_hand_made_series_through_chunks(tmp_path):
    dates = [f"2021-01-{d:02d}" for d in (1, 6, 11, 16, 21, 26, 31)] + ["2021-02-05"]
    manifest = _write_hand_tile(tmp_path, HAND_SERIES, dates)
    # chunks of 2 px: the pixel series are split over several dask blocks
    stats = region_statistics(manifest, SELECTION, chunk=2)
    # 5 rows of the same three pixel series
    assert stats.runs["count"].tolist() == [5 * c for c in HAND_RUNS[1:]]
    # pixel 2 is always cloudy, so no date is clear (cloud >= 33 %) -> one 8-date tile run
    assert stats.runs["date_runs"].tolist() == [0, 0, 0, 0, 0, 0, 0, 1]
    tile = stats.tiles.iloc[0]
    assert tile["n_clear"] == 0 and tile["longest_cloudy_run"] == 8
    assert tile["longest_gap_days"] == 35  # first to last date


def test_region_statistics_from_files(tmp_path):
    manifest = write_series(
        tmp_path / "tiles", {"a": "train", "b": "test"}, ["2021-01-05", "2021-02-04"]
    )
    path = write_manifest(manifest, tmp_path / "m.csv")
    names = ("coverage", "runs", "tiles", "summary", "dates")
    outputs = {k: tmp_path / f"{k}.csv" for k in names}
    stats = cloud_statistics(path, outputs, SELECTION)
    table, runs = stats.coverage, stats.runs
    assert len(table) == 4
    # the hand-made masks: an 8x8 cloud square, its first row under the shadow row, 16x16 px
    assert table["cloud_fraction"].iloc[0] == pytest.approx(56 / 256)
    assert table["shadow_fraction"].iloc[0] == pytest.approx(16 / 256)
    assert all(p.exists() for p in outputs.values())
    # every cloudy pixel-date belongs to exactly one run
    cloudy_pixel_dates = ((table["cloud_fraction"] + table["shadow_fraction"]) * 256).sum()
    assert (runs["run_length"] * runs["count"]).sum() == pytest.approx(cloudy_pixel_dates)
    # 28 % cover (cloud + shadow) is impaired under the U-TILISE mask-only rule
    selection = read_selection(outputs["dates"])
    assert list(selection.columns[:7]) == [
        "tile", "date", "cloud", "shadow", "valid", "clear_fraction", "class",
    ]  # fmt: skip
    assert set(selection["class"]) == {"impaired"}
    assert stats.summary["n_tiles"].iloc[0] == 2
    for fn, arg, name in (
        (coverage_heatmap, stats.coverage, "cov.png"),
        (run_length_histogram, stats.runs, "runs.png"),
        (clear_dates_distribution, stats.tiles, "clear.png"),
    ):
        fn(arg, tmp_path / name)
        assert (tmp_path / name).stat().st_size > 1000


def test_probability_maps_enter_the_statistics(tmp_path):
    manifest = write_series(tmp_path / "tiles", {"a": "train"}, ["2021-01-05", "2021-02-04"])
    probs = []
    for row in manifest.itertuples():
        prob = np.zeros((16, 16), dtype=np.float32)
        prob[:4] = 0.5  # 25 % of the pixels above 1 %
        _, prof = read_raster(row.mask)
        probs.append(
            str(write_raster(tmp_path / f"{row.date}_p.tif", prob, {**prof, "nodata": None}))
        )
    manifest["probability"] = probs
    stats = region_statistics(manifest, SELECTION)
    assert stats.coverage["prob_fraction"].tolist() == pytest.approx([0.25, 0.25])


def test_region_statistics_logs_progress_over_the_tiles(tmp_path, caplog):
    dates = [f"2021-01-{d:02d}" for d in (1, 6, 11, 16, 21, 26, 31)] + ["2021-02-05"]
    manifest = pd.concat(
        [_write_hand_tile(tmp_path, HAND_SERIES, dates, tile=t) for t in ("a", "b", "c")]
    )
    with caplog.at_level(logging.INFO, logger="cloudfree.clouds.region"):
        stats = region_statistics(manifest, SELECTION, every=0)
    assert len(stats.tiles) == 3
    lines = [r.getMessage() for r in caplog.records]
    assert [line.split(" (")[0] for line in lines] == [
        f"cloud statistics of hand: tiles: {i} of 3" for i in (1, 2, 3)
    ]
    assert all("elapsed, ETA" in line for line in lines[:2]) and "ETA" not in lines[2]

import numpy as np
import pandas as pd
import pytest
from rasterio.transform import from_origin

from cloudfree.bands import CLEAR, CLOUD, MASK_NODATA, SHADOW, THIN_CLOUD
from cloudfree.clouds.figures import (
    clear_dates_distribution,
    coverage_heatmap,
    run_length_histogram,
)
from cloudfree.clouds.region import (
    cloud_statistics,
    cloudy_run_lengths,
    coverage,
    region_statistics,
)
from cloudfree.clouds.selection import read_selection
from cloudfree.clouds.stats import longest_cloudy_run, longest_gap_days
from cloudfree.io import geotiff_profile, read_raster, write_raster
from cloudfree.manifest import write_manifest

from .series import write_series


def test_coverage_fractions_over_valid_pixels():
    mask = np.array([[CLEAR, CLOUD, THIN_CLOUD, SHADOW], [CLEAR, CLEAR, MASK_NODATA, MASK_NODATA]])
    cov = coverage(mask)
    assert cov["valid_fraction"] == pytest.approx(6 / 8)
    assert cov["cloud_fraction"] == pytest.approx(2 / 6)
    assert cov["thick_cloud_fraction"] == pytest.approx(1 / 6)
    assert cov["thin_cloud_fraction"] == pytest.approx(1 / 6)
    assert cov["shadow_fraction"] == pytest.approx(1 / 6)
    assert cov["clear_fraction"] == pytest.approx(3 / 6)


def test_coverage_of_all_nodata_is_nan():
    cov = coverage(np.full((3, 3), MASK_NODATA, dtype=np.uint8))
    assert cov["valid_fraction"] == 0
    assert np.isnan(cov["cloud_fraction"])


# pixel 0: C . C C . C C C   -> runs 1, 2, 3 ; pixel 1: all clear ; pixel 2: all cloudy -> 8
HAND_SERIES = np.array(
    [[1, 0, 1], [0, 0, 1], [1, 0, 3], [2, 0, 1], [0, 0, 1], [1, 0, 1], [3, 0, 1], [1, 0, 1]],
    dtype=np.uint8,
).reshape(8, 1, 3)
HAND_RUNS = [0, 1, 1, 1, 0, 0, 0, 0, 1]


def test_run_lengths_by_hand():
    assert cloudy_run_lengths(HAND_SERIES).tolist() == HAND_RUNS


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
    stats = region_statistics(manifest, chunk=2)
    # 5 rows of the same three pixel series
    assert stats.runs["count"].tolist() == [5 * c for c in HAND_RUNS[1:]]
    # pixel 2 is always cloudy, so no date is clear (cloud >= 33 %) -> one 8-date tile run
    assert stats.runs["date_runs"].tolist() == [0, 0, 0, 0, 0, 0, 0, 1]
    tile = stats.tiles.iloc[0]
    assert tile["n_clear"] == 0 and tile["longest_cloudy_run"] == 8
    assert tile["longest_gap_days"] == 35  # first to last date


def test_longest_gap_and_cloudy_run():
    dates = ["2021-01-01", "2021-01-11", "2021-01-21", "2021-02-10", "2021-03-02"]
    clear = [True, False, False, True, False]
    # clear on day 0 and day 40; last date day 60 -> gaps 40, 20
    assert longest_gap_days(dates, clear) == 40
    assert longest_cloudy_run(clear) == 2
    assert longest_gap_days(dates, [False] * 5) == 60


def test_region_statistics_from_files(tmp_path):
    manifest = write_series(
        tmp_path / "tiles", {"a": "train", "b": "test"}, ["2021-01-05", "2021-02-04"]
    )
    path = write_manifest(manifest, tmp_path / "m.csv")
    names = ("coverage", "runs", "tiles", "summary", "dates")
    outputs = {k: tmp_path / f"{k}.csv" for k in names}
    stats = cloud_statistics(path, outputs)
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
    stats = region_statistics(manifest)
    assert stats.coverage["prob_fraction"].tolist() == pytest.approx([0.25, 0.25])

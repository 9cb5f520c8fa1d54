import numpy as np
import pytest

from cloudfree.bands import CLEAR, CLOUD, MASK_NODATA, SHADOW, THIN_CLOUD
from cloudfree.clouds import cloud_statistics, cloudy_run_lengths, coverage
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


def test_run_lengths_by_hand():
    # pixel 0: C . C C . C C C   -> runs 1, 2, 3 ; pixel 1: all clear ; pixel 2: all cloudy -> 8
    series = np.array(
        [[1, 0, 1], [0, 0, 1], [1, 0, 3], [2, 0, 1], [0, 0, 1], [1, 0, 1], [3, 0, 1], [1, 0, 1]],
        dtype=np.uint8,
    ).reshape(8, 1, 3)
    counts = cloudy_run_lengths(series)
    assert counts.tolist() == [0, 1, 1, 1, 0, 0, 0, 0, 1]


def test_region_statistics_from_files(tmp_path):
    manifest = write_series(
        tmp_path / "tiles", {"a": "train", "b": "test"}, ["2021-01-05", "2021-02-04"]
    )
    path = write_manifest(manifest, tmp_path / "m.csv")
    table, runs = cloud_statistics(path, tmp_path / "cov.csv", tmp_path / "runs.csv")
    assert len(table) == 4
    # the hand-made masks: an 8x8 cloud square, its first row under the shadow row, 16x16 px
    assert table["cloud_fraction"].iloc[0] == pytest.approx(56 / 256)
    assert table["shadow_fraction"].iloc[0] == pytest.approx(16 / 256)
    assert (tmp_path / "cov.csv").exists() and (tmp_path / "runs.csv").exists()
    # every cloudy pixel-date belongs to exactly one run
    cloudy_pixel_dates = ((table["cloud_fraction"] + table["shadow_fraction"]) * 256).sum()
    assert (runs["run_length"] * runs["count"]).sum() == pytest.approx(cloudy_pixel_dates)

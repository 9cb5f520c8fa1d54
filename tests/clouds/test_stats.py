"""Tests of cloudfree.clouds.stats: per-date fractions, cloudy runs, gaps between clear dates."""

import dask.array as da
import numpy as np
import pandas as pd
import pytest
import xarray as xr

from cloudfree.bands import CLEAR, CLOUD, MASK_NODATA, SHADOW, THIN_CLOUD
from cloudfree.clouds.stats import (
    COUNTS,
    add_hist,
    block_statistics,
    longest_cloudy_run,
    longest_gap_days,
    run_length_histogram,
    tile_statistics,
)

# pixel 0: C . C C . C C C   -> runs 1, 2, 3 ; pixel 1: all clear ; pixel 2: all cloudy -> 8
HAND_SERIES = np.array(
    [[1, 0, 1], [0, 0, 1], [1, 0, 3], [2, 0, 1], [0, 0, 1], [1, 0, 1], [3, 0, 1], [1, 0, 1]],
    dtype=np.uint8,
).reshape(8, 1, 3)
HAND_RUNS = [0, 1, 1, 1, 0, 0, 0, 0, 1]


def _dataset(masks: np.ndarray, probs: np.ndarray | None = None, chunk: int = 2) -> xr.Dataset:
    """A tile's (T, H, W) masks as the lazy Dataset of :func:`tile_dataset`, from memory."""
    dates = pd.date_range("2021-01-01", periods=masks.shape[0], freq="5D").to_numpy()
    blocks = (masks.shape[0], chunk, chunk)
    data = {"mask": (("date", "y", "x"), da.from_array(masks, chunks=blocks))}
    if probs is not None:
        data["probability"] = (("date", "y", "x"), da.from_array(probs, chunks=blocks))
    return xr.Dataset(data, coords={"date": dates})


def test_coverage_fractions_over_valid_pixels():
    mask = np.array([[CLEAR, CLOUD, THIN_CLOUD, SHADOW], [CLEAR, CLEAR, MASK_NODATA, MASK_NODATA]])
    table, _ = tile_statistics(_dataset(mask[None].astype(np.uint8)), 0.01)
    cov = table.iloc[0]
    assert cov["date"] == "2021-01-01"
    assert cov["valid_fraction"] == pytest.approx(6 / 8)
    assert cov["cloud_fraction"] == pytest.approx(2 / 6)
    assert cov["thick_cloud_fraction"] == pytest.approx(1 / 6)
    assert cov["thin_cloud_fraction"] == pytest.approx(1 / 6)
    assert cov["shadow_fraction"] == pytest.approx(1 / 6)
    assert cov["clear_fraction"] == pytest.approx(3 / 6)
    assert np.isnan(cov["prob_fraction"])  # no probability map


def test_coverage_of_all_nodata_is_nan():
    table, _ = tile_statistics(_dataset(np.full((1, 3, 3), MASK_NODATA, dtype=np.uint8)), 0.01)
    assert table["valid_fraction"].iloc[0] == 0
    assert np.isnan(table["cloud_fraction"].iloc[0])


def test_probability_share_counts_valid_pixels_above_the_threshold():
    mask = np.zeros((2, 2, 2), np.uint8)
    mask[1, 0, 0] = MASK_NODATA
    probs = np.array([[[0.5, 0.0], [0.02, 0.01]], [[0.9, 0.9], [0.0, 0.0]]], np.float32)
    table, _ = tile_statistics(_dataset(mask, probs), 0.01)
    # date 0: 0.5 and 0.02 exceed 1 % (0.01 does not) of 4; date 1: 0.9 of the 3 valid
    assert table["prob_fraction"].tolist() == pytest.approx([2 / 4, 1 / 3])


def test_block_counts_by_hand():
    counts, hist = block_statistics(HAND_SERIES, None, 0.01)
    assert counts.shape == (8, len(COUNTS))
    assert counts[:, COUNTS.index("valid")].tolist() == [3] * 8
    assert counts[:, COUNTS.index("clear")].tolist() == [1, 2, 1, 1, 2, 1, 1, 1]
    assert counts[:, COUNTS.index("shadow")].tolist() == [0, 0, 1, 0, 0, 0, 1, 0]
    assert counts[:, COUNTS.index("thin_cloud")].tolist() == [0, 0, 0, 1, 0, 0, 0, 0]
    assert (
        counts[:, COUNTS.index("cloud")].tolist()
        == (counts[:, COUNTS.index("thick_cloud")] + counts[:, COUNTS.index("thin_cloud")]).tolist()
    )
    assert hist.tolist() == HAND_RUNS


def test_run_lengths_by_hand():
    assert run_length_histogram(HAND_SERIES != CLEAR, 8).tolist() == HAND_RUNS
    # the whole tile through blocks of 2 pixels: the same histogram
    _, hist = tile_statistics(_dataset(HAND_SERIES, chunk=2), 0.01)
    assert hist.tolist() == HAND_RUNS


def test_add_hist_pads_the_shorter():
    assert add_hist(None, np.array([0, 2])).tolist() == [0, 2]
    assert add_hist(np.array([0, 1, 1]), np.array([0, 2])).tolist() == [0, 3, 1]


def test_longest_gap_and_cloudy_run():
    dates = ["2021-01-01", "2021-01-11", "2021-01-21", "2021-02-10", "2021-03-02"]
    clear = [True, False, False, True, False]
    # clear on day 0 and day 40; last date day 60 -> gaps 40, 20
    assert longest_gap_days(dates, clear) == 40
    assert longest_cloudy_run(clear) == 2
    assert longest_gap_days(dates, [False] * 5) == 60
    assert np.isnan(longest_gap_days([], []))

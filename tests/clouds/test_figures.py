"""Figures of the cloud statistics: each writes a readable PNG, also for a cloudless or
dateless region, and shows the table it is given."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cloudfree.clouds import figures
from cloudfree.clouds.figures import (
    clear_dates_distribution,
    coverage_heatmap,
    run_length_histogram,
)

from ..test_plotting import assert_labelled, assert_png, capture, texts


@pytest.fixture
def saved(monkeypatch: pytest.MonkeyPatch):
    return capture(monkeypatch, figures)


def _coverage(with_class: bool) -> pd.DataFrame:
    rows = [(t, d) for t in ("t0", "t1", "t2") for d in ("2021-01-01", "2021-01-11")]
    table = pd.DataFrame(rows, columns=["tile", "date"])
    table.insert(0, "region", "europa")
    table["cloud_fraction"] = [0.0, 0.2, 0.9, 0.5, 1.0, 0.05]
    if with_class:
        table["class"] = ["clear", "impaired", "unusable", "impaired", "unusable", "clear"]
    return table


@pytest.mark.parametrize("with_class", [True, False])
def test_coverage_heatmap(tmp_path: Path, with_class: bool, saved) -> None:
    coverage_heatmap(_coverage(with_class), tmp_path / "cov.png")
    assert_png(tmp_path / "cov.png")
    ax = saved[0].axes[0]
    grid = ax.get_images()[0].get_array()
    np.testing.assert_allclose(grid, [[0.0, 0.2], [0.9, 0.5], [1.0, 0.05]])  # tiles x dates
    assert [t.get_text() for t in ax.get_yticklabels()] == ["t0", "t1", "t2"]
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("acquisition date", "tile")
    assert saved[0].axes[1].get_ylabel() == "cloud fraction (share of the tile's pixels)"
    assert_labelled(saved[0])
    if with_class:
        assert ax.get_title() == "Cloud cover, europa\n(o clear, x unusable)"
        clear, unusable = (c.get_offsets().tolist() for c in ax.collections)
        assert clear == [[0, 0], [1, 2]] and unusable == [[0, 1], [0, 2]]  # (date, tile)
    else:
        assert ax.get_title() == "Cloud cover, europa" and not ax.collections


def test_run_length_histogram(tmp_path: Path, saved) -> None:
    runs = pd.DataFrame(
        {"region": "europa", "run_length": [1, 2, 3], "count": [40, 12, 0], "date_runs": 0}
    )
    run_length_histogram(runs, tmp_path / "runs.png")
    assert_png(tmp_path / "runs.png")
    run_length_histogram(runs.drop(columns="region"), tmp_path / "named.png", "africa")
    run_length_histogram(runs.drop(columns="region"), tmp_path / "bare.png")
    per_pixel, per_tile = saved[0].axes
    assert [p.get_height() for p in per_pixel.patches] == [40, 12, 0]
    assert [t.get_text() for t in per_tile.texts] == ["no cloudy runs"]
    assert [fig.get_suptitle() for fig in saved] == [
        "Cloudy run lengths, europa",
        "Cloudy run lengths, africa",
        "Cloudy run lengths",
    ]
    assert per_pixel.get_xlabel() == "run length (consecutive cloudy dates)"
    assert per_pixel.get_ylabel() == "number of runs (pixel runs)"
    for fig in saved:
        assert_labelled(fig)


def test_clear_dates_distribution(tmp_path: Path, saved) -> None:
    tiles = pd.DataFrame(
        {
            "region": "europa",
            "tile": ["t0", "t1", "t2", "t3"],
            "n_dates": 5,
            "n_clear": [0, 2, 2, 5],
            "longest_gap_days": [np.nan, 30.0, 40.0, 10.0],
        }
    )
    clear_dates_distribution(tiles, tmp_path / "clear.png")
    assert_png(tmp_path / "clear.png")
    counts, gaps = saved[0].axes
    assert [p.get_height() for p in counts.patches] == [1, 0, 2, 0, 0, 1]  # 0..5 clear dates
    assert sum(p.get_height() for p in gaps.patches) == 3  # the tile without a date left out
    assert saved[0].get_suptitle() == "Clear dates, europa"
    assert counts.get_xlabel() == "clear dates per tile (dates)"
    assert gaps.get_xlabel() == "longest gap without a clear date (days)"
    assert [ax.get_title() for ax in saved[0].axes] == [
        "tiles by number of clear dates",
        "tiles by longest gap between clear dates",
    ]
    assert_labelled(saved[0])


def test_clear_dates_distribution_without_dates(tmp_path: Path, saved) -> None:
    tiles = pd.DataFrame({"n_dates": [0], "n_clear": [0], "longest_gap_days": [np.nan]})
    clear_dates_distribution(tiles, tmp_path / "none.png")
    assert_png(tmp_path / "none.png", min_side=50)
    assert texts(saved[0]) == ["Clear dates", "tiles by number of clear dates", "no dates"]
    assert_labelled(saved[0])

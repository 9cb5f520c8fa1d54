"""The temporal composite: best available pixel of a period, and its scores."""

from __future__ import annotations

from pathlib import Path

import pytest
import rasterio

from cloudfree.errors import ConfigError
from cloudfree.mosaic.composite import composite_scores
from cloudfree.mosaic.region import mosaic_region

from .inputs import X0, region_settings, write_tile


def test_composite_takes_best_available_pixel(tmp_path: Path) -> None:
    root = tmp_path / "tiles"
    write_tile(root, "A", X0, 100)  # 2021-05-01, all observed
    write_tile(root, "A", X0, 300, date="2021-05-11", quality_cols=slice(0, 8))  # half cloudy
    write_tile(root, "A", X0, 900, date="2021-06-30")  # outside the period
    period = {"start": "2021-05-01", "end": "2021-05-20", "target": "2021-05-11"}
    mosaic_region(
        root, tmp_path / "m", **region_settings(rule="mean", resampling="nearest", composite=period)
    )
    # Scores: 05-01 0.5 * 1 + 0.5 * 0 = 0.5; 05-11 0.5 * 0.5 + 0.5 * 1 = 0.75; observed + 2.
    with rasterio.open(tmp_path / "m" / "composite.tif") as m:
        value = m.read(1)
        assert m.tags()["PERIOD_START"] == "2021-05-01" and m.tags()["TARGET_DATE"] == "2021-05-11"
        assert m.tags()["MOSAIC_RULE"] == "best_quality" and m.tags()["PRODUCT"] == "composite"
    date = rasterio.open(tmp_path / "m" / "composite_date.tif").read(1)
    count = rasterio.open(tmp_path / "m" / "composite_count.tif").read(1)
    quality = rasterio.open(tmp_path / "m" / "composite_quality.tif").read(1)
    assert (value[:, 8:] == 300).all() and (date[:, 8:] == 20210511).all()
    assert (value[:, :8] == 100).all() and (date[:, :8] == 20210501).all()
    assert (count == 2).all()
    assert (quality[:, :8] == 2).all() and (quality[:, 8:] == 1).all()


def test_composite_scores_and_bad_period() -> None:
    none = {"start": None, "end": None, "target": None}
    scores, tags = composite_scores(
        ["2021-01-01", "2021-01-11"], {("A", "2021-01-01"): 1.0, ("A", "2021-01-11"): 0.0}, **none
    )
    assert tags["TARGET_DATE"] == "2021-01-06"
    assert scores == {("A", "2021-01-01"): 0.5, ("A", "2021-01-11"): 0.0}
    assert composite_scores([], {}, **none) == ({}, {})
    with pytest.raises(ConfigError, match=r"mosaic\.composite\.start: 'January'"):
        composite_scores(["2021-01-01"], {}, **{**none, "start": "January"})
    with pytest.raises(ConfigError, match="after end"):
        composite_scores(["2021-01-01"], {}, **{**none, "start": "2021-02-01", "end": "2021-01-01"})

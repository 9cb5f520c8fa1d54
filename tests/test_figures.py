"""Report figures: each function writes a readable PNG, also on awkward inputs."""

import numpy as np
import pandas as pd
import pytest
from matplotlib.image import imread

from cloudfree.baselines import as_method
from cloudfree.errors import InputDataError
from cloudfree.figures import (
    error_vs_difficulty,
    example_reconstructions,
    method_bars,
    mosaic_quicklook,
)
from cloudfree.packing import iter_tiles

from .packed import make_packed


def png_shape(path):
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    return imread(path).shape


@pytest.fixture(scope="module")
def tile(tmp_path_factory):
    packed = make_packed(tmp_path_factory.mktemp("fig") / "r.h5", n_tiles=5, size=32, dates=6)
    return next(t for t in iter_tiles(packed, split="test"))


def test_method_bars_with_and_without_intervals(tmp_path):
    summary = pd.DataFrame(
        {"method": ["model", "linear"], "mae_masked": [0.01, np.nan],
         "mae_masked_ci_low": [0.008, np.nan], "mae_masked_ci_high": [0.012, np.nan]}
    )  # fmt: skip
    method_bars(summary, tmp_path / "ci.png")
    method_bars(summary[["method", "mae_masked"]], tmp_path / "plain.png")
    assert png_shape(tmp_path / "ci.png")[0] > 100
    assert png_shape(tmp_path / "plain.png")[0] > 100


def test_error_vs_difficulty_tolerates_missing_columns(tmp_path):
    rng = np.random.default_rng(0)
    table = pd.DataFrame(
        {"method": np.repeat(["model", "linear"], 20), "mae_masked": rng.uniform(0, 0.02, 40),
         "cloud_fraction": rng.uniform(0, 1, 40), "gap_days": rng.uniform(0, 60, 40)}
    )  # fmt: skip
    error_vs_difficulty(table, tmp_path / "full.png")
    error_vs_difficulty(table.drop(columns=["gap_days"]), tmp_path / "partial.png")
    assert png_shape(tmp_path / "full.png")[1] > png_shape(tmp_path / "full.png")[0]
    assert (tmp_path / "partial.png").exists()


def test_example_reconstructions(tmp_path, tile):
    available = tile.clear & ~tile.gap
    predictions = {name: as_method(name)(tile, available) for name in ("linear", "mean")}
    example_reconstructions(tile, predictions, tmp_path / "ex.png", dates=2)
    height, width, _ = png_shape(tmp_path / "ex.png")
    assert width > height  # input, two methods and the truth side by side


def test_mosaic_quicklook_needs_mosaics(tmp_path):
    with pytest.raises(InputDataError):
        mosaic_quicklook(tmp_path, tmp_path / "q.png")

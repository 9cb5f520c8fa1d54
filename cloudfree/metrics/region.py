"""Score the model and the baselines on the test tiles' evaluation gaps of one region."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence

import h5py
import numpy as np
import pandas as pd

from cloudfree.errors import InputDataError
from cloudfree.metrics.summary import summarise
from cloudfree.metrics.table import as_method, evaluate_tiles
from cloudfree.packed import TileSeries, iter_tiles, packed_bands

# A method: (tile, input availability) -> (T, C, H, W) reflectance.
Method = Callable[[TileSeries, np.ndarray], np.ndarray]


def model_predictions(eval_path: str | os.PathLike[str]) -> Method:
    """A method callable that returns the model's stored output for a tile."""

    def predict(tile: TileSeries, available: np.ndarray) -> np.ndarray:
        with h5py.File(eval_path, "r") as ev:
            try:
                return ev[f"tiles/{tile.tile}/pred"][()]
            except KeyError:
                raise InputDataError(f"{eval_path}: no prediction for tile {tile.tile}") from None

    return predict


def _methods(eval_path: str | os.PathLike[str], baselines: Sequence[str]) -> dict[str, Method]:
    return {"model": model_predictions(eval_path)} | {name: as_method(name) for name in baselines}


def example_predictions(
    packed_path: str | os.PathLike[str],
    eval_path: str | os.PathLike[str],
    baselines: Sequence[str],
) -> tuple[TileSeries, dict[str, np.ndarray]]:
    """The first test tile (a fixed choice) and every method's prediction for it."""
    tile = next(iter_tiles(packed_path, split="test"), None)
    if tile is None or tile.gap is None:
        raise InputDataError(f"{packed_path}: no test tile with evaluation gaps")
    available = tile.clear & ~tile.gap
    methods = _methods(eval_path, baselines)
    return tile, {name: method(tile, available) for name, method in methods.items()}


def region_metrics(
    packed_path: str | os.PathLike[str],
    eval_path: str | os.PathLike[str],
    *,
    baselines: Sequence[str],
    experiment: str,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per tile, date and method metrics on the test tiles, and their per-method summary.

    The per-band columns are ``mae_masked_<band>`` for the packed file's bands.
    """
    methods = _methods(eval_path, baselines)
    with h5py.File(packed_path, "r") as h5:
        region, source = str(h5.attrs["region"]), str(h5.attrs["source"])
    bands = packed_bands(packed_path)
    table = evaluate_tiles(iter_tiles(packed_path, split="test"), methods, bands)
    if table.empty:
        raise InputDataError(f"{packed_path}: region {region} has no test tile to score")
    table.insert(0, "experiment", experiment)
    table.insert(0, "source", source)
    table.insert(0, "region", region)
    summary = summarise(table.drop(columns=["region", "source", "experiment"]))
    summary.insert(0, "region", region)
    return table, summary

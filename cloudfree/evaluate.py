"""Score the model and the baselines on the test tiles' evaluation gaps of one region."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence

import h5py
import numpy as np
import pandas as pd

from .baselines import as_method
from .errors import InputDataError
from .metrics import evaluate_tiles, summarise
from .packing import TileSeries, iter_tiles


def model_predictions(
    eval_path: str | os.PathLike[str],
) -> Callable[[TileSeries, np.ndarray], np.ndarray]:
    """A method callable that returns the model's stored output for a tile."""

    def predict(tile: TileSeries, available: np.ndarray) -> np.ndarray:
        with h5py.File(eval_path, "r") as ev:
            try:
                return ev[f"tiles/{tile.tile}/pred"][()]
            except KeyError:
                raise InputDataError(f"{eval_path}: no prediction for tile {tile.tile}") from None

    return predict


def region_metrics(
    packed_path: str | os.PathLike[str],
    eval_path: str | os.PathLike[str],
    *,
    baselines: Sequence[str],
    experiment: str,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per tile, date and method metrics on the test tiles, and their per-method summary."""
    methods = {"model": model_predictions(eval_path)}
    methods.update({name: as_method(name) for name in baselines})
    with h5py.File(packed_path, "r") as h5:
        region, source = str(h5.attrs["region"]), str(h5.attrs["source"])
    table = evaluate_tiles(iter_tiles(packed_path, split="test"), methods)
    if table.empty:
        raise InputDataError(f"{packed_path}: region {region} has no test tile to score")
    table.insert(0, "experiment", experiment)
    table.insert(0, "source", source)
    table.insert(0, "region", region)
    summary = summarise(table.drop(columns=["region", "source", "experiment"]))
    summary.insert(0, "region", region)
    return table, summary

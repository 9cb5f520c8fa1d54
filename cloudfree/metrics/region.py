"""Rule ``metrics`` of one region: the model and the baselines scored on its test tiles.

Reads the packed region (tiles, bands, region and source attributes) and the evaluation file
of inference (``tiles/<tile>/pred``); returns the per tile/date/method table and its
per-method summary (the rule's script writes them and the figures).
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import h5py
import numpy as np
import pandas as pd

from cloudfree.errors import InputDataError
from cloudfree.metrics.summary import summarise
from cloudfree.metrics.table import Method, as_method, evaluate_tiles
from cloudfree.packed import TileSeries, iter_tiles, packed_bands


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
    """The model first, then the baselines in their configured order (the summary's order)."""
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

    ``baselines`` are the names of ``metrics.baselines``.  The table has the columns
    ``region, source, experiment`` and then those of
    :func:`~cloudfree.metrics.table.evaluate_tiles` (per-band columns ``mae_masked_<band>``
    for the packed file's bands); the summary ``region`` and then those of
    :func:`~cloudfree.metrics.summary.summarise`.  Raises :class:`InputDataError` when the
    region has no test tile to score or the evaluation file has no prediction for one.
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

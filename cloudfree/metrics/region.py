"""Rule ``metrics`` of one region: the model and the baselines scored on its test tiles and
on its evaluation scene.

Reads the packed region (tiles, bands, region and source attributes), the evaluation file of
inference (``tiles/<tile>/pred``) and the same two of the region's evaluation scene; returns
the per tile/date/method table, the per tile/method table pooled over the dates and the
summary per evaluation set and method (the rule's script writes them and the figures).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import NamedTuple

import h5py
import numpy as np
import pandas as pd

from cloudfree.errors import InputDataError
from cloudfree.metrics.summary import summarise
from cloudfree.metrics.table import Labeller, Method, as_method, score_tiles
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


def evaluation_labels(source: str, holdout: Mapping[str, str] | None) -> Labeller:
    """The evaluation set of each date of a region's test tiles: ``inductive`` for the
    dates of ``evaluation.holdout_period`` (no training tile kept them) and for the
    SEN12MS-CR-TS test split (other ROIs, other dates), ``transductive`` otherwise."""

    def label(tile: TileSeries) -> np.ndarray:
        out = np.full(len(tile.dates), "inductive" if source == "sen12mscrts" else "transductive")
        if holdout:
            inside = [holdout["start"] <= d <= holdout["end"] for d in tile.dates]
            out[np.asarray(inside, dtype=bool)] = "inductive"
        return out.astype(object)

    return label


class RegionScores(NamedTuple):
    """What rule metrics writes for a region: the per-date table, the pooled per-tile table
    and the summary."""

    table: pd.DataFrame
    pooled: pd.DataFrame
    summary: pd.DataFrame


def region_metrics(
    packed_path: str | os.PathLike[str],
    eval_path: str | os.PathLike[str],
    *,
    baselines: Sequence[str],
    experiment: str,
    holdout: Mapping[str, str] | None,
    inductive: tuple[str | os.PathLike[str], str | os.PathLike[str]] | None = None,
) -> RegionScores:
    """Metrics of the test tiles of a region, and of its evaluation scene (``inductive``:
    its packed file and evaluation file) when it has one.

    ``baselines`` are the names of ``metrics.baselines``, ``holdout`` the
    ``evaluation.holdout_period``.  The tables have the columns ``region, source,
    experiment`` and then those of :func:`~cloudfree.metrics.table.score_tiles` (per-band
    columns ``mae_masked_<band>`` for the packed file's bands); the summary ``region`` and
    then those of :func:`~cloudfree.metrics.summary.summarise`.  Raises
    :class:`InputDataError` when the region has no test tile to score or an evaluation file
    has no prediction for one.
    """
    with h5py.File(packed_path, "r") as h5:
        region, source = str(h5.attrs["region"]), str(h5.attrs["source"])
    bands = packed_bands(packed_path)
    parts = [
        score_tiles(
            iter_tiles(packed_path, split="test"),
            _methods(eval_path, baselines),
            bands,
            evaluation_labels(source, holdout),
        )
    ]
    if inductive is not None:
        scene_path, scene_eval = inductive
        if packed_bands(scene_path) != bands:
            raise InputDataError(f"{scene_path}: bands differ from {packed_path}'s")
        tiles = iter_tiles(scene_path, split="test")
        parts.append(score_tiles(tiles, _methods(scene_eval, baselines), bands, "inductive"))
    table = pd.concat([p.dates for p in parts], ignore_index=True)
    pooled = pd.concat([p.pooled for p in parts], ignore_index=True)
    if table.empty:
        raise InputDataError(f"{packed_path}: region {region} has no test tile to score")
    for frame in (table, pooled):
        frame.insert(0, "experiment", experiment)
        frame.insert(0, "source", source)
        frame.insert(0, "region", region)
    summary = summarise(pooled, table)
    summary.insert(0, "region", region)
    return RegionScores(table, pooled, summary)

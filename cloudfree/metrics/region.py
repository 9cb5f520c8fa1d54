"""Rules ``score_model``, ``score_baselines`` and ``metrics`` of one region: each run's model
and the baselines scored on its test tiles and on its evaluation scene, then the region's
tables.

Reads the packed region (tiles, bands, region and source attributes), the evaluation file of
inference (``tiles/<tile>/pred``) and the same two of the region's evaluation scene.  A run's
model and the baselines are scored apart (:func:`score_model`, :func:`score_baselines`: the
baselines once per region, whatever the number of experiments) on the same tiles and pixels;
:func:`region_tables` puts them together: per run the per tile/date/method table, the per
tile/method table pooled over the dates and the summary per evaluation set and method (the
rules' scripts write them and the figures).

Tiles are read and scored one at a time (:func:`~cloudfree.metrics.table.score_tiles`), with
a progress line (test tiles done of all, ETA) at least every 30 s.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Mapping, Sequence
from typing import NamedTuple

import h5py
import numpy as np
import pandas as pd

from cloudfree.errors import InputDataError
from cloudfree.metrics.summary import summarise
from cloudfree.metrics.table import MODEL, Labeller, Method, Scores, as_method, score_tiles
from cloudfree.packed import TileSeries, iter_tiles, open_packed, packed_bands, tile_names
from cloudfree.progress import Progress

log = logging.getLogger(__name__)


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


def _score(
    packed_path: str | os.PathLike[str],
    methods: Mapping[str, Method],
    holdout: Mapping[str, str] | None,
    inductive: tuple[str | os.PathLike[str], Mapping[str, Method]] | None,
) -> Scores:
    """``methods`` on the region's test tiles and (``inductive``: the scene's packed file and
    its methods) on its evaluation scene; ``region, source`` columns first."""
    with h5py.File(packed_path, "r") as h5:
        region, source = str(h5.attrs["region"]), str(h5.attrs["source"])
    bands = packed_bands(packed_path)
    tiles, progress = _test_tiles(packed_path, methods)
    labels = evaluation_labels(source, holdout)
    parts = [score_tiles(tiles, methods, bands, labels, progress=progress)]
    if inductive is not None:
        scene_path, scene_methods = inductive
        if packed_bands(scene_path) != bands:
            raise InputDataError(f"{scene_path}: bands differ from {packed_path}'s")
        tiles, progress = _test_tiles(scene_path, scene_methods)
        parts.append(score_tiles(tiles, scene_methods, bands, "inductive", progress=progress))
    dates = pd.concat([p.dates for p in parts], ignore_index=True)
    pooled = pd.concat([p.pooled for p in parts], ignore_index=True)
    if dates.empty:
        raise InputDataError(f"{packed_path}: region {region} has no test tile to score")
    for frame in (dates, pooled):
        frame.insert(0, "source", source)
        frame.insert(0, "region", region)
    return Scores(dates, pooled)


def _test_tiles(
    path: str | os.PathLike[str], methods: Mapping[str, Method]
) -> tuple[Iterator[TileSeries], Progress]:
    """The test tiles of a packed file, one at a time, and the progress of scoring them."""
    with open_packed(path) as h5:
        total = len(tile_names(h5, split="test"))
    what = f"scoring {', '.join(methods)} on {path}: test tiles"
    return iter_tiles(path, split="test"), Progress(log, what, total)


def score_model(
    packed_path: str | os.PathLike[str],
    eval_path: str | os.PathLike[str],
    *,
    experiment: str,
    run: str | None = None,
    holdout: Mapping[str, str] | None,
    inductive: tuple[str | os.PathLike[str], str | os.PathLike[str]] | None = None,
) -> Scores:
    """One run's model (its stored output, method ``model``) scored on a region's test tiles
    and on its evaluation scene (``inductive``: its packed file and evaluation file).

    Columns ``region, source, experiment, run`` (``run`` defaults to ``experiment``) and then
    those of :func:`~cloudfree.metrics.table.score_tiles`.  Raises :class:`InputDataError`
    when the region has no test tile or the evaluation file lacks a tile's prediction."""
    scene = None
    if inductive is not None:
        scene = (inductive[0], {MODEL: model_predictions(inductive[1])})
    scores = _score(packed_path, {MODEL: model_predictions(eval_path)}, holdout, scene)
    for frame in scores:
        frame.insert(2, "experiment", experiment)
        frame.insert(3, "run", run or experiment)
    return scores


def score_baselines(
    packed_path: str | os.PathLike[str],
    *,
    baselines: Sequence[str],
    holdout: Mapping[str, str] | None,
    inductive: str | os.PathLike[str] | None = None,
) -> Scores:
    """The baselines of ``metrics.baselines`` (in that order) scored as :func:`score_model`
    scores a model, on the same tiles and pixels (``inductive``: the scene's packed file);
    columns ``region, source`` and then those of :func:`~cloudfree.metrics.table.score_tiles`."""
    methods = {name: as_method(name) for name in baselines}
    return _score(packed_path, methods, holdout, (inductive, methods) if inductive else None)


# Columns of the score tables read as text whatever they hold (tile "0012" stays "0012").
TEXT_COLUMNS = ("region", "source", "experiment", "run", "evaluation", "tile", "split",
                "date", "method")  # fmt: skip


def read_scores(dates_path: str | os.PathLike[str], pooled_path: str | os.PathLike[str]) -> Scores:
    """The two tables :func:`score_model` or :func:`score_baselines` returned, as written to
    CSV by their rules; raises :class:`InputDataError` naming a file that is empty."""
    frames = []
    for path in (dates_path, pooled_path):
        frame = pd.read_csv(path, dtype=dict.fromkeys(TEXT_COLUMNS, str), keep_default_na=False,
                            na_values=[""])  # fmt: skip
        if frame.empty:
            raise InputDataError(f"{path}: no scores")
        frames.append(frame)
    return Scores(*frames)


def region_tables(models: Sequence[Scores], baselines: Scores) -> RegionScores:
    """A region's tables from its runs' scores (:func:`score_model`, one per run, the
    reference's first) and the baselines' (:func:`score_baselines`).

    Per run, its model's rows and then the baselines' (labelled with the run's
    ``experiment`` and ``run``: each run's block is a whole comparison) in the per-date and
    pooled tables, and the summary of :func:`~cloudfree.metrics.summary.summarise` with the
    columns ``region, experiment, run`` first."""
    tables, pooled, summaries = [], [], []
    for model in models:
        region, experiment, run = (
            str(model.dates[c].iloc[0]) for c in ("region", "experiment", "run")
        )
        block = []
        for own, base in zip(model, baselines, strict=True):
            base = base.copy()
            base.insert(2, "experiment", experiment)
            base.insert(3, "run", run)
            block.append(pd.concat([own, base], ignore_index=True))
        tables.append(block[0])
        pooled.append(block[1])
        summary = summarise(block[1], block[0])
        for i, (column, value) in enumerate(
            (("region", region), ("experiment", experiment), ("run", run))
        ):
            summary.insert(i, column, value)
        summaries.append(summary)
    return RegionScores(
        pd.concat(tables, ignore_index=True),
        pd.concat(pooled, ignore_index=True),
        pd.concat(summaries, ignore_index=True),
    )


def region_metrics(
    packed_path: str | os.PathLike[str],
    eval_path: str | os.PathLike[str],
    *,
    baselines: Sequence[str],
    experiment: str,
    holdout: Mapping[str, str] | None,
    inductive: tuple[str | os.PathLike[str], str | os.PathLike[str]] | None = None,
) -> RegionScores:
    """Metrics of one model and the baselines on the test tiles of a region, and of its
    evaluation scene (``inductive``: its packed file and evaluation file) when it has one:
    :func:`score_model`, :func:`score_baselines` and :func:`region_tables` in one call.

    ``baselines`` are the names of ``metrics.baselines``, ``holdout`` the
    ``evaluation.holdout_period``.  The tables have the columns ``region, source,
    experiment, run`` and then those of :func:`~cloudfree.metrics.table.score_tiles`
    (per-band columns ``mae_masked_<band>`` for the packed file's bands); the summary
    ``region, experiment, run`` and then those of
    :func:`~cloudfree.metrics.summary.summarise`.  Raises :class:`InputDataError` when the
    region has no test tile to score or an evaluation file has no prediction for one.
    """
    model = score_model(
        packed_path, eval_path, experiment=experiment, holdout=holdout, inductive=inductive
    )
    scene = inductive[0] if inductive is not None else None
    base = score_baselines(packed_path, baselines=baselines, holdout=holdout, inductive=scene)
    return region_tables([model], base)

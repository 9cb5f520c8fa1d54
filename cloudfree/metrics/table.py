"""The evaluation tables: every method scored on every tile with evaluation gaps, on masked,
observed and all clear pixels, with per-band errors and the input's difficulty; one row per
tile, date and method (per-date numbers) and one per tile and method pooled over the dates
of each evaluation set (U-TILISE's convention, the headline numbers).

Every method is scored as its product is delivered: observed pixels pasted back (the
gap fillers return them unchanged anyway), so masked and all pixels compare what a user gets;
the observed set scores the raw output there (how far a method moves what it saw).  One
date's numbers come from :func:`cloudfree.metrics.single.date_scores`, which ``cloudfree
score`` uses as well, for any reconstruction.

Tiles are scored one at a time: what is kept of a tile once it is scored is its rows, joined
into one frame every ``CHUNK_ROWS`` rows (:class:`~cloudfree.frames.FrameChunks`: a few
numbers per row in columns, not a dict per row), so memory follows one tile's series, not the
region's.

Reads tiles (:class:`~cloudfree.packed.TileSeries`) and calls the methods on them; returns
DataFrames and writes nothing.  A method is the model's stored output or a baseline
(:func:`as_method`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import NamedTuple

import numpy as np
import pandas as pd

from cloudfree.bands import S2_L1C_BANDS
from cloudfree.errors import InputDataError
from cloudfree.frames import FrameChunks
from cloudfree.metrics.kernels import METRICS, input_difficulty, pooled_difficulty, score_pooled
from cloudfree.metrics.single import (
    SETS,
    date_scores,
    delivered,
    pixel_sets,
    score_columns,
    ssim_pair,
)
from cloudfree.models.baselines import get_baseline
from cloudfree.packed import TileSeries
from cloudfree.progress import Progress

# A method: (tile, input availability) -> (T, C, H, W) reflectance.
Method = Callable[[TileSeries, np.ndarray], np.ndarray]

# A method's name in the tables; the other methods are the baselines.
MODEL = "model"
# Evaluation sets: held-out tiles of the training scene and its dates, and scenes or dates
# the model never saw.
EVALUATIONS: tuple[str, ...] = ("transductive", "inductive")
KEY_COLUMNS: tuple[str, ...] = ("evaluation", "tile", "split", "date", "method")
POOLED_KEY_COLUMNS: tuple[str, ...] = ("evaluation", "tile", "split", "method", "dates")
DIFFICULTY_COLUMNS: tuple[str, ...] = ("cloud_fraction", "gap_days")
# Labels the dates of a tile with their evaluation set: (tile) -> (T,) labels.
Labeller = Callable[[TileSeries], np.ndarray]
CHUNK_ROWS = 64  # rows joined into one frame by FrameChunks


def metric_columns(bands: Iterable[str]) -> tuple[str, ...]:
    """Columns of the :func:`evaluate_tiles` table for the given band names, in order.

    ``evaluation, tile, split, date, method``; per set (masked, observed, all) ``n_<set>,
    mae_<set>, rmse_<set>, psnr_<set>, ssim_<set>, sam_<set>``; ``mae_masked_<band>`` per
    band; ``cloud_fraction, gap_days``.
    """
    return KEY_COLUMNS + _score_columns(bands)


def pooled_columns(bands: Iterable[str]) -> tuple[str, ...]:
    """Columns of the pooled table of :func:`score_tiles`: ``evaluation, tile, split, method,
    dates`` and then the metric, per-band and difficulty columns of :func:`metric_columns`,
    pooled over the tile's dates of the evaluation set."""
    return POOLED_KEY_COLUMNS + _score_columns(bands)


def _score_columns(bands: Iterable[str]) -> tuple[str, ...]:
    return score_columns(bands) + DIFFICULTY_COLUMNS


# The table's columns for the 13 Sentinel-2 L1C bands (stable: only appended to).
METRIC_COLUMNS: tuple[str, ...] = metric_columns(S2_L1C_BANDS)


def as_method(name: str) -> Method:
    """The baseline ``name`` as an :func:`evaluate_tiles` method."""
    baseline = get_baseline(name)

    def predict(tile: TileSeries, available: np.ndarray) -> np.ndarray:
        return baseline(tile.reflectance(), available, tile.days)

    predict.__name__ = f"baseline_{name}"
    return predict


class Scores(NamedTuple):
    """The two tables of :func:`score_tiles`."""

    dates: pd.DataFrame  # one row per evaluation set, tile, method and date
    pooled: pd.DataFrame  # one row per evaluation set, tile and method


def evaluate_tiles(
    tiles: Iterable[TileSeries],
    predict: Mapping[str, Method],
    bands: Iterable[str],
    evaluation: str | Labeller = "transductive",
) -> pd.DataFrame:
    """The per-date table of :func:`score_tiles`."""
    return score_tiles(tiles, predict, bands, evaluation).dates


def score_tiles(
    tiles: Iterable[TileSeries],
    predict: Mapping[str, Method],
    bands: Iterable[str],
    evaluation: str | Labeller = "transductive",
    progress: Progress | None = None,
) -> Scores:
    """Score every method on every tile that has evaluation gaps (tiles without are skipped).

    Each method is called as ``predict[name](tile, available)`` with ``available = clear &
    ~gap`` and must return (T, C, H, W) reflectance; its available pixels are then replaced
    by the input (the product a user gets).  Truth is ``tile.reflectance()``; the sets are
    ``masked = clear & gap`` (hidden, truth known), ``observed = clear & ~gap`` (scored on
    the raw output) and ``all = clear`` (so ``n_all = n_masked + n_observed``).  ``bands``
    names the C bands (the packed file's) for the per-band columns ``mae_masked_<band>``
    (MAE on masked pixels; NaN if none).  ``evaluation`` is the evaluation set of every
    date, or a function giving a tile's (T,) labels.

    ``cloud_fraction`` and ``gap_days`` describe the input (the same for every method), see
    :func:`~cloudfree.metrics.kernels.input_difficulty`: the share of the valid pixels the
    method cannot see, and the mean distance in days from a masked pixel to the nearest date
    where that pixel is available.

    The per-date rows (one per tile, method and date, in that nesting order) have the columns
    ``metric_columns(bands)``, the pooled rows (one per evaluation set, tile and method:
    every date of the set together) ``pooled_columns(bands)``.  A method that fails to find
    a tile (``KeyError``/``InputDataError``), is not callable or returns the wrong shape
    raises :class:`InputDataError` naming the tile and method; so does a tile whose band
    count differs from ``len(bands)``.  ``progress`` steps once per tile (scored or not).
    """
    bands = tuple(bands)
    rows = FrameChunks(metric_columns(bands), CHUNK_ROWS)
    pooled = FrameChunks(pooled_columns(bands), CHUNK_ROWS)
    for tile in tiles:
        if tile.gap is not None:
            _score_tile(tile, predict, bands, evaluation, rows, pooled)
        if progress is not None:
            progress.step()
    return Scores(rows.frame(), pooled.frame())


def _score_tile(
    tile: TileSeries,
    predict: Mapping[str, Method],
    bands: tuple[str, ...],
    evaluation: str | Labeller,
    rows: FrameChunks,
    pooled: FrameChunks,
) -> None:
    """The per-date and pooled rows of every method on one tile with evaluation gaps."""
    truth = tile.reflectance()
    if truth.shape[1] != len(bands):
        raise InputDataError(
            f"tile {tile.tile}: {truth.shape[1]} bands, expected {len(bands)} ({', '.join(bands)})"
        )
    clear = tile.clear
    gap = np.asarray(tile.gap, dtype=bool)
    if gap.shape != clear.shape:
        raise InputDataError(f"tile {tile.tile}: gap {gap.shape} != mask {clear.shape}")
    labels = _labels(tile, evaluation)
    masked, available = pixel_sets(clear, gap)
    cloud_fraction, gap_days = input_difficulty(available, tile.valid, masked, tile.days)
    for method, fn in predict.items():
        raw = _predict(tile, method, fn, available)
        if raw.shape != truth.shape:
            raise InputDataError(
                f"tile {tile.tile}, method {method!r}: prediction has shape {raw.shape}, "
                f"expected {truth.shape}"
            )
        product = delivered(raw, truth, available)
        maps, raw_maps = ssim_pair(product, raw, truth)
        for t, date in enumerate(tile.dates):
            scores = date_scores(
                (product[t], raw[t], truth[t]), (masked[t], available[t], clear[t]),
                (maps[t], raw_maps[t]), bands,
            )  # fmt: skip
            rows.add_row(
                {"evaluation": labels[t], "tile": tile.tile, "split": tile.split,
                 "date": date, "method": method}
                | scores | {"cloud_fraction": cloud_fraction[t], "gap_days": gap_days[t]}
            )  # fmt: skip
        for label in dict.fromkeys(labels):
            keep = labels == label
            arrays = (product, raw, truth, maps, raw_maps, masked, available, clear)
            pooled.add_row(_pooled_row(tile, method, str(label), keep, arrays, bands))


def _labels(tile: TileSeries, evaluation: str | Labeller) -> np.ndarray:
    labels = (
        np.full(len(tile.dates), evaluation, dtype=object)
        if isinstance(evaluation, str)
        else np.asarray(evaluation(tile), dtype=object)
    )
    if labels.shape != (len(tile.dates),):
        raise ValueError(
            f"tile {tile.tile}: {labels.shape} evaluation labels for {len(tile.dates)} dates"
        )
    return labels


def _pooled_row(
    tile: TileSeries,
    method: str,
    label: str,
    keep: np.ndarray,
    arrays: tuple[np.ndarray, ...],
    bands: tuple[str, ...],
) -> dict[str, object]:
    """One pooled row: the dates ``keep`` of one tile and method together; ``arrays`` are
    the product, raw output, truth, the SSIM maps of product and raw output and the masked,
    available and clear pixels."""
    product, raw, truth, maps, raw_maps, masked, available, clear = arrays
    scores = score_pooled(
        product[keep], truth[keep], {"masked": masked[keep], "all": clear[keep]}, maps[keep]
    ) | score_pooled(raw[keep], truth[keep], {"observed": available[keep]}, raw_maps[keep])
    sel = masked[keep]
    err = np.abs(product[keep] - truth[keep]).transpose(1, 0, 2, 3)[:, sel]  # (C, N)
    per_band = err.mean(axis=1) if err.shape[1] else np.full(len(bands), np.nan)
    # the method saw every date of the tile: distances count all of them, as per date
    only = keep[:, None, None]
    cloud, gap = pooled_difficulty(available, tile.valid & only, masked & only, tile.days)
    return (
        {"evaluation": label, "tile": tile.tile, "split": tile.split, "method": method,
         "dates": int(keep.sum())}
        | _ordered(scores)
        | {f"mae_masked_{b}": float(v) for b, v in zip(bands, per_band, strict=True)}
        | {"cloud_fraction": cloud, "gap_days": gap}
    )  # fmt: skip


def _ordered(scores: Mapping[str, object]) -> dict[str, object]:
    """Scores of several sets in the tables' order of sets."""
    names = [f"n_{s}" for s in SETS] + [f"{m}_{s}" for s in SETS for m in METRICS]
    return {k: scores[k] for k in names if k in scores}


def _predict(tile: TileSeries, method: str, fn: Method | None, available: np.ndarray) -> np.ndarray:
    """Call one method on one tile; a missing method or tile names both in the error."""
    if fn is None or not callable(fn):
        raise InputDataError(f"tile {tile.tile}, method {method!r}: no callable method ({fn!r})")
    try:
        out = fn(tile, available.copy())
    except (InputDataError, LookupError) as exc:
        raise InputDataError(f"tile {tile.tile}, method {method!r}: no prediction ({exc})") from exc
    if out is None:
        raise InputDataError(f"tile {tile.tile}, method {method!r}: returned no prediction")
    return np.asarray(out)

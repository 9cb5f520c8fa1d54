"""The evaluation table: every method scored on every test tile and date, on masked, observed
and all clear pixels, with per-band errors and the input's difficulty.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from cloudfree.bands import S2_L1C_BANDS
from cloudfree.errors import InputDataError
from cloudfree.metrics.kernels import (
    _check,
    _psnr_from_rmse,
    _ssim_mean,
    band_mae,
    sam,
    scored_pixels,
    ssim_map,
)
from cloudfree.models.baselines import get_baseline

if TYPE_CHECKING:
    from cloudfree.packed import TileSeries


def as_method(name: str) -> Callable[[TileSeries, np.ndarray], np.ndarray]:
    """A baseline as an :func:`cloudfree.metrics.table.evaluate_tiles` method."""
    baseline = get_baseline(name)

    def predict(tile: TileSeries, available: np.ndarray) -> np.ndarray:
        return baseline(tile.reflectance(), available, tile.days)

    predict.__name__ = f"baseline_{name}"
    return predict


if TYPE_CHECKING:
    from cloudfree.packed import TileSeries


METRICS: tuple[str, ...] = ("mae", "rmse", "psnr", "ssim", "sam")


SETS: tuple[str, ...] = ("masked", "observed", "all")


KEY_COLUMNS: tuple[str, ...] = ("tile", "split", "date", "method")


SUMMARY_SETS: tuple[str, ...] = ("masked", "observed")  # the sets summaries report


DIFFICULTY_COLUMNS: tuple[str, ...] = ("cloud_fraction", "gap_days")


def metric_columns(bands: Iterable[str] = S2_L1C_BANDS) -> tuple[str, ...]:
    """Columns of the :func:`evaluate_tiles` table for the given band names, in order.

    ``tile, split, date, method``; per set (masked, observed, all) ``n_<set>, mae_<set>,
    rmse_<set>, psnr_<set>, ssim_<set>, sam_<set>``; ``mae_masked_<band>`` per band;
    ``cloud_fraction, gap_days``.
    """
    return (
        KEY_COLUMNS
        + tuple(col for s in SETS for col in (f"n_{s}", *(f"{m}_{s}" for m in METRICS)))
        + tuple(f"mae_masked_{b}" for b in bands)
        + DIFFICULTY_COLUMNS
    )


METRIC_COLUMNS: tuple[str, ...] = metric_columns()


"""The table's columns for the default 13 Sentinel-2 L1C bands (stable: only appended to)."""


Method = Callable[["TileSeries", np.ndarray], np.ndarray]


def input_difficulty(
    available: np.ndarray, valid: np.ndarray, masked: np.ndarray, days: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Per date ``cloud_fraction`` and ``gap_days`` of an input sequence, each (T,).

    ``available`` (what the method sees), ``valid`` (image has data) and ``masked``
    (pixels scored as hidden) are (T, H, W) bool; ``days`` (T,) are the dates in days.

    - ``cloud_fraction[t]`` = 1 - mean(available[t]) over the valid pixels of date t: the
      share of the date's valid pixels the method cannot see (cloud, shadow or evaluation
      gap); NaN if the date has no valid pixel.
    - ``gap_days[t]`` = mean over the masked pixels of date t of the distance in days to
      the nearest date at which that pixel is available.  Masked pixels that are never
      available at any date have no such distance and are left out of the mean; NaN if
      no masked pixel (with an available date) remains.
    """
    available = np.asarray(available, dtype=bool)
    valid = np.asarray(valid, dtype=bool)
    masked = np.asarray(masked, dtype=bool)
    days = np.asarray(days, dtype=np.float64)
    n_dates = available.shape[0]
    if valid.shape != available.shape or masked.shape != available.shape:
        raise ValueError(
            f"available {available.shape}, valid {valid.shape} and masked {masked.shape} differ"
        )
    if days.shape != (n_dates,):
        raise ValueError(f"days {days.shape} does not match {n_dates} dates")
    n_valid = valid.sum(axis=(1, 2))
    n_seen = (available & valid).sum(axis=(1, 2))
    with np.errstate(invalid="ignore", divide="ignore"):
        cloud_fraction = np.where(n_valid > 0, 1.0 - n_seen / np.maximum(n_valid, 1), np.nan)
    # Nearest available date before/at and after/at each date, per pixel (inf: none).
    prev = np.empty(available.shape, dtype=np.float64)
    nxt = np.empty(available.shape, dtype=np.float64)
    last = np.full(available.shape[1:], -np.inf)
    for t in range(n_dates):
        last = np.where(available[t], days[t], last)
        prev[t] = last
    last = np.full(available.shape[1:], np.inf)
    for t in range(n_dates - 1, -1, -1):
        last = np.where(available[t], days[t], last)
        nxt[t] = last
    dist = np.minimum(days[:, None, None] - prev, nxt - days[:, None, None])
    gap_days = np.full(n_dates, np.nan)
    for t in range(n_dates):
        d = dist[t][masked[t]]
        d = d[np.isfinite(d)]
        if d.size:
            gap_days[t] = float(d.mean())
    return cloud_fraction.astype(np.float64), gap_days


def score_image(
    pred: np.ndarray, truth: np.ndarray, sets: Mapping[str, np.ndarray]
) -> dict[str, float | int]:
    """All metrics of one (C, H, W) image on every pixel set (SSIM map computed once)."""
    row: dict[str, float | int] = {}
    smap: np.ndarray | None = None
    for name, selection in sets.items():
        _check(pred, truth, np.asarray(selection))
        sel = scored_pixels(truth, selection)
        n = int(sel.sum())
        row[f"n_{name}"] = n
        if n == 0:
            row.update({f"{m}_{name}": float("nan") for m in METRICS})
            continue
        p, t = pred[:, sel].astype(np.float64), truth[:, sel].astype(np.float64)
        diff = p - t
        row[f"mae_{name}"] = float(np.abs(diff).mean())
        row[f"rmse_{name}"] = float(np.sqrt(np.square(diff).mean()))
        row[f"psnr_{name}"] = _psnr_from_rmse(row[f"rmse_{name}"])
        if smap is None:
            smap = ssim_map(pred, truth)
        row[f"ssim_{name}"] = _ssim_mean(smap, pred, sel)
        row[f"sam_{name}"] = sam(pred, truth, sel)
    return row


def score_series(
    pred: np.ndarray, truth: np.ndarray, sets: Mapping[str, np.ndarray]
) -> list[dict[str, float | int]]:
    """One dict per date: ``n_<set>, mae_<set>, rmse_<set>, psnr_<set>, ssim_<set>, sam_<set>``.

    ``pred``/``truth`` are (T, C, H, W); every set is a (T, H, W) bool selection.
    """
    pred, truth = np.asarray(pred), np.asarray(truth)
    if pred.shape != truth.shape or pred.ndim != 4:
        raise ValueError(f"pred {pred.shape} and truth {truth.shape} must both be (T, C, H, W)")
    for name, selection in sets.items():
        if np.shape(selection) != (truth.shape[0], *truth.shape[2:]):
            raise ValueError(f"set {name!r} has shape {np.shape(selection)}, expected (T, H, W)")
    return [
        score_image(pred[t], truth[t], {name: sel[t] for name, sel in sets.items()})
        for t in range(truth.shape[0])
    ]


def evaluate_tiles(
    tiles: Iterable[TileSeries],
    predict: Mapping[str, Method],
    bands: Iterable[str] = S2_L1C_BANDS,
) -> pd.DataFrame:
    """Score every method on every tile that has evaluation gaps (tiles without are skipped).

    Each method is called as ``predict[name](tile, available)`` with ``available = clear &
    ~gap`` and must return (T, C, H, W) reflectance.  Truth is ``tile.reflectance()``; the
    sets are ``masked = clear & gap`` (hidden, truth known), ``observed = clear & ~gap``
    and ``all = clear`` (masked and observed together, so ``n_all = n_masked +
    n_observed``).  ``bands`` names the C bands (default the 13 Sentinel-2 L1C bands) for
    the per-band columns ``mae_masked_<band>`` (MAE on masked pixels; NaN if none).

    ``cloud_fraction`` and ``gap_days`` describe the input of the date (the same for every
    method), see :func:`input_difficulty`: the share of the date's valid pixels the
    method cannot see, and the mean distance in days from a masked pixel to the nearest
    date where that pixel is available.

    Rows (one per tile, method and date, in that nesting order) have the columns
    ``metric_columns(bands)`` (:data:`METRIC_COLUMNS` for the default bands).  A method
    that fails to find a tile (``KeyError``/``InputDataError``), is not callable or
    returns the wrong shape raises :class:`InputDataError` naming the tile and method; so
    does a tile whose band count differs from ``len(bands)``.
    """
    bands = tuple(bands)
    columns = metric_columns(bands)
    rows: list[dict[str, object]] = []
    for tile in tiles:
        if tile.gap is None:
            continue
        truth = tile.reflectance()
        if truth.shape[1] != len(bands):
            raise InputDataError(
                f"tile {tile.tile}: {truth.shape[1]} bands, expected {len(bands)} "
                f"({', '.join(bands)})"
            )
        clear = tile.clear
        gap = np.asarray(tile.gap, dtype=bool)
        if gap.shape != clear.shape:
            raise InputDataError(f"tile {tile.tile}: gap {gap.shape} != mask {clear.shape}")
        available = clear & ~gap
        masked = clear & gap
        sets = {"masked": masked, "observed": available, "all": clear}
        cloud_fraction, gap_days = input_difficulty(available, tile.valid, masked, tile.days)
        for method, fn in predict.items():
            pred = _predict(tile, method, fn, available)
            if pred.shape != truth.shape:
                raise InputDataError(
                    f"tile {tile.tile}, method {method!r}: prediction has shape {pred.shape}, "
                    f"expected {truth.shape}"
                )
            scored = score_series(pred, truth, sets)
            for t, (date, scores) in enumerate(zip(tile.dates, scored, strict=True)):
                per_band = band_mae(pred[t], truth[t], masked[t])
                rows.append(
                    {"tile": tile.tile, "split": tile.split, "date": date, "method": method}
                    | scores
                    | {f"mae_masked_{b}": float(v) for b, v in zip(bands, per_band, strict=True)}
                    | {"cloud_fraction": cloud_fraction[t], "gap_days": gap_days[t]}
                )
    return pd.DataFrame(rows, columns=list(columns))


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


def evaluate_region(
    packed_path: str | os.PathLike[str], predict: Mapping[str, Method], split: str | None = "test"
) -> pd.DataFrame:
    """:func:`evaluate_tiles` on the tiles of one split of a packed file (its own bands)."""
    from cloudfree.packed import iter_tiles, packed_bands

    return evaluate_tiles(iter_tiles(packed_path, split), predict, packed_bands(packed_path))

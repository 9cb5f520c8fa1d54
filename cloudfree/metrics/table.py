"""The evaluation table: every method scored on every tile and date with evaluation gaps, on
masked, observed and all clear pixels, with per-band errors and the input's difficulty.

Reads tiles (:class:`~cloudfree.packed.TileSeries`) and calls the methods on them; returns a
DataFrame and writes nothing.  A method is the model's stored output or a baseline
(:func:`as_method`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

import numpy as np
import pandas as pd

from cloudfree.bands import S2_L1C_BANDS
from cloudfree.errors import InputDataError
from cloudfree.metrics.kernels import METRICS, band_mae, input_difficulty, score_series
from cloudfree.models.baselines import get_baseline
from cloudfree.packed import TileSeries

# A method: (tile, input availability) -> (T, C, H, W) reflectance.
Method = Callable[[TileSeries, np.ndarray], np.ndarray]

SETS: tuple[str, ...] = ("masked", "observed", "all")
KEY_COLUMNS: tuple[str, ...] = ("tile", "split", "date", "method")
DIFFICULTY_COLUMNS: tuple[str, ...] = ("cloud_fraction", "gap_days")


def metric_columns(bands: Iterable[str]) -> tuple[str, ...]:
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


# The table's columns for the 13 Sentinel-2 L1C bands (stable: only appended to).
METRIC_COLUMNS: tuple[str, ...] = metric_columns(S2_L1C_BANDS)


def as_method(name: str) -> Method:
    """The baseline ``name`` as an :func:`evaluate_tiles` method."""
    baseline = get_baseline(name)

    def predict(tile: TileSeries, available: np.ndarray) -> np.ndarray:
        return baseline(tile.reflectance(), available, tile.days)

    predict.__name__ = f"baseline_{name}"
    return predict


def evaluate_tiles(
    tiles: Iterable[TileSeries], predict: Mapping[str, Method], bands: Iterable[str]
) -> pd.DataFrame:
    """Score every method on every tile that has evaluation gaps (tiles without are skipped).

    Each method is called as ``predict[name](tile, available)`` with ``available = clear &
    ~gap`` and must return (T, C, H, W) reflectance.  Truth is ``tile.reflectance()``; the
    sets are ``masked = clear & gap`` (hidden, truth known), ``observed = clear & ~gap``
    and ``all = clear`` (masked and observed together, so ``n_all = n_masked +
    n_observed``).  ``bands`` names the C bands (the packed file's) for the per-band
    columns ``mae_masked_<band>`` (MAE on masked pixels; NaN if none).

    ``cloud_fraction`` and ``gap_days`` describe the input of the date (the same for every
    method), see :func:`~cloudfree.metrics.kernels.input_difficulty`: the share of the
    date's valid pixels the method cannot see, and the mean distance in days from a masked
    pixel to the nearest date where that pixel is available.

    Rows (one per tile, method and date, in that nesting order) have the columns
    ``metric_columns(bands)`` (:data:`METRIC_COLUMNS` for the 13 L1C bands).  A method
    that fails to find a tile (``KeyError``/``InputDataError``), is not callable or
    returns the wrong shape raises :class:`InputDataError` naming the tile and method; so
    does a tile whose band count differs from ``len(bands)``.
    """
    bands = tuple(bands)
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
    return pd.DataFrame(rows, columns=list(metric_columns(bands)))


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

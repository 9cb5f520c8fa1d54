"""Per evaluation set and method summaries, with bootstrap intervals over tiles.

The headline numbers pool all masked pixels of a tile's dates (U-TILISE's convention) and
then average over tiles; the per-date convention (a tile's mean over its dates, then the mean
over tiles) stays beside them as ``<metric>_masked_date``.  The unit of resampling is the
tile: dates of one tile share their scene, so they are not independent; intervals come from
a percentile bootstrap that resamples tiles with replacement, and are only given from
MIN_TILES scored tiles on (fewer give intervals that mean nothing: NaN, and ``note`` says
so).  Every method is paired, tile by tile, with linear interpolation and with the best
baseline (the baseline with the lowest pooled masked MAE in that evaluation set).

PSNR is ``inf`` for a perfect reconstruction (e.g. a baseline on the observed pixels it
copies); ``inf`` values are treated as NaN before any averaging so that they do not turn
the means into ``inf``.

Reads the tables of :mod:`cloudfree.metrics.table` or per-region summaries; returns
DataFrames and writes nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import numpy as np
import pandas as pd

from cloudfree.metrics.kernels import METRICS
from cloudfree.metrics.table import MODEL, SETS

SUMMARY_SETS: tuple[str, ...] = ("masked", "observed")  # the pixel sets summaries report
DIFF_METRICS: tuple[str, ...] = ("mae", "rmse")
REFERENCE = "linear"  # the baseline every method is paired with in ``*_diff_<baseline>``
CI_LEVEL = 0.95
MIN_TILES = 10  # fewest scored tiles for a bootstrap interval
BOOT_BLOCK = 1 << 16  # bootstrap draws (tile indices) made at once


def summary_columns() -> list[str]:
    """Columns of :func:`summarise`, in order."""
    cols = ["evaluation", "method", "tiles", "rows", *(f"n_{s}" for s in SUMMARY_SETS)]
    for s in SUMMARY_SETS:
        for m in METRICS:
            base = f"{m}_{s}"
            cols += [base, f"{base}_median", f"{base}_ci_low", f"{base}_ci_high"]
    cols += [f"{m}_masked_date" for m in METRICS]
    for m in DIFF_METRICS:
        base = f"{m}_masked_diff_{REFERENCE}"
        cols += [base, f"{base}_ci_low", f"{base}_ci_high"]
    cols.append("best_baseline")
    for m in ("mae", "psnr"):
        base = f"{m}_masked_diff_best"
        cols += [base, f"{base}_ci_low", f"{base}_ci_high"]
    cols += [f"mae_{s}_pixel" for s in SUMMARY_SETS]
    cols.append("note")
    return cols


def bootstrap_ci(
    values: np.ndarray, *, n_boot: int = 2000, seed: int = 0, level: float = CI_LEVEL
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of ``values`` (NaNs dropped first).

    Resamples the values with replacement ``n_boot`` times (vectorised, with
    ``numpy.random.default_rng(seed)``, so the result only depends on the values and the
    seed).  One value gives the 0-width interval (value, value); none gives NaNs.
    """
    v = np.asarray(values, dtype=np.float64)
    v = v[~np.isnan(v)]
    if v.size == 0:
        return float("nan"), float("nan")
    if v.size == 1:
        return float(v[0]), float(v[0])
    if n_boot < 1:
        raise ValueError(f"n_boot must be at least 1, got {n_boot}")
    rng = np.random.default_rng(seed)
    # The draws a block of rows at a time (the generator gives the same stream as one
    # (n_boot, n) call), so memory stays BOOT_BLOCK values whatever the number of tiles.
    means = np.empty(n_boot)
    rows = max(1, BOOT_BLOCK // v.size)
    for start in range(0, n_boot, rows):
        stop = min(n_boot, start + rows)
        means[start:stop] = v[rng.integers(0, v.size, size=(stop - start, v.size))].mean(axis=1)
    alpha = (1.0 - level) / 2.0
    low, high = np.quantile(means, [alpha, 1.0 - alpha])
    return float(low), float(high)


def _finite_mean(values: np.ndarray) -> float:
    v = np.asarray(values, dtype=np.float64)
    v = v[~np.isnan(v)]
    return float(v.mean()) if v.size else float("nan")


def _finite_median(values: np.ndarray) -> float:
    v = np.asarray(values, dtype=np.float64)
    v = v[~np.isnan(v)]
    return float(np.median(v)) if v.size else float("nan")


def per_tile_means(table: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """Mean over dates per (method, tile) of ``columns``; ``inf`` counts as NaN, NaNs ignored.

    Index: (method, tile) in order of first appearance.
    """
    values = table[["method", "tile", *columns]].copy()
    values[columns] = values[columns].astype(np.float64).replace([np.inf, -np.inf], np.nan)
    return values.groupby(["method", "tile"], sort=False)[columns].mean()


def pixel_weighted_mae(table: pd.DataFrame) -> pd.DataFrame:
    """Per method (order of first appearance): ``mae_<set>_pixel`` = sum(mae*n) / sum(n).

    For every set among masked, observed and all that the table has; rows with NaN MAE or
    no pixel are left out; NaN where no pixel remains.
    """
    sets = [s for s in SETS if f"mae_{s}" in table and f"n_{s}" in table]
    out: list[dict[str, object]] = []
    for method, group in table.groupby("method", sort=False):
        row: dict[str, object] = {"method": method}
        for s in sets:
            n = group[f"n_{s}"].to_numpy(dtype=np.float64)
            err = group[f"mae_{s}"].to_numpy(dtype=np.float64)
            ok = ~np.isnan(err) & (n > 0)
            weight = n[ok].sum()
            row[f"mae_{s}_pixel"] = float((err[ok] * n[ok]).sum() / weight) if weight else np.nan
        out.append(row)
    return pd.DataFrame(out, columns=["method", *(f"mae_{s}_pixel" for s in sets)])


def summarise(
    pooled: pd.DataFrame, dates: pd.DataFrame, *, n_boot: int = 2000, seed: int = 0
) -> pd.DataFrame:
    """One row per evaluation set and method (order of first appearance) of one region.

    ``pooled`` and ``dates`` are the two tables of :func:`cloudfree.metrics.table.score_tiles`
    (other columns are ignored).  Columns (:func:`summary_columns`):

    - ``evaluation``, ``method``, ``tiles`` (distinct tiles), ``rows`` (tile-date rows),
      ``n_masked``, ``n_observed`` (total scored pixels);
    - for each set (masked, observed) and metric (mae, rmse, psnr, ssim, sam):
      ``<metric>_<set>`` = mean over tiles of the tile's value pooled over its dates,
      ``_median`` over tiles, ``_ci_low/_ci_high`` a 95 % percentile bootstrap interval of
      the mean over tiles (``n_boot`` draws, ``seed``; NaN below MIN_TILES tiles); tiles
      without a scored pixel are left out;
    - ``<metric>_masked_date``: the per-date convention (mean over tiles of the tile's mean
      over its dates);
    - ``mae_masked_diff_linear``, ``rmse_masked_diff_linear`` and ``best_baseline`` with
      ``mae_masked_diff_best``, ``psnr_masked_diff_best``: mean over tiles of the per-tile
      difference method - reference (pooled values, paired on the tiles both have) with its
      interval; negative MAE and positive PSNR differences mean better than the reference;
      exactly 0 for the reference itself, NaN when it is absent;
    - ``mae_masked_pixel``, ``mae_observed_pixel``: :func:`pixel_weighted_mae` of the per-date
      table (every scored pixel weighs the same, whatever its tile);
    - ``note``: why intervals are missing, if they are.

    Every (method, column) bootstrap uses its own generator seeded with ``seed``, so results
    do not depend on the order of methods.
    """
    columns = summary_columns()
    if pooled.empty:
        return pd.DataFrame(columns=columns)
    out: list[dict[str, object]] = []
    for evaluation, group in pooled.groupby("evaluation", sort=False):
        by_date = dates[dates["evaluation"] == evaluation]
        out += _summarise_set(str(evaluation), group, by_date, n_boot=n_boot, seed=seed)
    return pd.DataFrame(out, columns=columns)


def _summarise_set(
    evaluation: str, pooled: pd.DataFrame, dates: pd.DataFrame, *, n_boot: int, seed: int
) -> list[dict[str, object]]:
    cols = [f"{m}_{s}" for s in SUMMARY_SETS for m in METRICS]
    tiles = _finite(pooled.set_index(["method", "tile"])[cols])
    per_date = per_tile_means(dates, [f"{m}_masked" for m in METRICS])
    methods = list(pd.unique(pooled["method"]))
    rows_per_method = dates.groupby("method", sort=False).size()
    totals = pooled.groupby("method", sort=False)[[f"n_{s}" for s in SUMMARY_SETS]].sum()
    pixel = pixel_weighted_mae(dates).set_index("method")
    baselines = [m for m in methods if m != MODEL]
    best = min(baselines, key=lambda m: _mean_or_inf(tiles.loc[m, "mae_masked"]), default=None)
    out: list[dict[str, object]] = []
    for method in methods:
        per_tile = tiles.loc[method]
        n_tiles = int(per_tile["mae_masked"].notna().sum())
        intervals = n_tiles >= MIN_TILES

        interval = partial(_interval, enough=intervals, n_boot=n_boot, seed=seed)

        row: dict[str, object] = {
            "evaluation": evaluation,
            "method": method,
            "tiles": len(per_tile),
            "rows": int(rows_per_method.get(method, 0)),
        } | {f"n_{s}": int(totals.loc[method, f"n_{s}"]) for s in SUMMARY_SETS}
        for col in cols:
            values = per_tile[col].to_numpy(dtype=np.float64)
            row[col] = _finite_mean(values)
            row[f"{col}_median"] = _finite_median(values)
            row[f"{col}_ci_low"], row[f"{col}_ci_high"] = interval(values)
        for m in METRICS:
            column = per_date.loc[method, f"{m}_masked"] if method in per_date.index else []
            row[f"{m}_masked_date"] = _finite_mean(np.asarray(column, dtype=np.float64))
        for m in DIFF_METRICS:
            _paired(row, f"{m}_masked_diff_{REFERENCE}", tiles, method, REFERENCE,
                    f"{m}_masked", interval)  # fmt: skip
        row["best_baseline"] = best if best is not None else ""
        for m in ("mae", "psnr"):
            _paired(row, f"{m}_masked_diff_best", tiles, method, best, f"{m}_masked", interval)
        for s in SUMMARY_SETS:
            col = f"mae_{s}_pixel"
            row[col] = pixel.loc[method, col] if col in pixel and method in pixel.index else np.nan
        row["note"] = (
            "" if intervals else f"{n_tiles} scored tiles: intervals need at least {MIN_TILES}"
        )
        out.append(row)
    return out


def _paired(
    row: dict[str, object],
    name: str,
    tiles: pd.DataFrame,
    method: str,
    reference: str | None,
    column: str,
    interval: Callable[[np.ndarray], tuple[float, float]],
) -> None:
    """``name`` (and its interval): mean over tiles of method - reference in ``column``."""
    methods = tiles.index.get_level_values("method")
    if reference is None or reference not in methods:
        diff, low, high = np.nan, np.nan, np.nan
    elif method == reference:
        diff, low, high = 0.0, 0.0, 0.0
    else:
        a, b = tiles.loc[method, column].align(tiles.loc[reference, column], join="inner")
        d = (a - b).to_numpy(dtype=np.float64)
        diff = _finite_mean(d)
        low, high = interval(d)
    row[name], row[f"{name}_ci_low"], row[f"{name}_ci_high"] = diff, low, high


def _interval(values: np.ndarray, *, enough: bool, n_boot: int, seed: int) -> tuple[float, float]:
    """The bootstrap interval of the mean, or NaNs when there are too few tiles."""
    if not enough:
        return float("nan"), float("nan")
    return bootstrap_ci(values, n_boot=n_boot, seed=seed)


def _finite(frame: pd.DataFrame) -> pd.DataFrame:
    """Float copy with ``inf`` as NaN (a perfect copy's PSNR)."""
    return frame.astype(np.float64).replace([np.inf, -np.inf], np.nan)


def _mean_or_inf(values: pd.Series) -> float:
    mean = _finite_mean(values.to_numpy(dtype=np.float64))
    return mean if np.isfinite(mean) else np.inf


def combine_regions(summaries: list[pd.DataFrame]) -> pd.DataFrame:
    """The per-region summaries stacked into one table, ``region`` as first column.

    Every summary must already have a ``region`` column (as
    :func:`cloudfree.metrics.region.region_metrics` writes it).  Columns are the union in order
    of first appearance (missing ones NaN, e.g. diff columns for another baseline).
    """
    frames = [s for s in summaries if s is not None]
    for i, frame in enumerate(frames):
        if "region" not in frame.columns:
            raise ValueError(f"summary {i} has no 'region' column")
    if not frames:
        return pd.DataFrame(columns=["region"])
    combined = pd.concat(frames, ignore_index=True, sort=False)
    return combined[["region", *(c for c in combined.columns if c != "region")]]

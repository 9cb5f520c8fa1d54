"""Per-method summaries of the evaluation table, with bootstrap intervals over tiles.

The unit of resampling is the tile: dates of one tile share their scene, so they are not
independent.  Every statistic is therefore computed on per-tile values (the mean over a
tile's dates of a metric, NaNs ignored), and intervals come from a percentile bootstrap
that resamples tiles with replacement.

PSNR is ``inf`` for a perfect reconstruction (e.g. a baseline on the observed pixels it
copies); ``inf`` values are treated as NaN before any averaging so that they do not turn
the means into ``inf``.  A method whose PSNR is ``inf`` on every date of every tile thus
gets a NaN PSNR.

Reads an evaluation table (:mod:`cloudfree.metrics.table`) or per-region summaries; returns
DataFrames and writes nothing.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from cloudfree.metrics.kernels import METRICS
from cloudfree.metrics.table import SETS

SUMMARY_SETS: tuple[str, ...] = ("masked", "observed")  # the pixel sets summaries report
DIFF_METRICS: tuple[str, ...] = ("mae", "rmse")
REFERENCE = "linear"  # the baseline every method is paired with in ``*_diff_<baseline>``
CI_LEVEL = 0.95


def summary_columns(baseline: str = REFERENCE) -> list[str]:
    """Columns of :func:`summarise`, in order."""
    cols = ["method", "tiles", "rows", *(f"n_{s}" for s in SUMMARY_SETS)]
    for s in SUMMARY_SETS:
        for m in METRICS:
            base = f"{m}_{s}"
            cols += [base, f"{base}_median", f"{base}_ci_low", f"{base}_ci_high"]
    for m in DIFF_METRICS:
        base = f"{m}_masked_diff_{baseline}"
        cols += [base, f"{base}_ci_low", f"{base}_ci_high"]
    cols += [f"mae_{s}_pixel" for s in SUMMARY_SETS]
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
    means = v[rng.integers(0, v.size, size=(n_boot, v.size))].mean(axis=1)
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
    table: pd.DataFrame, *, baseline: str = REFERENCE, n_boot: int = 2000, seed: int = 0
) -> pd.DataFrame:
    """One row per method (order of first appearance) of an evaluation table of one region.

    ``table`` has the columns ``tile, method`` and the metric columns of
    :func:`cloudfree.metrics.table.evaluate_tiles` (other columns are ignored).  Columns
    (:func:`summary_columns`):

    - ``method``, ``tiles`` (distinct tiles), ``rows``, ``n_masked``, ``n_observed``
      (total scored pixels);
    - for each set (masked, observed) and metric (mae, rmse, psnr, ssim, sam):
      ``<metric>_<set>`` = mean over tiles of the per-tile mean over dates (NaNs ignored,
      ``inf`` PSNR treated as NaN), ``<metric>_<set>_median`` (median over tiles) and
      ``<metric>_<set>_ci_low/_ci_high``, a 95 % percentile bootstrap interval of the
      mean over tiles (tiles resampled with replacement, ``n_boot`` draws, ``seed``);
      tiles whose per-tile value is NaN (no scored pixel) are left out;
    - ``mae_masked_diff_<baseline>`` and ``rmse_masked_diff_<baseline>`` with
      ``_ci_low/_ci_high``: mean over tiles of the per-tile difference method - baseline
      (paired on the tiles both have), with a bootstrap interval over those tiles;
      negative means better than the baseline.  Exactly 0 with a 0-width interval for
      the baseline itself, NaN for every method if the baseline is absent;
    - ``mae_masked_pixel``, ``mae_observed_pixel``: :func:`pixel_weighted_mae`.

    With a single tile every interval collapses to the value itself (0 width): there is
    no between-tile variation to resample.  Every (method, column) bootstrap uses its own
    generator seeded with ``seed``, so results do not depend on the order of methods.
    """
    cols = [f"{m}_{s}" for s in SUMMARY_SETS for m in METRICS]
    columns = summary_columns(baseline)
    if table.empty:
        return pd.DataFrame(columns=columns)
    tiles = per_tile_means(table, cols)
    methods = list(pd.unique(table["method"]))
    rows_per_method = table.groupby("method", sort=False).size()
    totals = table.groupby("method", sort=False)[[f"n_{s}" for s in SUMMARY_SETS]].sum()
    has_baseline = baseline in methods
    base = tiles.loc[baseline] if has_baseline else None
    pixel = pixel_weighted_mae(table).set_index("method")
    out: list[dict[str, object]] = []
    for method in methods:
        per_tile = tiles.loc[method]
        row: dict[str, object] = {
            "method": method,
            "tiles": len(per_tile),
            "rows": int(rows_per_method[method]),
        } | {f"n_{s}": int(totals.loc[method, f"n_{s}"]) for s in SUMMARY_SETS}
        for col in cols:
            values = per_tile[col].to_numpy(dtype=np.float64)
            row[col] = _finite_mean(values)
            row[f"{col}_median"] = _finite_median(values)
            row[f"{col}_ci_low"], row[f"{col}_ci_high"] = bootstrap_ci(
                values, n_boot=n_boot, seed=seed
            )
        for m in DIFF_METRICS:
            name = f"{m}_masked_diff_{baseline}"
            if base is None:
                diff, low, high = np.nan, np.nan, np.nan
            elif method == baseline:
                diff, low, high = 0.0, 0.0, 0.0
            else:
                paired = per_tile[f"{m}_masked"].align(base[f"{m}_masked"], join="inner")
                d = (paired[0] - paired[1]).to_numpy(dtype=np.float64)
                diff = _finite_mean(d)
                low, high = bootstrap_ci(d, n_boot=n_boot, seed=seed)
            row[name], row[f"{name}_ci_low"], row[f"{name}_ci_high"] = diff, low, high
        for s in SUMMARY_SETS:
            col = f"mae_{s}_pixel"
            row[col] = pixel.loc[method, col] if col in pixel else np.nan
        out.append(row)
    return pd.DataFrame(out, columns=columns)


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

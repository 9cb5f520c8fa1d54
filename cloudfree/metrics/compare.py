"""Experiments of an ablation study compared with each other and with the baselines.

An experiment is one set of training settings on the same regions; it has one run per seed
(``<experiment>/seed<n>``, or the experiment itself without seeds).  Every run's model and
every baseline must have been scored on the same test tiles and the same masked pixels
(checked: the same (evaluation, tile) pairs with the same ``n_masked``), so that every
difference can be paired tile by tile.

Per tile, an experiment's value is the mean over its runs (the seed mean); its headline is the
mean over tiles of that seed mean, and its interval the percentile bootstrap over tiles of it
(:func:`cloudfree.metrics.summary.bootstrap_ci`, only from MIN_TILES scored tiles on, as the
summaries do).  ``_seed_sd`` is the standard deviation over the runs of each run's mean over
tiles: how much the seed alone moves the result (it is not part of the intervals).  Differences
to the reference experiment and to the best baseline (lowest mean pooled masked MAE of the
evaluation set) pair the per-tile seed means; negative MAE and positive PSNR/SSIM differences
mean better.  PSNR is ``inf`` for an exact copy: it counts as NaN before any averaging.

Reads pooled tables (:mod:`cloudfree.metrics.table`); returns DataFrames and writes nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

import numpy as np
import pandas as pd

from cloudfree.errors import InputDataError
from cloudfree.metrics.summary import MIN_TILES, bootstrap_ci
from cloudfree.metrics.table import MODEL

COMPARE_METRICS: tuple[str, ...] = ("mae", "psnr", "ssim")
BEST_METRICS: tuple[str, ...] = ("mae", "psnr")  # differences to the best baseline
KEY: list[str] = ["evaluation", "tile"]
VALUES: list[str] = [f"{m}_masked" for m in COMPARE_METRICS]


def comparison_columns() -> list[str]:
    """Columns of :func:`compare_experiments`, in order."""
    cols = ["evaluation", "experiment", "method", "kind", "reference", "seeds", "tiles"]
    cols.append("n_masked")
    for m in COMPARE_METRICS:
        base = f"{m}_masked"
        cols += [base, f"{base}_ci_low", f"{base}_ci_high", f"{base}_seed_sd"]
    for name, metrics in (("reference", COMPARE_METRICS), ("best", BEST_METRICS)):
        for m in metrics:
            base = f"{m}_masked_diff_{name}"
            cols += [base, f"{base}_ci_low", f"{base}_ci_high"]
    return [*cols, "best_baseline", "note"]


class _Entry(NamedTuple):
    """One row's method: an experiment (one frame per run) or a baseline (one frame)."""

    experiment: str
    method: str
    kind: str
    runs: list[pd.DataFrame]  # index (evaluation, tile); n_masked and VALUES (inf as NaN)
    names: list[str]  # how errors name the runs: "run 'A/seed1'", "baseline 'linear'"


def compare_experiments(
    models: pd.DataFrame,
    baselines: pd.DataFrame,
    reference: str,
    *,
    n_boot: int = 2000,
    seed: int = 0,
) -> pd.DataFrame:
    """One row per evaluation set and experiment, then per baseline (:func:`comparison_columns`).

    ``models`` holds the pooled rows of the trained models (``method == "model"``) with the
    columns ``experiment`` and ``run``; ``baselines`` the pooled rows of the baselines
    (``method`` = the baseline's name; may be empty).  Evaluation sets and experiments come in
    order of first appearance in ``models``, the ``reference`` experiment first, then the
    baselines in order of first appearance.

    - ``seeds``: runs averaged (1 for a baseline); ``tiles``: tiles of the set; ``n_masked``:
      masked pixels scored per run, summed over the tiles;
    - ``<m>_masked`` (m in mae, psnr, ssim): mean over tiles of the per-tile seed mean, with its
      95 % bootstrap interval over tiles (``n_boot`` draws, ``seed``; NaN below MIN_TILES
      scored tiles, and ``note`` says so) and ``_seed_sd`` (ddof=1 over the runs' means over
      tiles; NaN for a single run);
    - ``<m>_masked_diff_reference`` (mae, psnr, ssim) and ``<m>_masked_diff_best`` (mae, psnr)
      with intervals: mean over tiles of row - reference experiment / best baseline, paired on
      tiles; exactly 0 for the reference / best baseline itself; NaN without baselines
      (``best_baseline`` is then "").

    Raises :class:`ValueError` when ``reference`` is not an experiment or a column is missing,
    :class:`InputDataError` when a run or baseline has two rows for one tile or was not scored
    on the same (evaluation, tile) pairs and ``n_masked`` as the reference's first run.
    """
    _require(models, [*KEY, "n_masked", *VALUES, "experiment", "run"], "models")
    if "method" in models and (models["method"].astype(str) != MODEL).any():
        raise ValueError(f"models holds rows of methods other than {MODEL!r}")
    experiments = [str(e) for e in pd.unique(models["experiment"].astype(str))]
    if reference not in experiments:
        raise ValueError(
            f"reference experiment {reference!r} is not among the experiments: "
            f"{', '.join(experiments) or 'none'}"
        )
    entries = _model_entries(models, experiments, reference) + _baseline_entries(baselines)
    canonical, canonical_name = entries[0].runs[0], entries[0].names[0]
    for entry in entries:
        for name, frame in zip(entry.names, entry.runs, strict=True):
            _same_pixels(frame, canonical, name, canonical_name)
    out: list[dict[str, object]] = []
    for evaluation in pd.unique(models["evaluation"].astype(str)):
        out += _compare_set(str(evaluation), entries, n_boot=n_boot, seed=seed)
    return pd.DataFrame(out, columns=comparison_columns())


def experiment_table(comparisons: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """The comparisons of several regions (``{region: compare_experiments(...)}``, in the
    mapping's order) stacked into one table, ``region`` as first column."""
    frames = [
        frame.drop(columns="region", errors="ignore").assign(region=str(region))
        for region, frame in comparisons.items()
    ]
    if not frames:
        return pd.DataFrame(columns=["region", *comparison_columns()])
    table = pd.concat(frames, ignore_index=True, sort=False)
    return table[["region", *(c for c in table.columns if c != "region")]]


def _require(frame: pd.DataFrame, columns: list[str], what: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"{what} lacks the columns {', '.join(missing)}")


def _indexed(rows: pd.DataFrame, what: str) -> pd.DataFrame:
    """``rows`` indexed by (evaluation, tile), float values with ``inf`` as NaN; one row each."""
    frame = rows.assign(evaluation=rows["evaluation"].astype(str), tile=rows["tile"].astype(str))
    frame = frame.set_index(KEY)[["n_masked", *VALUES]].astype(np.float64)
    duplicated = frame.index.duplicated()
    if duplicated.any():
        evaluation, tile = frame.index[duplicated][0]
        raise InputDataError(
            f"{what} has more than one row for evaluation set {evaluation!r}, tile {tile!r}"
        )
    return frame.replace([np.inf, -np.inf], np.nan)


def _model_entries(models: pd.DataFrame, experiments: list[str], reference: str) -> list[_Entry]:
    runs: dict[str, list[pd.DataFrame]] = {e: [] for e in experiments}
    names: dict[str, list[str]] = {e: [] for e in experiments}
    labelled = models.assign(experiment=models["experiment"].astype(str))
    labelled = labelled.assign(run=labelled["run"].astype(str))
    for (experiment, run), rows in labelled.groupby(["experiment", "run"], sort=False):
        names[str(experiment)].append(f"run {run!r}")
        runs[str(experiment)].append(_indexed(rows, names[str(experiment)][-1]))
    order = [reference, *(e for e in experiments if e != reference)]
    return [_Entry(e, MODEL, "model", runs[e], names[e]) for e in order]


def _baseline_entries(baselines: pd.DataFrame) -> list[_Entry]:
    if baselines.empty:
        return []
    _require(baselines, [*KEY, "method", "n_masked", *VALUES], "baselines")
    out = []
    for method, rows in baselines.groupby(baselines["method"].astype(str), sort=False):
        if method == MODEL:
            raise ValueError(f"baselines holds rows of the method {MODEL!r}")
        name = f"baseline {method!r}"
        out.append(_Entry("", str(method), "baseline", [_indexed(rows, name)], [name]))
    return out


def _same_pixels(frame: pd.DataFrame, canonical: pd.DataFrame, what: str, ref: str) -> None:
    """Raise unless ``frame`` has the (evaluation, tile) pairs and n_masked of ``canonical``."""
    if frame is canonical:
        return
    mine = frame["n_masked"]
    theirs = canonical["n_masked"]
    detail = ""
    for key, n in theirs.items():
        if key not in mine.index:
            detail = f"is missing from {what}"
        elif mine[key] != n and not (np.isnan(mine[key]) and np.isnan(n)):
            detail = f"has n_masked {mine[key]:.0f} in {what} but {n:.0f} in {ref}"
        if detail:
            break
    else:
        extra = mine.index.difference(theirs.index, sort=False)
        if extra.empty:
            return
        key, detail = extra[0], f"is not in {ref}"
    evaluation, tile = key
    raise InputDataError(
        f"{what} and {ref} were not scored on the same pixels: evaluation set "
        f"{evaluation!r}, tile {tile!r} {detail}"
    )


def _finite_mean(values: np.ndarray) -> float:
    v = np.asarray(values, dtype=np.float64)
    v = v[~np.isnan(v)]
    return float(v.mean()) if v.size else float("nan")


def _compare_set(
    evaluation: str, entries: list[_Entry], *, n_boot: int, seed: int
) -> list[dict[str, object]]:
    """The rows of one evaluation set (every entry covers the same tiles, checked before)."""
    tiles = entries[0].runs[0].loc[evaluation].index
    per_tile: dict[int, pd.DataFrame] = {}  # entry -> (tile x VALUES) seed means
    run_means: dict[int, pd.DataFrame] = {}  # entry -> (run x VALUES) means over tiles
    for i, entry in enumerate(entries):
        frames = [run.loc[evaluation].reindex(tiles)[VALUES] for run in entry.runs]
        per_tile[i] = _seed_mean(frames)
        run_means[i] = pd.DataFrame(
            [{c: _finite_mean(f[c].to_numpy()) for c in VALUES} for f in frames]
        )
    baselines = [i for i, e in enumerate(entries) if e.kind == "baseline"]
    best = min(baselines, key=lambda i: _mean_or_inf(per_tile[i]["mae_masked"]), default=None)
    n_masked = int(np.nansum(entries[0].runs[0].loc[evaluation, "n_masked"].to_numpy()))
    out: list[dict[str, object]] = []
    for i, entry in enumerate(entries):
        values = per_tile[i]
        n_tiles = int(values["mae_masked"].notna().sum())
        enough = n_tiles >= MIN_TILES

        def interval(v: np.ndarray, enough: bool = enough) -> tuple[float, float]:
            return bootstrap_ci(v, n_boot=n_boot, seed=seed) if enough else (np.nan, np.nan)

        row: dict[str, object] = {
            "evaluation": evaluation,
            "experiment": entry.experiment,
            "method": entry.method,
            "kind": entry.kind,
            "reference": i == 0,
            "seeds": len(entry.runs),
            "tiles": len(tiles),
            "n_masked": n_masked,
        }
        for col in VALUES:
            v = values[col].to_numpy(dtype=np.float64)
            row[col] = _finite_mean(v)
            row[f"{col}_ci_low"], row[f"{col}_ci_high"] = interval(v)
            means = run_means[i][col].dropna()
            row[f"{col}_seed_sd"] = float(means.std(ddof=1)) if len(means) > 1 else np.nan
        for name, metrics, other in (
            ("reference", COMPARE_METRICS, 0),
            ("best", BEST_METRICS, best),
        ):
            for m in metrics:
                col = f"{m}_masked"
                base = f"{col}_diff_{name}"
                if other is None:
                    diff, low, high = np.nan, np.nan, np.nan
                elif other == i:
                    diff, low, high = 0.0, 0.0, 0.0
                else:
                    d = (values[col] - per_tile[other][col]).to_numpy(dtype=np.float64)
                    diff, (low, high) = _finite_mean(d), interval(d)
                row[base], row[f"{base}_ci_low"], row[f"{base}_ci_high"] = diff, low, high
        row["best_baseline"] = entries[best].method if best is not None else ""
        row["note"] = (
            "" if enough else f"{n_tiles} scored tiles: intervals need at least {MIN_TILES}"
        )
        out.append(row)
    return out


def _seed_mean(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """Per tile and column the mean over the runs' frames (NaNs ignored; NaN if all are)."""
    stacked = np.stack([f.to_numpy(dtype=np.float64) for f in frames])
    counts = (~np.isnan(stacked)).sum(axis=0)
    sums = np.nansum(stacked, axis=0)
    mean = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
    return pd.DataFrame(mean, index=frames[0].index, columns=frames[0].columns)


def _mean_or_inf(values: pd.Series) -> float:
    mean = _finite_mean(values.to_numpy(dtype=np.float64))
    return mean if np.isfinite(mean) else np.inf

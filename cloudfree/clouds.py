"""Cloud statistics from the cloud masks: coverage per tile and date, cloudy run lengths."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd

from .bands import CLEAR, CLOUD, MASK_NODATA, SHADOW, THIN_CLOUD
from .io import atomic_path, read_raster
from .manifest import read_manifest


def coverage(mask: np.ndarray) -> dict[str, float]:
    """Fractions of one date's (H, W) mask; cloud/shadow fractions are over valid pixels."""
    valid = mask != MASK_NODATA
    n = int(valid.sum())
    out = {"valid_fraction": n / mask.size}
    for name, classes in (
        ("cloud", (CLOUD, THIN_CLOUD)),
        ("thick_cloud", (CLOUD,)),
        ("thin_cloud", (THIN_CLOUD,)),
        ("shadow", (SHADOW,)),
        ("clear", (CLEAR,)),
    ):
        out[f"{name}_fraction"] = float(np.isin(mask[valid], classes).sum() / n) if n else np.nan
    return out


def cloudy_run_lengths(masks: np.ndarray) -> np.ndarray:
    """Histogram of per-pixel runs of consecutive non-clear dates in a (T, H, W) series.

    Returns ``counts`` of length T + 1 where ``counts[k]`` is the number of runs of exactly
    k consecutive cloudy (cloud, thin cloud, shadow or nodata) dates; ``counts[0]`` is 0.
    """
    t = masks.shape[0]
    cloudy = (masks != CLEAR).reshape(t, -1)
    # Pad with clear dates, then runs start at 0->1 and end at 1->0 transitions.
    padded = np.zeros((t + 2, cloudy.shape[1]), dtype=np.int8)
    padded[1:-1] = cloudy
    diff = np.diff(padded, axis=0)
    starts = np.nonzero(diff.T == 1)
    ends = np.nonzero(diff.T == -1)
    lengths = ends[1] - starts[1]  # both ordered by pixel, then time
    return np.bincount(lengths, minlength=t + 1)[: t + 1]


def region_statistics(manifest: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per tile and date coverage, and the region's run-length histogram."""
    rows = []
    runs = None
    for tile, group in manifest.groupby("tile", sort=True):
        group = group.sort_values("date")
        masks = np.stack([read_raster(p)[0][0] for p in group["mask"]])
        for row, mask in zip(group.itertuples(), masks, strict=True):
            rows.append({"tile": tile, "date": row.date, "split": row.split, **coverage(mask)})
        hist = cloudy_run_lengths(masks)
        runs = hist if runs is None else _add_hist(runs, hist)
    table = pd.DataFrame(rows)
    table.insert(0, "region", manifest["region"].iloc[0])
    assert runs is not None
    run_table = pd.DataFrame({"run_length": np.arange(1, len(runs)), "count": runs[1:]})
    return table, run_table


def _add_hist(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    n = max(len(a), len(b))
    return np.pad(a, (0, n - len(a))) + np.pad(b, (0, n - len(b)))


def cloud_statistics(
    manifest_path: str | os.PathLike[str],
    coverage_out: str | os.PathLike[str],
    runs_out: str | os.PathLike[str],
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Compute and write the statistics tables of one region (atomically)."""
    table, runs = region_statistics(read_manifest(manifest_path))
    for df, path in ((table, coverage_out), (runs, runs_out)):
        with atomic_path(path) as tmp:
            df.to_csv(tmp, index=False, float_format="%.5f")
    return table, runs

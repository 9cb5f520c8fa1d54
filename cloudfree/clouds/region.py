"""Cloud statistics and date selection of a region, from the tile manifest's cloud masks.

Reads the manifest's cloud masks (and probabilities) of every tile, lazily and in chunks
(:mod:`cloudfree.clouds.stats`); the date classes come from :mod:`cloudfree.clouds.selection`
under the resolved ``clouds.selection`` settings.  Tables written by :func:`cloud_statistics`:

- ``{region}.csv``: per tile and date, the fractions of cloud (thick + thin), thick cloud,
  thin cloud, shadow and clear over the valid pixels, the valid fraction of all pixels, the
  share of valid pixels above the probability threshold (``prob_fraction``) and the class;
- ``{region}_runs.csv``: histogram of per-pixel runs of consecutive cloudy dates
  (``run_length``, ``count``) and of per-tile runs of consecutive non-clear dates
  (``date_runs``);
- ``{region}_tiles.csv``: per tile the number of clear, impaired and unusable dates, the
  longest run of non-clear dates and the longest gap in days between clear dates;
- ``{region}_summary.csv``: one row of region-wide means and counts;
- ``{region}_dates.csv``: the date selection (:func:`cloudfree.clouds.selection.read_selection`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from cloudfree.clouds.selection import CLASSES, classify_dates, selection_table
from cloudfree.clouds.stats import (
    CHUNK,
    add_hist,
    longest_cloudy_run,
    longest_gap_days,
    run_length_histogram,
    tile_dataset,
    tile_statistics,
)
from cloudfree.frames import FrameChunks
from cloudfree.io import atomic_path
from cloudfree.manifest import read_manifest
from cloudfree.progress import EVERY_SECONDS, Progress

log = logging.getLogger(__name__)


@dataclass
class RegionStats:
    """The tables of one region (see the module docstring)."""

    coverage: pd.DataFrame
    runs: pd.DataFrame
    tiles: pd.DataFrame
    summary: pd.DataFrame
    dates: pd.DataFrame


def region_statistics(
    manifest: pd.DataFrame,
    selection: Mapping[str, Any],
    chunk: int = CHUNK,
    *,
    every: float = EVERY_SECONDS,
) -> RegionStats:
    """Statistics and date selection of one region's manifest, one tile at a time, under the
    resolved ``clouds.selection`` settings.

    What is kept of a tile once it is done is its per-date rows and one summary row
    (:class:`~cloudfree.frames.FrameChunks`) and its run-length histograms summed into
    the region's; a progress line (tiles done of all, ETA) is logged at least every
    ``every`` seconds."""
    region = str(manifest["region"].iloc[0])
    tables, tile_rows = FrameChunks(), FrameChunks()
    dates: dict[str, str] = {}
    pixel_runs: np.ndarray | None = None
    date_runs: np.ndarray | None = None
    groups = manifest.groupby("tile", sort=True)
    progress = Progress(log, f"cloud statistics of {region}: tiles", groups.ngroups, every=every)
    for tile, group in groups:
        group = group.sort_values("date")
        table, hist = tile_statistics(tile_dataset(group, chunk), selection["prob_threshold"])
        # one string per date of the region, not per row
        table["date"] = [dates.setdefault(d, d) for d in table["date"]]
        table.insert(0, "tile", str(tile))
        table.insert(2, "split", group["split"].iloc[0])
        table["class"] = classify_dates(table, selection).to_numpy()
        tables.add_frame(table)
        pixel_runs = add_hist(pixel_runs, hist)
        clear = (table["class"] == "clear").to_numpy()
        date_runs = add_hist(date_runs, run_length_histogram(~clear[:, None], len(clear)))
        counts = table["class"].value_counts()
        tile_rows.add_row(
            {
                "tile": str(tile),
                "split": group["split"].iloc[0],
                "n_dates": len(table),
                **{f"n_{c}": int(counts.get(c, 0)) for c in CLASSES},
                "longest_cloudy_run": longest_cloudy_run(clear),
                "longest_gap_days": longest_gap_days(table["date"], clear),
                "mean_cloud_fraction": float(table["cloud_fraction"].mean()),
                "mean_shadow_fraction": float(table["shadow_fraction"].mean()),
                "mean_valid_fraction": float(table["valid_fraction"].mean()),
            }
        )
        progress.step()
    cov = tables.frame()
    cov.insert(0, "region", region)
    assert pixel_runs is not None and date_runs is not None
    n = max(len(pixel_runs), len(date_runs))
    pixel_runs, date_runs = (
        np.pad(pixel_runs, (0, n - len(pixel_runs))),
        np.pad(date_runs, (0, n - len(date_runs))),
    )
    runs = pd.DataFrame(
        {"run_length": np.arange(1, n), "count": pixel_runs[1:], "date_runs": date_runs[1:]}
    )
    tiles = tile_rows.frame()
    tiles.insert(0, "region", region)
    summary = region_summary(region, cov, tiles, runs)
    return RegionStats(cov, runs, tiles, summary, selection_table(cov, selection))


def region_summary(
    region: str, cov: pd.DataFrame, tiles: pd.DataFrame, runs: pd.DataFrame
) -> pd.DataFrame:
    """One row: sizes, mean fractions, class shares, clear dates and gaps of a region."""
    shares = cov["class"].value_counts(normalize=True)
    n_runs = runs["count"].sum()
    return pd.DataFrame(
        [
            {
                "region": region,
                "n_tiles": len(tiles),
                "n_tile_dates": len(cov),
                "mean_cloud_fraction": cov["cloud_fraction"].mean(),
                "mean_shadow_fraction": cov["shadow_fraction"].mean(),
                "mean_valid_fraction": cov["valid_fraction"].mean(),
                **{f"share_{c}": float(shares.get(c, 0.0)) for c in CLASSES},
                "median_clear_dates": tiles["n_clear"].median(),
                "min_clear_dates": tiles["n_clear"].min(),
                "max_longest_gap_days": tiles["longest_gap_days"].max(),
                "median_longest_gap_days": tiles["longest_gap_days"].median(),
                "mean_pixel_run_length": (
                    float((runs["run_length"] * runs["count"]).sum() / n_runs) if n_runs else 0.0
                ),
            }
        ]
    )


def write_table(df: pd.DataFrame, path: str | os.PathLike[str]) -> None:
    """One table as CSV (5 decimals), atomically."""
    with atomic_path(path) as tmp:
        df.to_csv(tmp, index=False, float_format="%.5f")


def cloud_statistics(
    manifest_path: str | os.PathLike[str],
    outputs: Mapping[str, str | os.PathLike[str]],
    selection: Mapping[str, Any],
) -> RegionStats:
    """Compute the statistics of one region (``selection``: the resolved ``clouds.selection``
    section) and write the tables named in ``outputs`` (keys among ``coverage``, ``runs``,
    ``tiles``, ``summary``, ``dates``), atomically."""
    stats = region_statistics(read_manifest(manifest_path), selection)
    for key, path in outputs.items():
        write_table(getattr(stats, key), path)
    return stats

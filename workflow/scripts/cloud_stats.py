"""Rule cloud_stats: coverage, run lengths, clear dates and the date selection of a region."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parents[1]))
import dask

from cloudfree.clouds.figures import (
    clear_dates_distribution,
    coverage_heatmap,
    run_length_histogram,
)
from cloudfree.clouds.region import cloud_statistics
from cloudfree.runlog import setup_script_logging

log = setup_script_logging(snakemake)
out = snakemake.output
dask.config.set(scheduler="threads", num_workers=snakemake.threads)
stats = cloud_statistics(
    snakemake.input.manifest,
    {k: out[k] for k in ("coverage", "runs", "tiles", "summary", "dates")},
    snakemake.params.clouds,  # the clouds.selection section
)
coverage_heatmap(stats.coverage, out.heatmap)
run_length_histogram(stats.runs, out.runs_plot, snakemake.wildcards.region)
clear_dates_distribution(stats.tiles, out.clear_dates_plot)
log.info("summary:\n%s", stats.summary.T.to_string())

"""Rule cloud_stats: coverage per tile and date, cloudy run lengths, coverage heat map."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parents[1]))
from cloudfree.clouds import cloud_statistics
from cloudfree.figures import coverage_heatmap
from cloudfree.runlog import setup_script_logging

log = setup_script_logging(snakemake)
table, runs = cloud_statistics(
    snakemake.input.manifest, snakemake.output.coverage, snakemake.output.runs
)
coverage_heatmap(table, snakemake.output.heatmap)
log.info("mean cloud fraction %.3f over %d tile-dates", table["cloud_fraction"].mean(), len(table))

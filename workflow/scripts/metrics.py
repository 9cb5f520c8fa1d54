"""Rule metrics: per tile, date and method metrics of a region's test tiles."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parents[1]))
from cloudfree.evaluate import region_metrics
from cloudfree.io import atomic_path
from cloudfree.plots import metric_bars
from cloudfree.runlog import setup_script_logging

log = setup_script_logging(snakemake)
table, summary = region_metrics(
    snakemake.input.h5,
    snakemake.input.predictions,
    baselines=snakemake.params.metrics["baselines"],
    experiment=snakemake.params.experiment,
)
for df, path in ((table, snakemake.output.table), (summary, snakemake.output.summary)):
    with atomic_path(path) as tmp:
        df.to_csv(tmp, index=False, float_format="%.6g")
metric_bars(summary, snakemake.output.plot)
log.info("\n%s", summary.to_string(index=False))

"""Rule metrics: per tile, date and method metrics of a region's test tiles, and figures."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parents[1]))
from cloudfree.io import atomic_path
from cloudfree.metrics.figures import error_vs_difficulty, example_reconstructions, method_bars
from cloudfree.metrics.region import example_predictions, region_metrics
from cloudfree.packed import packed_bands
from cloudfree.runlog import setup_script_logging

log = setup_script_logging(snakemake)
baselines = snakemake.params.metrics["baselines"]
table, summary = region_metrics(
    snakemake.input.h5,
    snakemake.input.predictions,
    baselines=baselines,
    experiment=snakemake.params.experiment,
)
for df, path in ((table, snakemake.output.table), (summary, snakemake.output.summary)):
    with atomic_path(path) as tmp:
        df.to_csv(tmp, index=False, float_format="%.6g")
method_bars(summary, snakemake.output.plot)
error_vs_difficulty(table, snakemake.output.difficulty)
tile, predictions = example_predictions(snakemake.input.h5, snakemake.input.predictions, baselines)
example_reconstructions(
    tile, predictions, snakemake.output.examples, bands=packed_bands(snakemake.input.h5)
)
log.info("\n%s", summary[["method", "mae_masked", "mae_masked_ci_low", "mae_masked_ci_high"]])

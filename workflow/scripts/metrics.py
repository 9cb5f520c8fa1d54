"""Rule metrics: per tile, date and method metrics of a region's test tiles and of its
evaluation scene, pooled per tile, summarised per evaluation set, and figures."""

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
inputs = snakemake.input
scene = inputs.get("inductive_h5")
table, pooled, summary = region_metrics(
    inputs.h5,
    inputs.predictions,
    baselines=baselines,
    experiment=snakemake.params.experiment,
    holdout=snakemake.params.holdout,
    inductive=(scene, inputs.inductive_predictions) if scene else None,
)
outputs = snakemake.output
for df, path in ((table, outputs.table), (pooled, outputs.pooled), (summary, outputs.summary)):
    with atomic_path(path) as tmp:
        df.to_csv(tmp, index=False, float_format="%.6g")
method_bars(summary, snakemake.output.plot)
error_vs_difficulty(table, snakemake.output.difficulty)
tile, predictions = example_predictions(snakemake.input.h5, snakemake.input.predictions, baselines)
example_reconstructions(
    tile, predictions, snakemake.output.examples, bands=packed_bands(snakemake.input.h5)
)
columns = ["evaluation", "method", "tiles", "mae_masked", "mae_masked_diff_best"]
log.info("\n%s", summary[[*columns, "mae_masked_diff_best_ci_high", "best_baseline"]])

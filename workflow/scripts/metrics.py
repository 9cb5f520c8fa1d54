"""Rule metrics: a region's tables from the scores of its runs and of the baselines, the
summary per run, the comparison of its experiments with the reference, and the figures."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parents[1]))
from cloudfree.io import atomic_path
from cloudfree.metrics.compare import compare_experiments
from cloudfree.metrics.figures import (
    error_vs_difficulty,
    example_reconstructions,
    experiment_comparison,
    method_bars,
)
from cloudfree.metrics.region import example_predictions, read_scores, region_tables
from cloudfree.packed import packed_bands
from cloudfree.runlog import setup_script_logging

log = setup_script_logging(snakemake)
inputs, params = snakemake.input, snakemake.params
baselines = read_scores(inputs.baseline_dates, inputs.baseline_pooled)
models = [read_scores(d, p) for d, p in zip(inputs.model_dates, inputs.model_pooled, strict=True)]
reference = params.runs["reference"]
table, pooled, summary = region_tables(models, baselines)
comparison = compare_experiments(
    pooled[pooled["method"] == "model"], baselines.pooled, reference=reference
)
comparison.insert(0, "region", snakemake.wildcards.region)
outputs = snakemake.output
frames = ((table, outputs.table), (pooled, outputs.pooled), (summary, outputs.summary),
          (comparison, outputs.experiments))  # fmt: skip
for df, path in frames:
    with atomic_path(path) as tmp:
        df.to_csv(tmp, index=False, float_format="%.6g")
# The figures of one model stand for the region's: its reference's first run.
first = next(run for run, exp in params.runs["runs"].items() if exp == reference)
method_bars(summary[summary["run"] == first], outputs.plot)
error_vs_difficulty(table[table["run"] == first], outputs.difficulty)
tile, predictions = example_predictions(inputs.h5, inputs.predictions, params.baselines)
example_reconstructions(tile, predictions, outputs.examples, bands=packed_bands(inputs.h5))
experiment_comparison(comparison, outputs.experiments_plot, region=snakemake.wildcards.region)
columns = ["evaluation", "method", "tiles", "mae_masked", "mae_masked_diff_best"]
log.info("\n%s", summary[summary["run"] == first][[*columns, "best_baseline"]])
log.info("\n%s", comparison[["evaluation", "experiment", "method", "mae_masked",
                             "mae_masked_diff_reference"]])  # fmt: skip

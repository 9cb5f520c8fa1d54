"""Rule score_model: one run's model scored on a region's test tiles and evaluation scene."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parents[1]))
from cloudfree.io import atomic_path
from cloudfree.metrics.region import score_model
from cloudfree.runlog import setup_script_logging

log = setup_script_logging(snakemake)
inputs = snakemake.input
scene = inputs.get("inductive_h5")
scores = score_model(
    inputs.h5,
    inputs.predictions,
    experiment=snakemake.params.experiment,
    run=snakemake.wildcards.experiment,
    holdout=snakemake.params.holdout,
    inductive=(scene, inputs.inductive_predictions) if scene else None,
)
for df, path in ((scores.dates, snakemake.output.dates), (scores.pooled, snakemake.output.pooled)):
    with atomic_path(path) as tmp:
        df.to_csv(tmp, index=False, float_format="%.6g")
log.info("%d tile-dates scored, %d pooled rows", len(scores.dates), len(scores.pooled))

"""Rule score_baselines: the baselines scored on a region's test tiles and evaluation scene,
on the same pixels as every run's model."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parents[1]))
from cloudfree.io import atomic_path
from cloudfree.metrics.region import score_baselines
from cloudfree.runlog import setup_script_logging

log = setup_script_logging(snakemake)
scores = score_baselines(
    snakemake.input.h5,
    baselines=snakemake.params.baselines,
    holdout=snakemake.params.holdout,
    inductive=snakemake.input.get("inductive_h5"),
)
for df, path in ((scores.dates, snakemake.output.dates), (scores.pooled, snakemake.output.pooled)):
    with atomic_path(path) as tmp:
        df.to_csv(tmp, index=False, float_format="%.6g")
log.info("%d tile-date-method rows scored", len(scores.dates))

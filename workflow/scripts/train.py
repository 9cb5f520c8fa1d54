"""Rule train: train one experiment's model on its regions' training tiles."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parents[1]))
import pandas as pd

from cloudfree.figures import training_curve
from cloudfree.runlog import setup_script_logging
from cloudfree.train import train_model

log = setup_script_logging(snakemake)
summary = train_model(
    list(snakemake.input.h5),
    snakemake.output.model,
    snakemake.output.history,
    dict(snakemake.params.train),
    threads=snakemake.threads,
)
training_curve(pd.read_csv(snakemake.output.history), snakemake.output.curve)
log.info("trained on %s: %s", ", ".join(snakemake.params.regions), summary)

"""Rule train: train one experiment's model on its regions' training tiles.

One process, or one per GPU (torchrun, DistributedDataParallel) when the job has more than
one GPU (resource ``gpu``, e.g. from the Slurm profile).  Resumes from
``results/models/<experiment>/checkpoints/`` after a kill or a time-out.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parents[1]))
import pandas as pd

from cloudfree.config import with_execution_settings
from cloudfree.device import require_cuda_for_gpus
from cloudfree.runlog import setup_script_logging
from cloudfree.train.curve import training_curve
from cloudfree.train.launch import launch, processes_for

log = setup_script_logging(snakemake)
params = with_execution_settings(snakemake.params.train, snakemake.config, "train")
gpus = int(getattr(snakemake.resources, "gpu", 0) or 0)
require_cuda_for_gpus(gpus, params["device"], "train.device")
summary = launch(
    list(snakemake.input.h5),
    snakemake.output.model,
    snakemake.output.history,
    params,
    threads=snakemake.threads,
    processes=processes_for(gpus, params["device"]),
)
training_curve(pd.read_csv(snakemake.output.history), snakemake.output.curve)
log.info("trained on %s: %s", ", ".join(snakemake.params.regions), summary)

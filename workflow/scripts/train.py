"""Rule train: train one run's model (an experiment, or one seed of it) on its experiment's
regions' training tiles.

One process, or one per GPU (torchrun, DistributedDataParallel) when the job has more than
one GPU (resource ``gpu``, e.g. from the Slurm profile).  Resumes from
``results/models/<run>/checkpoints/`` after a kill or a time-out; the checkpoint is
removed only once the model file, the history and the curve are all in place.  With
``tracking.mlflow`` set, the run is logged to MLflow under the run's name.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parents[1]))
from cloudfree.config import with_execution_settings
from cloudfree.device import require_cuda_for_gpus
from cloudfree.experiments import run_train
from cloudfree.runlog import setup_script_logging
from cloudfree.train.launch import processes_for, train_outputs

log = setup_script_logging(snakemake)
run = snakemake.wildcards["experiment"]
config = snakemake.config
own = {"train": run_train(config, run)} if "train" in config else {}  # its execution keys
params = with_execution_settings(snakemake.params.train, own, "train")
gpus = int(getattr(snakemake.resources, "gpu", 0) or 0)
require_cuda_for_gpus(gpus, params["device"], "train.device")
summary = train_outputs(
    list(snakemake.input.h5),
    snakemake.output.model,
    snakemake.output.history,
    snakemake.output.curve,
    params,
    threads=snakemake.threads,
    processes=processes_for(gpus, params["device"]),
    tracking=config.get("tracking", {}).get("mlflow"),
    run_name=run,
)
log.info("trained %s on %s: %s", run, ", ".join(snakemake.params.regions), summary)

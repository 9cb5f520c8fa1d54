"""Rule infer: reconstructed GeoTIFFs for every tile and date, and the evaluation file."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parents[1]))
import torch

from cloudfree.config import with_execution_settings
from cloudfree.device import require_cuda_for_gpus
from cloudfree.infer.region import infer_region
from cloudfree.runlog import setup_script_logging

log = setup_script_logging(snakemake)
torch.set_num_threads(snakemake.threads)
params = with_execution_settings(snakemake.params.infer, snakemake.config, "infer")
gpus = int(getattr(snakemake.resources, "gpu", 0) or 0)
require_cuda_for_gpus(gpus, params["device"], "infer.device")
tiles = infer_region(
    snakemake.input.model,
    snakemake.input.h5,
    snakemake.output.tiles,
    snakemake.output.evaluation,
    device=params["device"],
    compress=params["compress"],
    window=params["window"],
    overlap=params["overlap"],
    batch_size=params["batch_size"],
    amp=params["amp"],
    embeddings=params["embeddings"],
    change=params["change"],
    tags={"EXPERIMENT": snakemake.wildcards.experiment, "REGION": snakemake.wildcards.region},
)
log.info("%d tiles reconstructed", len(tiles))

# Glue: config validation, wildcard constraints and input functions.

import sys

from snakemake.utils import validate

# The library beside this workflow wins over any installed copy.
sys.path.insert(0, workflow.basedir)

from cloudfree.packed import FORMAT_VERSION as PACK_FORMAT_VERSION
from cloudfree.config import (
    check_config,
    experiment_of,
    experiment_regions,
    region_result_settings,
    result_settings,
)

validate(config, schema="../schemas/config.schema.yaml", set_default=True)
check_config(config)

REGIONS = sorted(config["regions"])


wildcard_constraints:
    region="|".join(REGIONS),
    experiment="[A-Za-z][A-Za-z0-9_]*",


def config_provider(*keys):
    """A params function that hands a rule one section of the config, and nothing more."""

    def provide(wildcards):
        value = config
        for key in keys:
            value = value[key]
        return value

    return provide


def result_config(section):
    """A params function with a config section minus its execution keys (workers,
    checkpoint interval, batch size, ...): changing those reruns nothing."""

    def provide(wildcards):
        return result_settings(config, section)

    return provide


def region_config(wildcards):
    """The config section of one region, without how its files are fetched (retries,
    timeouts, token variable): changing those refetches nothing."""
    return region_result_settings(config, wildcards.region)


def detector_config(wildcards):
    """The cloud detector's settings, for sources that come without cloud masks only: a
    detector change then reruns just the regions it applies to."""
    region = config["regions"][wildcards.region]
    source = region["source"]
    folder = region.get("folder", {})
    if source == "sen12mscrts" or (
        source == "folder"
        and not folder.get("masks")
        and not folder.get("probabilities")
    ):
        return {"detector": config["clouds"]["detector"]}
    return {}


def get_manifest(wildcards):
    """The region's tile manifest; known only once the tile checkpoint has run."""
    return checkpoints.download_tiles.get(region=wildcards.region).output.manifest


def get_experiment_h5(wildcards):
    return expand(
        "results/hdf5/{region}.h5",
        region=experiment_regions(config, wildcards.experiment),
    )


def get_experiment_regions(wildcards):
    return experiment_regions(config, wildcards.experiment)


def get_region_model(wildcards):
    return f"results/models/{experiment_of(config, wildcards.region)}/model.pt"


def get_region_predictions(wildcards):
    exp = experiment_of(config, wildcards.region)
    return f"results/predictions/{exp}/{wildcards.region}/eval.h5"


def get_region_experiment(wildcards):
    return experiment_of(config, wildcards.region)


def all_outputs():
    outputs = []
    for region in REGIONS:
        exp = experiment_of(config, region)
        outputs += [
            f"results/metrics/{region}.csv",
            f"results/metrics/{region}_summary.csv",
            f"results/cloudstats/{region}.csv",
        ]
        # SEN12MS-CR-TS ROIs lie across a continent, in several UTM zones: a region mosaic
        # would be a mostly empty raster of billions of pixels. Ask for it by name if wanted.
        if config["regions"][region]["source"] != "sen12mscrts":
            outputs.append(f"results/mosaics/{exp}/{region}")
    if len(REGIONS) > 1:
        outputs.append("results/metrics/all_regions.csv")
    return outputs

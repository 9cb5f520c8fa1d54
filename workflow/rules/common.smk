# Glue: config validation, wildcard constraints and input and params functions.

import sys

# The library beside this workflow wins over any installed copy.
sys.path.insert(0, workflow.basedir)

from cloudfree.packed import FORMAT_VERSION as PACK_FORMAT_VERSION
from cloudfree.config import (
    INDUCTIVE_SUFFIX,
    canonical,
    experiment_of,
    experiment_regions,
    inductive_regions,
    region_result_settings,
    result_settings,
)
from cloudfree.configfile import load_config_file
from cloudfree.preflight import check_workflow_config
from cloudfree.tiles.synthetic.region import evaluation_scene

# Snakemake reads its config files keeping the last of a key given twice, and a YAML alias
# bomb expands when the config is walked: each file it read is read again strictly first.
for configfile_path in workflow.configfiles:
    load_config_file(configfile_path)
# Every section checked before the first job (schema, defaults, cross-key checks, then every
# value a stage's own code reads: mosaic settings, embedding channels, training crop, sources).
check_workflow_config(config)

REGIONS = sorted(config["regions"])
# Evaluation scenes (the inductive set of synthetic regions) run the chain up to inference.
INDUCTIVE = inductive_regions(config)


wildcard_constraints:
    region="|".join(REGIONS + sorted(INDUCTIVE)),
    experiment="[A-Za-z][A-Za-z0-9_]*",


# Every params function returns its settings in canonical form (cloudfree.config.canonical,
# keys sorted): Snakemake compares params as text, so a config whose keys are only reordered
# reruns nothing.


def config_provider(*keys):
    """A params function that hands a rule one section of the config, and nothing more."""

    def provide(wildcards):
        value = config
        for key in keys:
            value = value[key]
        return canonical(value)

    return provide


def result_config(section):
    """A params function with a config section minus its execution keys (workers,
    checkpoint interval, batch size, ...): changing those reruns nothing."""

    def provide(wildcards):
        return canonical(result_settings(config, section))

    return provide


def region_section(region):
    """A region's config section; an evaluation scene's is derived from its region's."""
    if region in INDUCTIVE:
        base = INDUCTIVE[region]
        training = config["regions"][base]["synthetic"]
        others = [  # the other scenes its model trains on: none of their dates either
            config["regions"][r]["synthetic"]
            for r in experiment_regions(config, experiment_of(config, base))
            if r != base and config["regions"][r]["source"] == "synthetic"
        ]
        scene = evaluation_scene(training, config["evaluation"]["inductive"], others)
        return {"source": "synthetic", "synthetic": scene}
    return config["regions"][region]


def packing_evaluation(wildcards):
    """The evaluation settings packing uses (gaps, held-out period); not the evaluation
    scenes, which are regions of their own."""
    evaluation = config["evaluation"]
    return canonical({k: v for k, v in evaluation.items() if k != "inductive"})


def region_config(wildcards):
    """The config section of one region, without how its files are fetched (retries,
    timeouts, token variable): changing those refetches nothing."""
    if wildcards.region in INDUCTIVE:
        return canonical(region_section(wildcards.region))
    return canonical(region_result_settings(config, wildcards.region))


def detector_config(wildcards):
    """The cloud detector's settings, for sources that come without cloud masks only: a
    detector change then reruns just the regions it applies to."""
    region = region_section(wildcards.region)
    source = region["source"]
    folder = region.get("folder", {})
    if source == "sen12mscrts" or (
        source == "folder"
        and not folder.get("masks")
        and not folder.get("probabilities")
    ):
        return canonical({"detector": config["clouds"]["detector"]})
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
    return experiment_regions(config, wildcards.experiment)  # sorted


def get_region_model(wildcards):
    return f"results/models/{experiment_of(config, wildcards.region)}/model.pt"


def get_region_predictions(wildcards):
    exp = experiment_of(config, wildcards.region)
    return f"results/predictions/{exp}/{wildcards.region}/eval.h5"


def get_metrics_inputs(wildcards):
    """The region's packed file and evaluation file, and its evaluation scene's when it has
    one (the inductive set)."""
    inputs = {"h5": f"results/hdf5/{wildcards.region}.h5"}
    inputs["predictions"] = get_region_predictions(wildcards)
    scene = f"{wildcards.region}{INDUCTIVE_SUFFIX}"
    if scene in INDUCTIVE:
        exp = experiment_of(config, wildcards.region)
        inputs["inductive_h5"] = f"results/hdf5/{scene}.h5"
        inputs["inductive_predictions"] = f"results/predictions/{exp}/{scene}/eval.h5"
    return inputs


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

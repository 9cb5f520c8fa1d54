# Glue: config validation, wildcard constraints and input and params functions.

import sys
from pathlib import Path

# The checkout this file is in, also where the workflow is used as a module from elsewhere
# (snakedeploy): its library wins over any installed copy; its config/ holds the default.
CHECKOUT = Path(str(workflow.current_basedir)).parents[1]
sys.path.insert(0, str(CHECKOUT))

from cloudfree.packed import FORMAT_VERSION as PACK_FORMAT_VERSION
from cloudfree.config import schema as config_schema
from cloudfree.config import (
    INDUCTIVE_SUFFIX,
    canonical,
    inductive_regions,
    region_result_settings,
    result_settings,
)
from cloudfree.experiments import (
    RUN_PATTERN,
    experiment_of_run,
    experiment_regions,
    mosaic_runs,
    reference_of,
    region_runs,
    run_train,
    runs,
    training_partners,
)
from cloudfree.configfile import load_config_file
from cloudfree.overrides import apply_base, coerce_overrides
from cloudfree.preflight import check_workflow_config
from cloudfree.tiles.synthetic.region import evaluation_scene

# Snakemake reads its config files keeping the last of a key given twice, and a YAML alias
# bomb expands when the config is walked: each file it read is read again strictly first.
for configfile_path in workflow.configfiles:
    load_config_file(configfile_path)
# A file with `base: default` goes over the embedded default; --config strings become the
# numbers and booleans the schema asks for.
apply_base(config, CHECKOUT / "config" / "config.yaml")
coerce_overrides(config, workflow.config_settings.overwrite_config, config_schema())
# Every section checked before the first job (schema, defaults, cross-key checks, then every
# value a stage's own code reads: mosaic settings, embedding channels, training crop, sources).
check_workflow_config(config)

REGIONS = sorted(config["regions"])
# Evaluation scenes (the inductive set of synthetic regions) run the chain up to inference.
INDUCTIVE = inductive_regions(config)


wildcard_constraints:
    region="|".join(REGIONS + sorted(INDUCTIVE)),
    # a run: <experiment>, or <experiment>/seed<n> for an experiment with seeds
    experiment=RUN_PATTERN,


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


def result_config(section, drop=()):
    """A params function with a config section minus its execution keys (workers,
    checkpoint interval, batch size, ...) and the keys in ``drop``: changing those reruns
    nothing."""

    def provide(wildcards):
        settings = result_settings(config, section)
        return canonical({k: v for k, v in settings.items() if k not in drop})

    return provide


def run_train_config(wildcards):
    """The train section of one run (the global section, its experiment's overrides and
    seed), minus its execution keys: changing another experiment retrains nothing here.
    """
    train = run_train(config, wildcards.experiment)
    return canonical(result_settings({"train": train}, "train"))


def region_section(region):
    """A region's config section; an evaluation scene's is derived from its region's."""
    if region in INDUCTIVE:
        base = INDUCTIVE[region]
        training = config["regions"][base]["synthetic"]
        others = [  # the other scenes its models train on: none of their dates either
            config["regions"][r]["synthetic"]
            for r in training_partners(config, base)
            if config["regions"][r]["source"] == "synthetic"
        ]
        scene = evaluation_scene(training, config["evaluation"]["inductive"], others)
        return {"source": "synthetic", "synthetic": scene}
    return config["regions"][region]


def packing_evaluation(wildcards):
    """The evaluation settings packing uses (gaps, held-out period); not the evaluation
    scenes, which are regions of their own."""
    evaluation = config["evaluation"]
    skip = ("inductive", "reference")
    return canonical({k: v for k, v in evaluation.items() if k not in skip})


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


def reference_run(region):
    """The run whose figures stand for a region's model: its reference's first run."""
    return runs(config, reference_of(config, region))[0]


def model_score_inputs(wildcards):
    """A run's evaluation file of a region, and of its evaluation scene when it has one."""
    run, region = wildcards.experiment, wildcards.region
    inputs = {
        "h5": f"results/hdf5/{region}.h5",
        "predictions": f"results/predictions/{run}/{region}/eval.h5",
    }
    scene = f"{region}{INDUCTIVE_SUFFIX}"
    if scene in INDUCTIVE:
        inputs["inductive_h5"] = f"results/hdf5/{scene}.h5"
        inputs["inductive_predictions"] = f"results/predictions/{run}/{scene}/eval.h5"
    return inputs


def baseline_score_inputs(wildcards):
    """A region's packed file, and its evaluation scene's when it has one."""
    inputs = {"h5": f"results/hdf5/{wildcards.region}.h5"}
    scene = f"{wildcards.region}{INDUCTIVE_SUFFIX}"
    if scene in INDUCTIVE:
        inputs["inductive_h5"] = f"results/hdf5/{scene}.h5"
    return inputs


def get_metrics_inputs(wildcards):
    """The scores of every run over a region and of the baselines, and (for the example
    figure) the region's packed file and its reference run's evaluation file."""
    region = wildcards.region
    scored = region_runs(config, region)
    return {
        "h5": f"results/hdf5/{region}.h5",
        "predictions": f"results/predictions/{reference_run(region)}/{region}/eval.h5",
        "baseline_dates": f"results/metrics/{region}/baselines/dates.csv",
        "baseline_pooled": f"results/metrics/{region}/baselines/pooled.csv",
        "model_dates": [
            f"results/metrics/{region}/models/{r}/dates.csv" for r in scored
        ],
        "model_pooled": [
            f"results/metrics/{region}/models/{r}/pooled.csv" for r in scored
        ],
    }


def metrics_runs(wildcards):
    """Run -> experiment of a region, and its reference experiment."""
    region = wildcards.region
    return {
        "runs": region_runs(config, region),
        "reference": reference_of(config, region),
    }


def get_run_experiment(wildcards):
    return experiment_of_run(wildcards.experiment)


def all_outputs():
    outputs = []
    for region in REGIONS:
        outputs += [
            f"results/metrics/{region}.csv",
            f"results/metrics/{region}_summary.csv",
            f"results/metrics/{region}_experiments.csv",
            f"results/cloudstats/{region}.csv",
        ]
        # SEN12MS-CR-TS ROIs lie across a continent, in several UTM zones: a region mosaic
        # would be a mostly empty raster of billions of pixels. Ask for it by name if wanted.
        if config["regions"][region]["source"] != "sen12mscrts":
            outputs += [
                f"results/mosaics/{run}/{region}" for run in mosaic_runs(config, region)
            ]
    if len(REGIONS) > 1:
        outputs.append("results/metrics/all_regions.csv")
    return outputs

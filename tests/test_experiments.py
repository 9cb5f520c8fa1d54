"""Experiments: regions to models, runs and seeds, overrides merged and checked, the
reference and the mosaics of an ablation."""

import copy
from pathlib import Path

import pytest
from snakemake.utils import validate

from cloudfree.configfile import load_config_file
from cloudfree.errors import ConfigError
from cloudfree.experiments import (
    check_experiments,
    deep_merge,
    experiment_names,
    experiment_of_run,
    experiment_regions,
    experiments_of,
    mosaic_runs,
    reference_of,
    region_runs,
    run_train,
    runs,
    training_partners,
)
from cloudfree.preflight import check_workflow_config

REPO = Path(__file__).resolve().parents[1]
SCHEMA = str(REPO / "workflow/schemas/config.schema.yaml")


def config_with(experiments=None, **sections) -> dict:
    config = load_config_file(REPO / "config/config.yaml")
    if experiments is not None:
        config["experiments"] = experiments
    for key, value in sections.items():
        config[key] = value
    validate(config, SCHEMA, set_default=True)
    return config


ABLATION = {
    "base": {"regions": ["africa", "europa"], "seeds": [0, 1]},
    "short": {"regions": ["africa", "europa"], "train": {"sampling": {"seq_len": 6}}},
}


def test_regions_map_to_models():
    config = config_with()
    assert experiment_names(config) == ["africa", "europa"]
    assert experiments_of(config, "africa") == ["africa"]
    assert experiment_regions(config, "europa") == ["europa"]
    shared = config_with({"all": {"regions": ["europa", "africa"]}})
    assert experiments_of(shared, "africa") == ["all"]
    assert experiments_of(shared, "africa_inductive") == ["all"]  # its region's models
    assert experiment_regions(shared, "all") == ["africa", "europa"]
    assert training_partners(shared, "africa") == ["europa"]
    with pytest.raises(ConfigError, match="unknown experiment"):
        experiment_regions(shared, "africa")


def test_an_ablation_has_runs_per_seed_with_merged_settings():
    config = config_with(copy.deepcopy(ABLATION))
    check_workflow_config(config)
    assert experiment_names(config) == ["base", "short"]
    assert runs(config, "base") == ["base/seed0", "base/seed1"]
    assert runs(config, "short") == ["short"]
    assert region_runs(config, "africa") == {
        "base/seed0": "base", "base/seed1": "base", "short": "short"
    }  # fmt: skip
    assert experiment_of_run("base/seed1") == "base"
    assert experiment_regions(config, "base/seed1") == ["africa", "europa"]
    assert run_train(config, "base/seed1")["seed"] == 1
    short = run_train(config, "short")
    assert short["sampling"]["seq_len"] == 6
    # the rest of the section is the global one, nested keys included
    assert short["sampling"]["masking"] == config["train"]["sampling"]["masking"]
    assert short["seed"] == config["train"]["seed"] and short["steps"] == config["train"]["steps"]
    assert reference_of(config, "africa") == "base"  # the first experiment
    assert mosaic_runs(config, "africa") == ["base/seed0"]  # the reference's only
    with pytest.raises(ConfigError, match="not a run name"):
        run_train(config, "base/seed")


def test_deep_merge_merges_mappings_and_replaces_the_rest():
    base = {"a": {"b": 1, "c": [1, 2]}, "d": 2}
    merged = deep_merge(base, {"a": {"c": [3]}, "e": None})
    assert merged == {"a": {"b": 1, "c": [3]}, "d": 2, "e": None}
    assert base == {"a": {"b": 1, "c": [1, 2]}, "d": 2}


def test_reference_and_mosaic_experiments_are_chosen_by_name():
    config = config_with(
        copy.deepcopy(ABLATION),
        evaluation={"reference": {"africa": "short"}},
        mosaic={"experiments": ["short", "base"]},
    )
    check_experiments(config)
    assert reference_of(config, "africa") == "short"
    assert reference_of(config, "europa") == "base"
    assert mosaic_runs(config, "europa") == ["short", "base/seed0"]
    one = config_with(copy.deepcopy(ABLATION), evaluation={"reference": "short"})
    assert reference_of(one, "europa") == "short"


@pytest.mark.parametrize(
    ("experiments", "sections", "named"),
    [
        ({"all": {"regions": ["asia"]}}, {}, "experiments.all.regions: unknown region 'asia'"),
        ({"africa": {"regions": ["africa", "europa"]}}, {}, "clashes"),
        (
            {"x": {"regions": ["africa"], "train": {"sampling": {"seqlen": 6}}}},
            {},
            r"^experiments\.x\.train\.sampling: .*'seqlen' was unexpected",
        ),
        (
            {"x": {"regions": ["africa"], "train": {"lr": -1}}},
            {},
            r"^experiments\.x\.train\.lr: -1 is less than or equal",
        ),
        (ABLATION, {"evaluation": {"reference": "nope"}}, r"^evaluation\.reference: 'nope' is not"),
        (
            ABLATION,
            {"evaluation": {"reference": {"africa": "europa"}}},
            r"^evaluation\.reference\.africa: 'europa' is not an experiment",
        ),
        (ABLATION, {"mosaic": {"experiments": ["long"]}}, r"^mosaic\.experiments\[0\]: 'long'"),
    ],
)
def test_bad_experiments_name_the_key(experiments, sections, named):
    config = config_with(copy.deepcopy(experiments), **sections)
    with pytest.raises(ConfigError, match=named):
        check_workflow_config(config)


def test_an_override_is_checked_against_the_regions_tiles():
    config = config_with({"big": {"regions": ["africa"], "train": {"crop": 128}}})
    with pytest.raises(ConfigError, match=r"^experiments\.big\.train\.crop 128 is larger"):
        check_workflow_config(config)


def test_identical_experiments_are_named_in_a_warning():
    twins = copy.deepcopy(ABLATION) | {
        "again": {"regions": ["africa", "europa"], "train": {"sampling": {"seq_len": 6}}}
    }
    config = config_with(twins)
    with pytest.warns(UserWarning, match=r"experiments\.short and experiments\.again"):
        check_experiments(config)


def test_a_model_with_s1_needs_regions_with_s1():
    config = config_with({"radar": {"regions": ["africa"], "train": {"inputs": {"s1": True}}}})
    with pytest.raises(
        ConfigError, match=r"^experiments\.radar\.train\.inputs\.s1: region africa has no Sentinel"
    ):
        check_workflow_config(config)
    config = config_with({"radar": {"regions": ["africa"], "train": {"inputs": {"s1": True}}}})
    config["regions"]["africa"]["synthetic"]["s1"] = True
    check_workflow_config(config)

import copy
from pathlib import Path

import pytest
import yaml
from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

from cloudfree.config import check_config, experiment_of, experiment_regions
from cloudfree.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]
SCHEMA = str(REPO / "workflow/schemas/config.schema.yaml")


def default_config() -> dict:
    config = yaml.safe_load((REPO / "config/config.yaml").read_text())
    validate(config, SCHEMA, set_default=True)
    return config


def test_default_config_is_valid_and_filled_with_defaults():
    config = default_config()
    assert sorted(config["regions"]) == ["africa", "europa"]
    assert config["train"]["model"]["name"] == "utilise"
    assert config["mosaic"]["rule"] == "mean"
    assert config["regions"]["africa"]["synthetic"]["tile_size"] == 64
    check_config(config)


@pytest.mark.parametrize("name", sorted(p.name for p in (REPO / "config").glob("*.yaml")))
def test_every_shipped_config_is_valid(name):
    """The ready configs (sources, catalogues) pass the schema and the cross-key checks,
    and their source sections build."""
    from cloudfree.tiles.stac import StacSpec

    config = yaml.safe_load((REPO / "config" / name).read_text())
    validate(config, SCHEMA, set_default=True)
    check_config(config)
    for region in config["regions"].values():
        if region["source"] == "stac":
            StacSpec.from_dict(region["stac"])


@pytest.mark.parametrize(
    ("path", "value", "named"),
    [
        (("train", "lrr"), 0.1, "lrr"),
        (("train", "steps"), "many", "many"),
        (("regions", "africa", "synthetic", "tile_size"), -4, "-4"),
        (("regions", "africa", "source"), "dropbox", "dropbox"),
        (("pack", "compression"), "zip", "zip"),
    ],
)
def test_schema_rejects_and_names_bad_values(path, value, named):
    config = yaml.safe_load((REPO / "config/config.yaml").read_text())
    node = config
    for key in path[:-1]:
        node = node.setdefault(key, {})
    node[path[-1]] = value
    with pytest.raises(WorkflowError, match=named):
        validate(config, SCHEMA, set_default=True)


def test_empty_region_list_is_refused():
    with pytest.raises(WorkflowError):
        validate({"regions": {}}, SCHEMA, set_default=True)


def test_experiments_map_regions_to_models():
    config = default_config()
    assert experiment_of(config, "africa") == "africa"
    assert experiment_regions(config, "europa") == ["europa"]
    shared = copy.deepcopy(config)
    shared["experiments"] = {"all": {"regions": ["europa", "africa"]}}
    check_config(shared)
    assert experiment_of(shared, "africa") == "all"
    assert experiment_regions(shared, "all") == ["africa", "europa"]
    with pytest.raises(ConfigError, match="unknown experiment"):
        experiment_regions(shared, "africa")


@pytest.mark.parametrize(
    ("experiments", "named"),
    [
        ({"all": {"regions": ["asia"]}}, "experiments.all.regions: unknown region 'asia'"),
        ({"a": {"regions": ["africa"]}, "b": {"regions": ["africa"]}}, "already in"),
        ({"africa": {"regions": ["africa", "europa"]}}, "clashes"),
    ],
)
def test_inconsistent_experiments_name_the_key(experiments, named):
    config = default_config()
    config["experiments"] = experiments
    with pytest.raises(ConfigError, match=named):
        check_config(config)


def test_overlap_must_be_below_tile_size():
    config = default_config()
    config["regions"]["africa"]["synthetic"]["overlap"] = 64
    with pytest.raises(ConfigError, match=r"regions\.africa\.synthetic\.overlap"):
        check_config(config)


def test_execution_keys_leave_params_and_come_back():
    from cloudfree.config import (
        region_result_settings,
        result_settings,
        with_execution_settings,
        with_region_execution_settings,
    )

    config = default_config()
    config["train"].update(num_workers=3, lr=0.01)
    params = result_settings(config, "train")
    assert "num_workers" not in params and params["lr"] == 0.01
    assert with_execution_settings(params, config, "train") == config["train"]
    config["regions"]["x"] = {
        "source": "stac",
        "stac": {"url": "https://a", "retries": 9, "timeout": 5, "bbox": [0, 0, 1, 1]},
    }
    region = region_result_settings(config, "x")
    assert region["stac"] == {"url": "https://a", "bbox": [0, 0, 1, 1]}
    assert with_region_execution_settings(region, config, "x") == config["regions"]["x"]


@pytest.mark.parametrize("name", ["all_regions", "africa_runs", "africa_summary"])
def test_region_names_that_collide_with_outputs_are_refused(name):
    config = default_config()
    config["regions"][name] = copy.deepcopy(config["regions"]["europa"])
    with pytest.raises(ConfigError, match=rf"regions\.{name}: the name collides"):
        check_config(config)

import copy
from pathlib import Path

import pytest
import yaml
from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

from cloudfree.config import (
    check_config,
    resolve_config,
    schema,
    section,
)
from cloudfree.configfile import load_config_file
from cloudfree.errors import ConfigError
from cloudfree.preflight import check_workflow_config, embedding_width, resolve_workflow_config

REPO = Path(__file__).resolve().parents[1]
SCHEMA = str(REPO / "workflow/schemas/config.schema.yaml")


def default_config() -> dict:
    config = load_config_file(REPO / "config/config.yaml")
    validate(config, SCHEMA, set_default=True)
    return config


def test_default_config_is_valid_and_filled_with_defaults():
    config = default_config()
    assert sorted(config["regions"]) == ["africa", "europa"]
    assert config["train"]["model"]["name"] == "utilise"
    assert config["mosaic"]["rule"] == "mean"
    assert config["regions"]["africa"]["synthetic"]["tile_size"] == 64
    check_config(config)
    check_workflow_config(config)


@pytest.mark.parametrize("name", sorted(p.name for p in (REPO / "config").glob("*.yaml")))
def test_every_shipped_config_is_valid(name):
    """The ready configs (sources, catalogues) read strictly (no key twice), pass the schema
    and the cross-key checks, and their source sections build."""
    from cloudfree.tiles.stac import StacSpec

    config = load_config_file(REPO / "config" / name)
    validate(config, SCHEMA, set_default=True)
    check_workflow_config(config)
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


def test_each_synthetic_region_has_an_evaluation_scene():
    from cloudfree.config import base_region, inductive_regions, with_region_execution_settings

    config = default_config()
    assert inductive_regions(config) == {
        "africa_inductive": "africa", "europa_inductive": "europa"
    }  # fmt: skip
    assert base_region(config, "africa_inductive") == "africa"
    assert base_region(config, "africa") == "africa"
    # a scene has no fetching keys of its own
    scene = {"source": "synthetic", "synthetic": {"seed": 1011}}
    assert with_region_execution_settings(scene, config, "africa_inductive") == scene
    # real sources have none (their held-out period is the inductive set); nor when disabled
    config["regions"]["real"] = {"source": "folder", "folder": {"path": "/data"}}
    assert sorted(inductive_regions(config)) == ["africa_inductive", "europa_inductive"]
    config["evaluation"]["inductive"]["enabled"] = False
    assert inductive_regions(config) == {}
    assert base_region(config, "africa_inductive") == "africa_inductive"


def test_the_evaluation_defaults():
    evaluation = section("evaluation")
    assert evaluation["inductive"] == {
        "enabled": True, "seed_offset": 1000, "tiles_x": 6, "tiles_y": 6, "overlap": 0
    }  # fmt: skip
    assert evaluation["holdout_period"] is None
    held = section("evaluation", {"holdout_period": {"start": "2021-06-01", "end": "2021-08-31"}})
    assert held["holdout_period"] == {"start": "2021-06-01", "end": "2021-08-31"}
    with pytest.raises(ConfigError, match="holdout_period"):
        section("evaluation", {"holdout_period": {"start": "2021-06-01"}})
    with pytest.raises(ConfigError, match="seed_offset"):
        section("evaluation", {"inductive": {"seed_offset": 0}})


def test_a_section_on_its_own_is_not_checked_against_the_placeholder_region():
    """section() resolves a section beside a placeholder region and default sections: the
    checks across sections wait for a whole config (resolve_workflow_config, the workflow)."""
    composite = {"start": "2019-03-01", "end": "2019-09-30"}
    assert section("mosaic", {"composite": composite})["composite"]["start"] == "2019-03-01"
    assert section("train", {"crop": 128})["crop"] == 128
    config = default_config()
    config["mosaic"]["composite"].update(composite)
    with pytest.raises(ConfigError, match=r"^mosaic\.composite\.start: 2019-03-01 is outside"):
        resolve_workflow_config(config)
    with pytest.raises(ConfigError, match=r"^mosaic\.composite\.start: date '2019-3-1'"):
        section("mosaic", {"composite": {"start": "2019-3-1"}})  # its own checks stay


def test_the_embedding_width_is_the_networks():
    model = section("train", {"model": {"widths": [8, 24]}})["model"]
    assert embedding_width(model) == 24
    assert embedding_width({**model, "name": "utilise_reference"}) == 128  # its own widths
    assert embedding_width({**model, "name": "linear"}) is None
    config = default_config()
    config["train"]["model"]["name"] = "utilise_reference"
    config["infer"]["embeddings"] = {"enabled": True, "channels": [127]}
    check_workflow_config(config)
    config["train"].update(model={"name": "harmonic"}, crop=512)  # nothing trains: no crop
    config["infer"]["embeddings"]["enabled"] = False
    check_workflow_config(resolve_workflow_config(config))


def test_schema_errors_name_the_dotted_key():
    config = default_config()
    config["mosaic"]["composite"]["rule"] = "sum"
    with pytest.raises(ConfigError, match=r"^mosaic\.composite\.rule: 'sum' is not one of"):
        resolve_config(config)


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


@pytest.mark.parametrize(
    "name", ["all_regions", "africa_runs", "africa_summary", "africa_pooled", "africa_inductive"]
)
def test_region_names_that_collide_with_outputs_are_refused(name):
    config = default_config()
    config["regions"][name] = copy.deepcopy(config["regions"]["europa"])
    with pytest.raises(ConfigError, match=rf"regions\.{name}: the name collides"):
        check_config(config)


# --- the schema is the one place defaults and allowed values are written -------------------


def _enum(*path: str) -> list:
    node = schema()
    for key in path:
        node = node[key]
    return node["enum"] if "enum" in node else node["items"]["enum"]


def test_what_the_code_accepts_is_what_the_schema_allows():
    import hdf5plugin  # noqa: F401
    from rasterio.enums import Resampling

    from cloudfree.clouds.detector import make_detector
    from cloudfree.models.baselines import BASELINES
    from cloudfree.models.registry import MODELS
    from cloudfree.mosaic.rules import RULES
    from cloudfree.pack.writer import compression_filter

    props = schema()["properties"]
    train = props["train"]["properties"]
    assert set(MODELS) == set(
        _enum("properties", "train", "properties", "model", "properties", "name")
    )
    assert set(_enum("properties", "metrics", "properties", "baselines")) == set(BASELINES)
    assert set(RULES) == set(_enum("properties", "mosaic", "properties", "rule"))
    for key in ("embedding_rule", "change_rule"):
        assert set(_enum("properties", "mosaic", "properties", key)) == set(RULES)
    tiles = _enum("$defs", "folder", "properties", "resampling")
    assert tiles == _enum("properties", "mosaic", "properties", "resampling")
    assert all(name in Resampling.__members__ for name in tiles)
    for name in _enum("properties", "pack", "properties", "compression"):
        assert compression_filter(name, 4)
    detector = section("clouds")["detector"]
    for backend in _enum("properties", "clouds", "properties", "detector", "properties", "backend"):
        if backend != "compiled":  # compiling takes a minute (tests/clouds/test_detector.py)
            assert make_detector({**detector, "backend": backend}) is not None
    assert train["device"]["pattern"] == props["infer"]["properties"]["device"]["pattern"]


@pytest.mark.parametrize("device", ["auto", "cpu", "cuda", "cuda:0", "cuda:12", "mps"])
def test_every_device_the_schema_allows_is_understood(device, monkeypatch):
    import torch

    from cloudfree.device import select_device

    section("train", {"device": device})  # allowed by the schema
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 16)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert select_device(device, "train.device").type in ("cuda", "cpu", "mps")


@pytest.mark.parametrize("device", ["gpu", "cuda:", "cuda:x", "CPU0", "tpu"])
def test_devices_the_schema_refuses(device):
    with pytest.raises(ConfigError, match=r"^train\.device: "):
        section("train", {"device": device})


# Parameters named like a config key whose Python default is not that key's setting.
NOT_CONFIG = {
    ("cloudfree.io", "geotiff_profile", "compress"),  # tile GeoTIFFs: no config key
    ("cloudfree.bands", "band_index", "bands"),  # the L1C band order itself
    ("cloudfree.metrics.summary", "bootstrap_ci", "seed"),  # seed of the resampling
    ("cloudfree.metrics.summary", "summarise", "seed"),
    ("cloudfree.metrics.compare", "compare_experiments", "seed"),
}


def _schema_defaults() -> dict[str, list]:
    found: dict[str, list] = {}

    def walk(node: object) -> None:
        if isinstance(node, dict):
            for key, sub in node.get("properties", {}).items():
                if isinstance(sub, dict) and "default" in sub:
                    found.setdefault(key, []).append(sub["default"])
            for sub in node.values():
                walk(sub)
        elif isinstance(node, list):
            for sub in node:
                walk(sub)

    walk(schema())
    return found


def test_no_python_default_repeats_a_schema_default():
    """A library parameter named like a config key has no default equal to that key's schema
    default: the value comes from the config (the schema), never from a second copy."""
    import ast

    defaults = _schema_defaults()
    repeated = []
    for path in sorted((REPO / "cloudfree").rglob("*.py")):
        module = ".".join(path.relative_to(REPO).with_suffix("").parts)
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            a = node.args
            pairs = list(zip(a.args[len(a.args) - len(a.defaults) :], a.defaults, strict=True))
            pairs += [(k, d) for k, d in zip(a.kwonlyargs, a.kw_defaults, strict=True) if d]
            for arg, default in pairs:
                if arg.arg not in defaults or (module, node.name, arg.arg) in NOT_CONFIG:
                    continue
                try:
                    value = ast.literal_eval(default)
                except ValueError:
                    continue
                if any(value == d and value is not None for d in defaults[arg.arg]):
                    repeated.append(f"{module}.{node.name}({arg.arg}={value!r})")
    assert repeated == []

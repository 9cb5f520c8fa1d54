"""--config strings coerced to the schema's types; a partial config file over the default."""

import pytest
import yaml

from cloudfree.config import SCHEMA, schema
from cloudfree.errors import ConfigError
from cloudfree.overrides import apply_base, coerce_overrides
from tests.workflow_run import planned_jobs, snakemake, write_config

DEFAULT = SCHEMA.parents[2] / "config" / "config.yaml"


def coerce(config: dict, overrides: dict) -> dict:
    coerce_overrides(config, overrides, schema())
    return config


def test_numbers_booleans_and_null_given_as_strings_are_coerced():
    given = {
        "train": {"steps": "20", "lr": "3e-4", "amp": "false", "sampling": {"seq_len": "null"}}
    }
    out = coerce({"train": dict(given["train"], sampling={"seq_len": "null"})}, given)
    assert out["train"]["steps"] == 20 and type(out["train"]["steps"]) is int
    assert out["train"]["lr"] == pytest.approx(3e-4)
    assert out["train"]["amp"] is False
    assert out["train"]["sampling"]["seq_len"] is None


def test_strings_where_the_schema_wants_a_string_stay_strings():
    given = {"infer": {"compress": "none", "device": "cpu"}}
    out = coerce({"infer": dict(given["infer"])}, given)
    assert out["infer"] == {"compress": "none", "device": "cpu"}


def test_regions_lists_and_refs_are_followed():
    given = {
        "regions": {"africa": {"synthetic": {"n_dates": "8"}}},
        "train": {"model": {"widths": ["8", "16"]}},
    }
    config = {
        "regions": {"africa": {"source": "synthetic", "synthetic": {"n_dates": "8"}}},
        "train": {"model": {"widths": ["8", "16"]}},
    }
    out = coerce(config, given)
    assert out["regions"]["africa"]["synthetic"]["n_dates"] == 8
    assert out["train"]["model"]["widths"] == [8, 16]


def test_text_that_is_no_number_stays_for_the_schema_to_refuse():
    given = {"train": {"steps": "many", "lr": "1e-3x"}}
    out = coerce({"train": dict(given["train"])}, given)
    assert out["train"] == {"steps": "many", "lr": "1e-3x"}


def test_only_command_line_values_are_touched():
    config = {"train": {"steps": "20", "batch_size": "4"}}  # batch_size from a file
    out = coerce(config, {"train": {"steps": "20"}})
    assert out["train"] == {"steps": 20, "batch_size": "4"}


def test_base_default_merges_mappings_and_replaces_lists():
    config = {"base": "default", "train": {"steps": 5, "model": {"widths": [8, 16]}}}
    assert apply_base(config, DEFAULT)
    default = yaml.safe_load(DEFAULT.read_text())
    assert "base" not in config
    assert config["regions"] == default["regions"]
    assert config["train"]["steps"] == 5 and config["train"]["model"]["widths"] == [8, 16]
    for key, value in default.get("train", {}).items():
        if key not in ("steps", "model"):
            assert config["train"][key] == value


def test_without_base_nothing_is_merged():
    config = {"regions": {"x": {"source": "synthetic"}}}
    assert not apply_base(config, DEFAULT)
    assert config == {"regions": {"x": {"source": "synthetic"}}}


def test_unknown_base_names_the_key_and_the_allowed_values():
    with pytest.raises(ConfigError, match=r"base: 'mine'.*allowed: default"):
        apply_base({"base": "mine"}, DEFAULT)


def test_snakemake_takes_config_numbers_and_a_partial_file(tmp_path):
    """The real command line: a nested --config value over a one-key file with
    ``base: default``; the same file without it is refused with a short message."""
    path = write_config(tmp_path, {"base": "default", "train": {"steps": 7}})
    proc = snakemake(tmp_path, "-n", "--config", 'train={"steps": 20, "amp": "false"}')
    rules = {rule for rule, _ in planned_jobs(proc)}
    assert {"download_tiles", "train", "mosaic"} <= rules
    path.write_text(yaml.safe_dump({"train": {"steps": 7}}))
    alone = snakemake(tmp_path, "-n", config=path, check=False)
    assert alone.returncode != 0
    err = alone.stdout + alone.stderr
    assert "regions" in err and "base: default" in err and len(err.splitlines()) < 40

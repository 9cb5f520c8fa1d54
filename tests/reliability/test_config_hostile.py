"""Hostile configs: values only a late rule would have looked at, impossible dates, keys given
twice, alias bombs and names with a trailing newline are refused before the first job, with
a message naming the key or file; a config whose keys are only reordered reruns nothing."""

from __future__ import annotations

import copy
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from cloudfree.config import canonical, resolve_config
from cloudfree.configfile import (
    MAX_CONFIG_BYTES,
    MAX_CONFIG_VALUES,
    load_config_file,
    load_config_text,
)
from cloudfree.errors import ConfigError
from cloudfree.preflight import resolve_workflow_config
from tests.reliability.test_bad_config import set_key
from tests.workflow_run import (
    REPO,
    SNAKEMAKE,
    planned_jobs,
    snakemake,
    tiny_config,
    write_config,
)

pytestmark = pytest.mark.reliability

# A dry run that has to refuse a config ends well within this (seconds, on a slow CI runner).
DRY_RUN_TIMEOUT = 60


def dry_run(workdir: Path, *configs: Path) -> subprocess.CompletedProcess[str]:
    """``snakemake -n`` in ``workdir`` on the config files ``configs`` (none: the workflow's
    default, ``config/config.yaml`` there), stopped after :data:`DRY_RUN_TIMEOUT` seconds."""
    given = ["--configfile", *map(str, configs)] if configs else []
    cmd = [*SNAKEMAKE, "-s", str(REPO / "Snakefile"), "-d", str(workdir), *given, "-n"]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        cmd, capture_output=True, text=True, env=env, timeout=DRY_RUN_TIMEOUT, check=False
    )


def assert_refused(proc: subprocess.CompletedProcess[str], workdir: Path, message: str) -> None:
    assert proc.returncode != 0, proc.stdout
    assert message in proc.stdout + proc.stderr, proc.stderr[-3000:]
    assert not (workdir / "results").exists()
    assert not (workdir / "resources").exists()


# --- 1. every section is checked before the first job ------------------------------------

LATE_VALUES = {
    "unknown mosaic CRS": (
        ("mosaic", "crs"), "EPSG:999999", r"^mosaic\.crs: invalid CRS 'EPSG:999999'",
    ),
    "composite date that is no calendar date": (
        ("mosaic", "composite", "start"), "2021-13-01",
        r"^mosaic\.composite\.start: date '2021-13-01' is not a calendar date YYYY-MM-DD$",
    ),
    "composite date outside the data's years": (
        ("mosaic", "composite", "target"), "2031-06-01",
        r"^mosaic\.composite\.target: 2031-06-01 is outside the years of region africa's dates, "
        r"2021-01-01 to 2021-12-31 \(regions\.africa\.synthetic\.start and end\)",
    ),
    "composite period backwards": (
        ("mosaic", "composite"), {"start": "2021-09-01", "end": "2021-03-01"},
        r"^mosaic\.composite: start 2021-09-01 is after end 2021-03-01$",
    ),
    "compression level the codec lacks": (
        ("mosaic", "compress_level"), 15,
        r"^mosaic\.compress_level: 15 is outside deflate's levels 1 to 12$",
    ),
    "embedding channels above the model's width": (
        ("infer", "embeddings"), {"enabled": True, "channels": [0, 16]},
        r"^infer\.embeddings\.channels: \[16\] out of range: the embedding of train\.model "
        r"'utilise' has 16 channels \(0\.\.15\)$",
    ),
    "embeddings of a baseline": (
        ("infer", "change"), {"enabled": True},
        r"^infer\.change\.enabled: train\.model\.name 'linear' is a baseline",
    ),
    "training crop above the tile size": (
        ("train", "crop"), 48,
        r"^train\.crop 48 is larger than the 32 px tiles of region africa "
        r"\(regions\.africa\.synthetic\)$",
    ),
    "synthetic start that does not exist": (
        ("regions", "africa", "synthetic", "start"), "2021-02-30",
        r"^regions\.africa\.synthetic\.start: date '2021-02-30' is not a calendar date",
    ),
    "synthetic CRS in degrees": (
        ("regions", "africa", "synthetic", "crs"), "EPSG:4326",
        r"^regions\.africa\.synthetic\b.*'crs' must be a projected",
    ),
    "held-out period backwards": (
        ("evaluation", "holdout_period"), {"start": "2021-08-01", "end": "2021-06-01"},
        r"^evaluation\.holdout_period\.end: 2021-06-01 is before evaluation\.holdout_period\.start",
    ),
}  # fmt: skip


def _late_config(case: str) -> dict[str, Any]:
    """The tiny config with the value of ``LATE_VALUES[case]``."""
    path, value, _ = LATE_VALUES[case]
    config = tiny_config()
    if case == "embeddings of a baseline":
        config["train"]["model"]["name"] = "linear"
    for depth in range(1, len(path)):  # the sections the tiny config leaves to the defaults
        if path[depth - 1] not in _node(config, path[: depth - 1]):
            set_key(config, path[:depth], {})
    return set_key(config, path, value)


def _node(config: dict[str, Any], path: tuple[str, ...]) -> dict[str, Any]:
    for key in path:
        config = config[key]
    return config


@pytest.mark.parametrize("case", sorted(LATE_VALUES))
def test_a_value_a_late_rule_reads_is_refused_with_the_config(case: str) -> None:
    with pytest.raises(ConfigError, match=LATE_VALUES[case][2]):
        resolve_workflow_config(_late_config(case))


@pytest.mark.e2e
@pytest.mark.parametrize(
    ("case", "message"),
    [("unknown mosaic CRS", "mosaic.crs: invalid CRS 'EPSG:999999'"),
     ("composite date outside the data's years", "mosaic.composite.target: 2031-06-01 is outside"),
     ("embedding channels above the model's width", "infer.embeddings.channels: [16] out of")],
)  # fmt: skip
def test_the_workflow_refuses_it_before_training(tmp_path: Path, case: str, message: str):
    config = write_config(tmp_path, _late_config(case))
    assert_refused(dry_run(tmp_path, config), tmp_path, message)


# --- 2. change-map dates ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pairs", "message"),
    [
        ([["2021-02-30", "2021-03-10"]],
         r"^infer\.change\.pairs\[0\]: date '2021-02-30' is not a calendar date YYYY-MM-DD$"),
        ([["2021-03-01", "2021-03-10"], ["2021-04-31", "2021-05-10"]],
         r"^infer\.change\.pairs\[1\]: date '2021-04-31' is not a calendar date"),
        ([["2021-05-01", "2021-04-01"]],
         r"^infer\.change\.pairs\[0\]: \[2021-05-01, 2021-04-01\] is not \[earlier, later\]$"),
        ([["2021-05-01", "2022-04-01"]],
         r"^infer\.change\.pairs\[0\]: 2022-04-01 is outside the years of region africa's"),
    ],
)  # fmt: skip
def test_change_map_dates_that_do_not_exist_are_refused(pairs: list, message: str) -> None:
    config = tiny_config()
    config["infer"] = {"change": {"enabled": True, "pairs": pairs}}
    with pytest.raises(ConfigError, match=message):
        resolve_config(config)
    config["infer"]["change"]["enabled"] = False  # not written, still not silently kept
    with pytest.raises(ConfigError, match=message):
        resolve_config(config)


# --- 3. a key given twice -----------------------------------------------------------------

TWICE = """\
regions:
  africa:
    source: synthetic
train:
  steps: 30
  batch_size: 2
  steps: 3000
"""


def test_a_duplicate_key_names_the_file_key_and_line(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(TWICE)
    with pytest.raises(ConfigError) as err:
        load_config_file(path)
    assert str(err.value) == (
        f"{path}: line 7: duplicate key 'train.steps' (first on line 5); give each key once"
    )
    with pytest.raises(ConfigError, match=r"x\.yaml: line 1: duplicate key 'a'"):
        load_config_text("{a: 1, a: 2}", "x.yaml")
    with pytest.raises(ConfigError, match=r"^x\.json: duplicate key 'a'"):
        load_config_text('{"a": 1, "b": {}, "a": 2}', "x.json")
    # a merge key is no duplicate: the keys beside it override the merged ones
    text = "base: &b {x: 1, y: 2}\nr:\n  <<: *b\n  x: 3\n"
    assert load_config_text(text, "x.yaml")["r"] == {"x": 3, "y": 2}


@pytest.mark.e2e
def test_the_workflow_refuses_a_duplicate_key_in_any_config_file(tmp_path: Path) -> None:
    config = write_config(tmp_path, tiny_config())
    overlay = tmp_path / "overlay.yaml"
    overlay.write_text("mosaic:\n  rule: max\n  compress: zstd\n  rule: min\n")
    proc = dry_run(tmp_path, config, overlay)
    message = f"{overlay}: line 4: duplicate key 'mosaic.rule' (first on line 2)"
    assert_refused(proc, tmp_path, message)
    # the workflow's own default config file, read without --configfile
    default = tmp_path / "default"
    (default / "config").mkdir(parents=True)
    (default / "config" / "config.yaml").write_text(TWICE)
    message = "config/config.yaml: line 7: duplicate key 'train.steps' (first on line 5)"
    assert_refused(dry_run(default), default, message)


# --- 4. an alias bomb, a huge file ----------------------------------------------------------


def _bomb(levels: int = 10) -> str:
    """A "billion laughs": 9 ** levels strings from a few hundred bytes."""
    lines = ["lol:", '  a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for i in range(1, levels):
        lines.append(f"  a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]")
    lines += ["regions:", "  africa:", "    source: synthetic", "metrics:",
              f"  baselines: *a{levels - 1}"]  # fmt: skip
    return "\n".join(lines) + "\n"


def test_an_alias_bomb_is_refused_before_it_is_walked(tmp_path: Path) -> None:
    path = tmp_path / "bomb.yaml"
    path.write_text(_bomb())
    with pytest.raises(ConfigError, match=rf"^{path}: more than {MAX_CONFIG_VALUES} values"):
        load_config_file(path)
    with pytest.raises(ConfigError, match=r"^x\.yaml: line 1: a\[0\] contains itself$"):
        load_config_text("a: &x [*x]\n", "x.yaml")
    big = tmp_path / "big.yaml"
    big.write_text("regions: {}\n" + "#" * MAX_CONFIG_BYTES)
    with pytest.raises(ConfigError, match=rf"^{big}: larger than {MAX_CONFIG_BYTES} bytes"):
        load_config_file(big)
    # anchors and aliases as configs use them stay fine
    shared = "d: &d {source: synthetic}\nregions: {a: *d, b: *d}\n"
    assert load_config_text(shared, "x.yaml")["regions"]["b"] == {"source": "synthetic"}


@pytest.mark.e2e
def test_a_dry_run_of_an_alias_bomb_ends_with_the_error(tmp_path: Path) -> None:
    path = tmp_path / "bomb.yaml"
    path.write_text(_bomb())
    proc = dry_run(tmp_path, path)  # TimeoutExpired: it walked the bomb
    assert_refused(proc, tmp_path, f"{path}: more than {MAX_CONFIG_VALUES} values")


# --- 5. region and experiment names -------------------------------------------------------


@pytest.mark.parametrize(
    ("section", "name", "message"),
    [
        ("regions", "africa\n", r"^regions: region name 'africa\\n' is not allowed \(letters"),
        ("regions", "a" * 200, r"^regions: region name 'a{200}' is not allowed"),
        ("experiments", "shared\n", r"^experiments: experiment name 'shared\\n' is not allowed"),
        ("experiments", "s" * 129, r"^experiments: experiment name 's{129}' is not allowed"),
    ],
)
def test_names_with_a_newline_or_too_long_are_refused(section: str, name: str, message: str):
    config = tiny_config()
    if section == "regions":
        config["regions"][name] = config["regions"].pop("africa")
    else:
        config["experiments"] = {name: {"regions": ["africa", "europa"]}}
    with pytest.raises(ConfigError, match=message):
        resolve_config(config)


@pytest.mark.e2e
def test_the_workflow_refuses_a_name_with_a_newline(tmp_path: Path) -> None:
    config = tiny_config()
    config["regions"]["africa\n"] = config["regions"].pop("africa")
    proc = dry_run(tmp_path, write_config(tmp_path, config))
    assert_refused(proc, tmp_path, "regions: region name 'africa\\n' is not allowed")
    assert "Traceback" not in proc.stderr


# --- 6. a config with its keys reordered ----------------------------------------------------


def reversed_keys(value: Any) -> Any:
    """``value`` with the keys of every mapping in reverse order."""
    if isinstance(value, dict):
        return {k: reversed_keys(v) for k, v in reversed(list(value.items()))}
    if isinstance(value, list):
        return [reversed_keys(v) for v in value]
    return value


def test_canonical_sorts_every_mapping_and_keeps_lists() -> None:
    value = {"b": [{"y": 1, "x": 2}, 3], "a": {"d": None, "c": (2, 1)}}
    assert repr(canonical(value)) == "{'a': {'c': (2, 1), 'd': None}, 'b': [{'x': 2, 'y': 1}, 3]}"
    assert repr(canonical(reversed_keys(value))) == repr(canonical(value))
    assert canonical({1: "a", "1": "b"}) == {1: "a", "1": "b"}  # keys of two types


@pytest.mark.e2e
def test_a_config_with_its_keys_reordered_reruns_nothing(tmp_path: Path) -> None:
    config = tiny_config()
    targets = ["results/hdf5/africa.h5", "results/hdf5/africa_inductive.h5"]
    write_config(tmp_path, config)
    snakemake(tmp_path, "-c", "2", *targets)
    # the same values, every mapping in reverse order, the defaults written out
    write_config(tmp_path, reversed_keys(resolve_config(copy.deepcopy(config))))
    proc = snakemake(tmp_path, "-n", *targets)
    assert "Nothing to be done" in proc.stdout + proc.stderr, proc.stdout[-3000:]
    assert planned_jobs(proc) == []
    # a changed value still reruns what depends on it
    config["clouds"] = {"selection": {"mask_max": 0.3}}
    write_config(tmp_path, reversed_keys(config))
    proc = snakemake(tmp_path, "-n", *targets)
    assert {rule for rule, _ in planned_jobs(proc)} >= {"cloud_stats", "pack_hdf5"}

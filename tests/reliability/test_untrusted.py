"""Untrusted files and names: no pickled code runs, no name escapes the output folders,
no config value or file name reaches a shell."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest
import torch

from cloudfree.errors import InputDataError, ModelFileError
from cloudfree.manifest import validate_manifest
from cloudfree.modelfile import read_model_file

pytestmark = pytest.mark.reliability
REPO = Path(__file__).resolve().parents[2]


class Payload:
    """Unpickling this would run code: ``torch.load(weights_only=False)`` would call exit."""

    def __reduce__(self):
        return (exec, ("import os; os._exit(13)",))


def test_a_model_file_with_pickled_code_is_refused_without_running_it(tmp_path):
    path = tmp_path / "model.pt"
    torch.save({"format_version": 1, "model": Payload(), "state_dict": {}}, path)
    with pytest.raises(ModelFileError, match=r"model\.pt"):
        read_model_file(path)


def test_every_torch_load_in_the_library_is_weights_only():
    for source in sorted((REPO / "cloudfree").rglob("*.py")):
        for call in re.findall(r"torch\.load\([^)]*\)", source.read_text(), flags=re.S):
            assert "weights_only=True" in call, f"{source}: {call}"


@pytest.mark.parametrize("tile", ["../../etc", "a/b", "..", "tile name", "x;rm -rf ~"])
def test_tile_ids_that_could_leave_the_output_folder_are_refused(tile):
    row = {
        "region": "r", "source": "folder", "tile": tile, "date": "2021-01-01",
        "split": "train", "image": "a.tif", "mask": "m.tif", "crs": "EPSG:32632",
        "left": 0.0, "bottom": 0.0, "right": 1.0, "top": 1.0, "width": 1, "height": 1,
    }  # fmt: skip
    with pytest.raises(InputDataError, match="tile id"):
        validate_manifest(pd.DataFrame([row]))


@pytest.mark.parametrize("date", ["2021-1-1", "../2021-01-01", "2021-01-01; ls", "20210101"])
def test_dates_that_are_not_iso_are_refused(date):
    row = {
        "region": "r", "source": "folder", "tile": "t1", "date": date,
        "split": "train", "image": "a.tif", "mask": "m.tif", "crs": "EPSG:32632",
        "left": 0.0, "bottom": 0.0, "right": 1.0, "top": 1.0, "width": 1, "height": 1,
    }  # fmt: skip
    with pytest.raises(InputDataError, match="date"):
        validate_manifest(pd.DataFrame([row]))


@pytest.fixture(scope="module")
def workflow():
    """The workflow as Snakemake parses it, on the embedded default config (no job runs)."""
    from snakemake.api import SnakemakeApi
    from snakemake.settings.types import (
        ConfigSettings,
        OutputSettings,
        ResourceSettings,
        StorageSettings,
    )

    with SnakemakeApi(OutputSettings()) as api:
        yield api.workflow(
            resource_settings=ResourceSettings(),
            config_settings=ConfigSettings(),
            storage_settings=StorageSettings(),
            snakefile=REPO / "Snakefile",
            workdir=REPO,
        )._workflow


# the report's pages: one script per kind of page
SHARED_SCRIPTS = {
    **{f"report_{kind}_tables": "report_tables" for kind in ("cloud", "metrics", "metrics_all")},
    **{f"settings_{kind}": "settings" for kind in ("region", "experiment", "workflow")},
}


def test_every_rule_runs_a_script_and_nothing_reaches_a_shell(workflow):
    """No `shell:` or `run:` rule: config values and file names reach only Python scripts, as
    snakemake.params/input, never a command line."""
    rules = {r.name: r for r in workflow.rules}
    assert {"download_tiles", "pack_hdf5", "train", "infer", "metrics"} <= set(rules)
    for name, rule in rules.items():
        assert rule.shellcmd is None, f"rule {name} has a shell command"
        assert not rule.is_run, f"rule {name} has a run: block"
        if name != "all":  # a script named after its rule, or one shared by a family
            script = SHARED_SCRIPTS.get(name, name)
            assert rule.script and rule.script.endswith(f"scripts/{script}.py"), name


@pytest.mark.parametrize(
    "target",
    [
        "results/metrics/mars.csv",  # no such region
        "results/metrics/x/africa.csv",
        "results/metrics/../africa.csv",
        "results/hdf5/africa/../../europa.h5",
        "results/models/../../etc/model.pt",
        "results/models/a b/model.pt",
        "results/models/1abc/model.pt",
        "results/predictions/africa/../europa/eval.h5",
        "resources/tiles/africa;ls",
    ],
)
def test_no_rule_makes_a_path_outside_the_configured_names(workflow, target):
    assert [r.name for r in workflow.rules if r.is_producer(target)] == []


def test_the_configured_names_are_what_the_rules_make(workflow):
    made = {
        "results/metrics/africa.csv": "metrics",
        "results/hdf5/europa.h5": "pack_hdf5",
        "results/models/africa/model.pt": "train",
        "results/predictions/africa/africa/eval.h5": "infer",
    }
    for target, rule in made.items():
        assert [r.name for r in workflow.rules if r.is_producer(target)] == [rule]

"""Untrusted files and names: no pickled code runs, no name escapes the output folders,
no config value or file name reaches a shell."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest
import torch

from cloudfree.errors import InputDataError, ModelFileError
from cloudfree.infer.predictor import load_model
from cloudfree.manifest import validate_manifest

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
        load_model(path)


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


SAFE_SHELL = re.compile(
    r"\{(?:input|output|log|params)(?:\.\w+|\[\d+\])?:q\}|\{threads\}|\{resources\.\w+\}"
)


def test_no_config_value_or_file_name_reaches_a_shell_unquoted():
    """Rules run Python scripts; a `shell:` rule may only use quoted ({x:q}) placeholders."""
    for smk in sorted((REPO / "workflow/rules").glob("*.smk")):
        text = smk.read_text()
        assert "run:" not in text, f"{smk}: `run:` blocks are not used in rules"
        for block in re.findall(r"shell:\s*\n((?:\s{8}.*\n)+)", text):
            for placeholder in re.findall(r"\{[^{}]*\}", SAFE_SHELL.sub("", block)):
                pytest.fail(f"{smk.name}: unquoted shell placeholder {placeholder}")


def test_wildcards_are_constrained_to_strict_patterns():
    common = (REPO / "workflow/rules/common.smk").read_text()
    assert re.search(r'region="\|"\.join\(REGIONS\)', common)  # only configured region names
    assert 'experiment="[A-Za-z][A-Za-z0-9_]*"' in common

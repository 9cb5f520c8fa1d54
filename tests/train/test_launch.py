"""Tests of cloudfree.train.launch: the torchrun launcher and the command line."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from cloudfree.modelfile import read_model_file
from cloudfree.train.launch import launch, main, processes_for

Params = Callable[..., dict[str, Any]]


def test_torchrun_launcher_on_cpu(small_packed: Path, tiny_params: Params, tmp_path: Path) -> None:
    params = tiny_params(steps=6, warmup_steps=1, val_every=3)
    summary = launch([small_packed], tmp_path / "m.pt", tmp_path / "h.csv", params, threads=2,
                     processes=2)  # fmt: skip
    assert summary["world_size"] == 2 and summary["rank"] == 0
    assert read_model_file(tmp_path / "m.pt")[1]["world_size"] == 2
    assert (tmp_path / "h.csv").is_file()


def test_processes_for() -> None:
    assert processes_for(0, "auto") == 1 and processes_for(4, "cpu") == 1


def test_the_command_line_resolves_its_params(small_packed: Path, tmp_path: Path) -> None:
    params = {"model": {"widths": [4, 8], "heads": 2}, "steps": 2, "crop": 8, "device": "cpu",
              "tensorboard": False}  # fmt: skip
    argv = ["--h5", str(small_packed), "--model", str(tmp_path / "m.pt"), "--history",
            str(tmp_path / "h.csv"), "--params", json.dumps(params),
            "--summary", str(tmp_path / "s.json")]  # fmt: skip
    assert main(argv) == 0
    saved = read_model_file(tmp_path / "m.pt")[1]["params"]
    assert saved["steps"] == 2 and saved["batch_size"] == 4  # the schema's default
    assert json.loads((tmp_path / "s.json").read_text())["steps"] == 2


def test_the_command_line_refuses_bad_params(
    small_packed: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    argv = ["--h5", str(small_packed), "--model", str(tmp_path / "m.pt"), "--history",
            str(tmp_path / "h.csv"), "--params", json.dumps({"stepz": 2})]  # fmt: skip
    assert main(argv) == 1
    assert "stepz" in caplog.text and not (tmp_path / "m.pt").exists()

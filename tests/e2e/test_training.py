"""Training survives a kill: the real snakemake command is killed mid-training, run again,
and the train rule resumes from its checkpoint instead of step 0."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pandas as pd
import pytest
import torch

from ..workflow_run import REPO, SNAKEMAKE, snakemake, tiny_config, write_config

pytestmark = pytest.mark.e2e

TARGET = "results/models/africa/model.pt"


def _wait_for_checkpoint(proc: subprocess.Popen[bytes], state: Path, timeout: float) -> int:
    """Step of the first checkpoint the running workflow writes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"snakemake ended (code {proc.returncode}) before a checkpoint")
        if state.is_file():
            try:
                return int(torch.load(state, weights_only=True)["step"])
            except Exception:  # replaced between is_file and load: try again
                pass
        time.sleep(0.05)
    raise AssertionError(f"no checkpoint {state} within {timeout} s")


def test_killed_training_resumes_from_its_checkpoint(tmp_path: Path) -> None:
    config = write_config(
        tmp_path, tiny_config(steps=150, checkpoint_every=10, val_every=50, patience=0)
    )
    cmd = [
        *SNAKEMAKE, "-s", str(REPO / "Snakefile"), "-d", str(tmp_path),
        "--configfile", str(config), "-c1", TARGET,
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        cmd, env=env, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    state = tmp_path / "results/models/africa/checkpoints/state.pt"
    try:
        killed_at = _wait_for_checkpoint(proc, state, timeout=600)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # snakemake and its job, like a lost node
        proc.wait()
    assert killed_at >= 10
    assert not (tmp_path / TARGET).exists()
    assert state.is_file()  # not a declared output: survives the failed job

    snakemake(tmp_path, "--unlock")
    snakemake(tmp_path, "-c1", "--rerun-incomplete", TARGET)
    log = (tmp_path / "results/logs/train/africa.log").read_text()
    resumed = re.search(r"resumed from step (\d+)", log)
    assert resumed, log[-3000:]
    assert int(resumed.group(1)) >= killed_at > 0
    history = pd.read_csv(tmp_path / "results/models/africa/history.csv")
    assert list(history["step"]) == list(range(1, 151))  # rows of both runs, no gap
    blob = torch.load(tmp_path / TARGET, weights_only=True)
    assert blob["steps_done"] == 150 and blob["bands"] and blob["norm"]["mean"]
    assert not state.exists()  # finished: no resumable state left
    assert (tmp_path / "results/models/africa/checkpoints/last_model.pt").is_file()
    assert list((tmp_path / "results/models/africa/tensorboard").glob("events.out.tfevents.*"))

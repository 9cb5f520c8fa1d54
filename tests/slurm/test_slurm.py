"""The tiny workflow through `snakemake --profile profiles/slurm` on a real Slurm.

Needs a running Slurm with partitions `cpu` and `gpu` and one declared GPU, as
`tests/slurm/slurm_local.sh start` sets up on localhost (`.ci/run` does). Skipped where no
Slurm answers, unless CLOUDFREE_REQUIRE_SLURM=1 (CI), where that is a failure.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from cloudfree.config import section

from ..workflow_run import REPO, tiny_config, write_config

pytestmark = pytest.mark.slurm
PROFILE = REPO / "profiles/slurm/config.yaml"
GPU_RULES = {"train", "infer"}


def slurm_answers() -> bool:
    if shutil.which("sbatch") is None:
        return False
    return subprocess.run(["scontrol", "ping"], capture_output=True).returncode == 0


@pytest.fixture(scope="module", autouse=True)
def slurm() -> None:
    if not slurm_answers():
        if os.environ.get("CLOUDFREE_REQUIRE_SLURM") == "1":
            pytest.fail("no Slurm answers: run `bash tests/slurm/slurm_local.sh start` first")
        pytest.skip("no Slurm on this machine (bash tests/slurm/slurm_local.sh start)")


def resized_profile(tmp_path: Path) -> Path:
    """The project's Slurm profile, resized to the one 2-core test node; nothing else changes."""
    profile = yaml.safe_load(PROFILE.read_text())
    profile["slurm-init-seconds-before-status-checks"] = 2
    profile["seconds-between-status-checks"] = 3
    profile["retries"] = 0
    profile["default-resources"].update(mem_mb=1000, cpus_per_task=1, runtime=10)
    profile["set-threads"] = dict.fromkeys(profile["set-threads"], 1)
    for rule in profile["set-resources"].values():
        rule.update(mem_mb=2000, cpus_per_task=1, runtime=20)
    folder = tmp_path / "profile"
    folder.mkdir()
    (folder / "config.yaml").write_text(yaml.safe_dump(profile))
    return folder


def run_on_slurm(workdir: Path, profile: Path) -> subprocess.CompletedProcess[str]:
    cmd = [
        "timeout", "-s", "INT", "900", sys.executable, "-m", "snakemake",
        "--profile", str(profile), "-s", str(REPO / "Snakefile"), "-d", str(workdir),
        "--configfile", str(workdir / "config.yaml"), "--verbose",
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=960)


def sbatch_calls(proc: subprocess.CompletedProcess[str]) -> dict[str, list[str]]:
    """The sbatch command lines the executor ran, by rule."""
    calls: dict[str, list[str]] = {}
    for line in (proc.stdout + proc.stderr).splitlines():
        found = re.search(r"sbatch call: .*--comment '?rule_(\w+?)(?:_wildcards_|'|\s)", line)
        if found:
            calls.setdefault(found.group(1), []).append(line.split("--wrap", 1)[0])
    return calls


def test_workflow_runs_through_sbatch_and_fails_loudly(tmp_path):
    profile = resized_profile(tmp_path)
    workdir = tmp_path / "run"
    # The test node's GPU is declared, not real: train and infer are told to use the CPU (with
    # `auto`, a GPU job that sees no CUDA stops instead of quietly running on the CPU).
    config = tiny_config(device="cpu")
    config["infer"] = {"device": "cpu"}
    # The evaluation scenes run the same rules (tests/e2e/test_workflow.py): not twice here.
    config["evaluation"] = {**config.get("evaluation", {}), "inductive": {"enabled": False}}
    write_config(workdir, config)
    proc = run_on_slurm(workdir, profile)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]

    calls = sbatch_calls(proc)
    chain = {"download_tiles", "cloud_stats", "pack_hdf5", "train", "infer", "mosaic",
             "score_model", "score_baselines", "metrics"}  # fmt: skip
    assert set(calls) == chain  # metrics_all, a table concatenation, runs locally
    # one job per region
    assert {rule: len(lines) for rule, lines in calls.items()} == dict.fromkeys(chain, 2)
    assert (workdir / "results/metrics/all_regions.csv").stat().st_size > 0
    for rule, lines in calls.items():
        for line in lines:
            if rule in GPU_RULES:
                assert "--gpus=1" in line or "--gpus 1" in line, line
                assert "-p gpu" in line or "--partition gpu" in line or "-p 'gpu'" in line, line
            else:
                assert "--gpus" not in line and "--gres" not in line, line

    metrics = pd.read_csv(workdir / "results/metrics/africa.csv")
    assert set(metrics["method"]) == {"model", *section("metrics")["baselines"]}
    assert metrics["mae_masked"].dropna().between(0, 1).all()
    assert (workdir / "results/mosaics/europa/europa").is_dir()

    # A job that fails on the node makes the whole run fail: with `device: auto` a GPU job
    # whose torch sees no CUDA stops with a message instead of training on the CPU.
    write_config(workdir, tiny_config())
    failed = run_on_slurm(workdir, profile)
    assert failed.returncode != 0
    assert "train" in failed.stdout + failed.stderr
    log = (workdir / "results/logs/train/africa.log").read_text()
    assert "given 1 GPU(s)" in log and "sees no CUDA device" in log and "train.device: cpu" in log

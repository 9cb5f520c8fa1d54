"""Two `snakemake` runs on one directory: the second is refused, the first is unharmed."""

import os
import subprocess
import time

import pytest
import torch

from tests.workflow_run import REPO, SNAKEMAKE, snakemake, tiny_config, write_config

pytestmark = [pytest.mark.reliability, pytest.mark.e2e]


def test_second_run_on_the_same_directory_is_refused(tmp_path):
    config = tiny_config(steps=600)  # long enough to still run when the second one starts
    del config["regions"]["europa"]
    write_config(tmp_path, config)
    target = "results/models/africa/model.pt"
    cmd = [
        *SNAKEMAKE, "-s", str(REPO / "Snakefile"), "-d", str(tmp_path),
        "--configfile", str(tmp_path / "config.yaml"), "-c1", target,
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    first = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
    )
    locks = tmp_path / ".snakemake" / "locks"
    deadline = time.monotonic() + 120
    while not (locks.is_dir() and any(locks.iterdir())):
        assert first.poll() is None, f"first run ended before it locked:\n{first.stdout.read()}"
        assert time.monotonic() < deadline, "first run never took its lock"
        time.sleep(0.05)

    second = snakemake(tmp_path, "-c1", target, check=False)
    out, _ = first.communicate(timeout=600)

    assert second.returncode != 0
    assert "cannot be locked" in second.stdout + second.stderr
    assert first.returncode == 0, out[-3000:]
    model = torch.load(tmp_path / target, weights_only=True)
    assert model["bands"] and model["state_dict"]
    assert not locks.exists() or not any(locks.iterdir())  # the first run released its lock

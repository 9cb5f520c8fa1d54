"""kill -9 of each long rule mid-way, then a rerun: nothing from the killed run is taken as
complete, the workflow finishes, and the results equal those of an uninterrupted run."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import h5py
import hdf5plugin  # noqa: F401  (packed files may use Blosc)
import numpy as np
import pandas as pd
import pytest
import rasterio

from tests.workflow_run import REPO, SNAKEMAKE, snakemake, tiny_config, write_config

pytestmark = [pytest.mark.reliability, pytest.mark.e2e]

REGION = "africa"


def one_region_config() -> dict:
    config = tiny_config(steps=60)
    del config["regions"]["europa"]
    # A little more work than the smallest config, so every rule runs long enough to be caught.
    config["regions"][REGION]["synthetic"].update(tiles_y=2, tile_size=48, n_dates=10)
    return config


# rule -> (target, glob of what the rule has written while it is still running)
RULES = {
    "download_tiles": (f"results/tiles/{REGION}.csv", f"resources/tiles/.{REGION}.*/**/*.tif"),
    "pack_hdf5": (f"results/hdf5/{REGION}.h5", f"results/hdf5/.{REGION}.h5.*"),
    "train": (f"results/models/{REGION}/model.pt", f"results/models/{REGION}/checkpoints/*"),
    "infer": (
        f"results/predictions/{REGION}/{REGION}/eval.h5",
        f"results/predictions/{REGION}/{REGION}/.*.tmp-*",
    ),
    "mosaic": (f"results/mosaics/{REGION}/{REGION}", f"results/mosaics/{REGION}/.{REGION}.*"),
}  # fmt: skip
FINAL = [RULES["mosaic"][0], RULES["infer"][0], RULES["pack_hdf5"][0], RULES["download_tiles"][0]]


def start(workdir: Path, target: str) -> subprocess.Popen[str]:
    cmd = [
        *SNAKEMAKE, "-s", str(REPO / "Snakefile"), "-d", str(workdir),
        "--configfile", str(workdir / "config.yaml"), "-c1", target,
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
        start_new_session=True,
    )  # fmt: skip


def kill_when(proc: subprocess.Popen[str], workdir: Path, pattern: str) -> None:
    """SIGKILL the run (snakemake and its jobs) as soon as ``pattern`` matches a file."""
    deadline = time.monotonic() + 600
    while not any(workdir.glob(pattern)):
        if proc.poll() is not None:
            pytest.fail(f"the run ended before {pattern} appeared:\n{proc.stdout.read()[-3000:]}")
        assert time.monotonic() < deadline
        time.sleep(0.005)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)


def same_tree(a: Path, b: Path) -> None:
    """Outputs of two runs hold the same data (rasters, HDF5 datasets and tables)."""
    if a.is_dir():
        names = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
        assert names == sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
        for name in names:
            same_tree(a / name, b / name)
    elif a.suffix == ".tif":
        with rasterio.open(a) as fa, rasterio.open(b) as fb:
            assert fa.crs == fb.crs and fa.transform == fb.transform
            np.testing.assert_array_equal(fa.read(), fb.read(), err_msg=str(a))
    elif a.suffix == ".h5":
        with h5py.File(a) as fa, h5py.File(b) as fb:
            fa.visititems(lambda name, obj: _same_dataset(name, obj, fb))
    elif a.suffix == ".csv":
        da, db = pd.read_csv(a), pd.read_csv(b)
        pd.testing.assert_frame_equal(da.drop(columns=_paths(da)), db.drop(columns=_paths(db)))


def _paths(df: pd.DataFrame) -> list[str]:
    return [c for c in df.columns if c in ("image", "mask", "probability", "s1")]


def _same_dataset(name: str, obj: object, other: h5py.File) -> None:
    if isinstance(obj, h5py.Dataset):
        np.testing.assert_array_equal(obj[()], other[name][()], err_msg=name)


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Path:
    workdir = tmp_path_factory.mktemp("uninterrupted")
    write_config(workdir, one_region_config())
    snakemake(workdir, "-c1", *FINAL)
    return workdir


@pytest.mark.parametrize("rule", list(RULES))
def test_kill_9_then_rerun_completes_with_the_same_results(tmp_path, reference, rule):
    target, pattern = RULES[rule]
    write_config(tmp_path, one_region_config())
    kill_when(start(tmp_path, target), tmp_path, pattern)

    assert not (tmp_path / target).exists(), f"{target} exists after {rule} was killed"
    # A killed Snakemake cannot release its lock: the user unlocks, then reruns.
    locked = snakemake(tmp_path, "-c1", *FINAL, check=False)
    assert locked.returncode != 0 and "cannot be locked" in locked.stdout + locked.stderr
    snakemake(tmp_path, "--unlock")
    proc = snakemake(tmp_path, "-c1", "--rerun-incomplete", *FINAL)
    assert rule in proc.stdout + proc.stderr  # the killed rule ran again

    if rule == "train":
        log = (tmp_path / f"results/logs/train/{REGION}.log").read_text()
        assert "resum" in log.lower(), log[-2000:]
    else:  # training ran uninterrupted in both runs: everything is bit-identical
        for out in FINAL:
            same_tree(reference / out, tmp_path / out)

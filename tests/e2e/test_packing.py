"""End-to-end: rule pack_hdf5, with and without the per-date cloud statistics table."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from cloudfree.manifest import read_manifest
from cloudfree.pack.check import validate
from cloudfree.packed import iter_tiles, open_packed

from ..workflow_run import REPO, SNAKEMAKE, snakemake, tiny_config, write_config

DATES_OUTPUT = '        dates="results/cloudstats/{region}_dates.csv",\n'


def _workflow_copy(root: Path, with_dates: bool) -> Path:
    """The repo's workflow with rule cloud_stats declaring (or not) the dates table."""
    root.mkdir(parents=True)
    shutil.copy(REPO / "Snakefile", root / "Snakefile")
    shutil.copytree(REPO / "workflow", root / "workflow")
    shutil.copytree(REPO / "config", root / "config")
    (root / "cloudfree").symlink_to(REPO / "cloudfree")
    rules = root / "workflow/rules/clouds.smk"
    text = rules.read_text()
    has = "_dates.csv" in text
    if with_dates and not has:
        text = text.replace("    output:\n", "    output:\n" + DATES_OUTPUT, 1)
    elif not with_dates and has:
        text = re.sub(
            r"\n        dates=report\(.*?\n        \),|\n        dates=[^\n]*",
            "",
            text,
            count=1,
            flags=re.S,
        )
    rules.write_text(text)
    return root / "Snakefile"


def _pack_inputs(snakefile: Path, workdir: Path) -> str:
    cmd = [
        *SNAKEMAKE, "-s", str(snakefile), "-d", str(workdir), "--configfile",
        str(workdir / "config.yaml"), "-n", "results/hdf5/africa.h5",
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    block = re.search(r"rule pack_hdf5:\n(.*?)\n\n", proc.stdout + "\n\n", re.S)
    assert block, proc.stdout[-3000:]
    line = re.search(r"input: (.*)", block.group(1))
    assert line
    return line.group(1)


@pytest.mark.e2e
def test_pack_rule_uses_the_dates_table_only_when_declared(tmp_path: Path) -> None:
    work = tmp_path / "run"
    write_config(work, tiny_config())
    snakemake(work, "-c1", "results/tiles/africa.csv")  # the tile checkpoint
    with_table = _pack_inputs(_workflow_copy(tmp_path / "with", True), work)
    without = _pack_inputs(_workflow_copy(tmp_path / "without", False), work)
    assert "results/cloudstats/africa_dates.csv" in with_table
    assert "results/tiles/africa.csv" in with_table
    assert "_dates.csv" not in without and "results/tiles/africa.csv" in without


@pytest.mark.e2e
def test_pack_rule_writes_a_valid_file(tmp_path: Path) -> None:
    write_config(tmp_path, tiny_config())
    snakemake(tmp_path, "-c1", "results/hdf5/africa.h5")
    h5 = tmp_path / "results/hdf5/africa.h5"
    validate(h5, read_manifest(tmp_path / "results/tiles/africa.csv"))
    tiles = list(iter_tiles(h5))
    assert {t.split for t in tiles} == {"train", "val", "test"}
    assert all(t.date_class is not None and len(t.dates) == 6 for t in tiles)
    if "_dates.csv" in (REPO / "workflow/rules/clouds.smk").read_text():
        with open_packed(h5) as f:
            assert "africa_dates.csv" in f.attrs["date_class_source"]

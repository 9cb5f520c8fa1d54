"""The tiny two-region run that the end-to-end tests of several files read (never change)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ..workflow_run import snakemake, tiny_config, write_config


@pytest.fixture(scope="session")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The whole chain of :func:`tiny_config` run by ``snakemake -c 2``; ``console.txt`` holds
    its console."""
    workdir = tmp_path_factory.mktemp("run")
    write_config(workdir, tiny_config())
    proc = snakemake(workdir, "-c", "2")
    (workdir / "console.txt").write_text(proc.stdout + proc.stderr)
    return workdir

"""Running the real `snakemake` command on a config in a temporary directory."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = [sys.executable, "-m", "snakemake"]


def tiny_config(**train: Any) -> dict[str, Any]:
    """Two regions of three 32 px tiles, six dates, a few training steps; each with an
    evaluation scene of four tiles."""

    def region(seed: int, crs: str, origin: list[float], cloudiness: float) -> dict[str, Any]:
        return {
            "source": "synthetic",
            "synthetic": {
                "seed": seed, "tiles_x": 3, "tiles_y": 1, "tile_size": 32, "overlap": 8,
                "n_dates": 6, "cloudiness": cloudiness, "crs": crs, "origin": origin,
                "val_fraction": 0.34, "test_fraction": 0.34,
            },
        }  # fmt: skip

    return {
        "regions": {
            "africa": region(11, "EPSG:32737", [500000.0, 8300000.0], 0.3),
            "europa": region(23, "EPSG:32632", [600000.0, 5400000.0], 0.5),
        },
        "evaluation": {"inductive": {"tiles_x": 2, "tiles_y": 2}},
        "train": {
            "model": {"widths": [8, 16], "heads": 2},
            "steps": 30,
            "batch_size": 2,
            "crop": 16,
            "val_every": 10,
            "warmup_steps": 5,
            **train,
        },
    }


def write_config(workdir: Path, config: dict[str, Any]) -> Path:
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / "config.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def snakemake(
    workdir: Path, *args: str, config: Path | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """Run snakemake with the repo's Snakefile in ``workdir`` (config: ``workdir/config.yaml``)."""
    cmd = [
        *SNAKEMAKE, "-s", str(REPO / "Snakefile"), "-d", str(workdir),
        "--configfile", str(config or workdir / "config.yaml"), *args,
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=1200)
    if check and proc.returncode != 0:
        raise AssertionError(
            f"{' '.join(cmd)} failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-6000:]}"
        )
    return proc


def planned_jobs(proc: subprocess.CompletedProcess[str]) -> list[tuple[str, dict[str, str]]]:
    """(rule, wildcards) of every job a dry run plans."""
    return [(job["rule"], job["wildcards"]) for job in planned_files(proc)]


def planned_files(proc: subprocess.CompletedProcess[str]) -> list[dict[str, Any]]:
    """Every job a dry run plans: ``rule``, ``wildcards`` and its ``input`` and ``output``
    files (``<TBD>`` for what a checkpoint decides)."""
    text = proc.stdout + proc.stderr
    jobs = []
    for block in re.split(r"\n(?=(?:rule|checkpoint|localrule) \w+:)", text):
        head = re.match(r"(?:rule|checkpoint|localrule) (\w+):", block.strip())
        if not head or head.group(1) == "all":
            continue
        wc = re.search(r"wildcards: (.*)", block)
        wildcards = dict(kv.split("=", 1) for kv in wc.group(1).split(", ")) if wc else {}
        files = {
            key: found.group(1).split(", ") if (found := re.search(rf"\n\s+{key}: (.*)", block))
            else []
            for key in ("input", "output")
        }  # fmt: skip
        jobs.append({"rule": head.group(1), "wildcards": wildcards, **files})
    return jobs

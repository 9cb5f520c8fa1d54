"""Does Sentinel-1 make the reconstruction better where optical data has nothing?

    python benchmarks/sar_fusion.py [--cores 2] [--work DIR] [--config config/sar_fusion.yaml]

Runs the workflow on ``config/sar_fusion.yaml`` (the default regions with synthetic
Sentinel-1; experiment ``optical``, the default model, and ``s1``, the same with
``train.inputs.s1``) up to the metrics, in ``--work`` (a temporary directory by default),
then reads, per region, on the inductive scenes (scenes and dates the models never saw):

- the pooled masked MAE of both models and their paired difference (s1 - optical) with its
  95 % bootstrap interval over tiles, from ``results/metrics/<region>_experiments.csv``;
- the same restricted to the masked pixels whose nearest clear observation (a date where the
  pixel is available to the model) is more than ``--long-gap`` days away (60): per tile the
  MAE over those pixels of every band, paired over the tiles that have such pixels.

Writes ``--out`` (JSON) with the command, the machine, the load average, the wall time and
per region both comparisons; prints a table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from cloudfree.metrics.kernels import available_distance
from cloudfree.metrics.summary import bootstrap_ci
from cloudfree.packed import iter_tiles

EXPERIMENTS = ("optical", "s1")


def run_workflow(work: Path, config: Path, cores: int) -> float:
    """The workflow up to every region's comparison; returns its wall time in seconds."""
    cmd = [
        sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-d", str(work),
        "--configfile", str(config), "-c", str(cores), "results/metrics/all_experiments.csv",
    ]  # fmt: skip
    start = time.perf_counter()
    subprocess.run(cmd, check=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    return time.perf_counter() - start


def comparison(work: Path, region: str) -> dict[str, Any]:
    """Inductive pooled masked MAE of both models and s1 - optical with its interval."""
    table = pd.read_csv(work / f"results/metrics/{region}_experiments.csv", keep_default_na=False,
                        na_values=[""])  # fmt: skip
    rows = table[(table["evaluation"] == "inductive") & (table["kind"] == "model")]
    rows = rows.set_index("experiment")
    s1 = rows.loc["s1"]
    return {
        "tiles": int(s1["tiles"]),
        "mae_masked": {e: float(rows.loc[e, "mae_masked"]) for e in EXPERIMENTS},
        "s1_minus_optical": {
            "mae": float(s1["mae_masked_diff_reference"]),
            "ci_low": float(s1["mae_masked_diff_reference_ci_low"]),
            "ci_high": float(s1["mae_masked_diff_reference_ci_high"]),
        },
        "best_baseline": str(s1["best_baseline"]),
        "s1_minus_best_baseline": float(s1["mae_masked_diff_best"]),
    }


def long_gap_errors(work: Path, region: str, min_days: float) -> pd.DataFrame:
    """Per inductive tile: masked pixels farther than ``min_days`` from a clear observation,
    and each model's MAE over them (all bands, reflectance)."""
    scene = f"{region}_inductive"
    rows = []
    for tile in iter_tiles(work / f"results/hdf5/{scene}.h5", split="test"):
        if tile.gap is None:
            continue
        clear, gap = tile.clear, np.asarray(tile.gap, dtype=bool)
        available, masked = clear & ~gap, clear & gap
        far = masked & (available_distance(available, tile.days.astype(float)) > min_days)
        n = int(far.sum())
        if n == 0:
            continue
        truth = tile.reflectance()
        row: dict[str, Any] = {"tile": tile.tile, "pixels": n}
        for exp in EXPERIMENTS:
            with h5py.File(work / f"results/predictions/{exp}/{scene}/eval.h5", "r") as ev:
                pred = ev[f"tiles/{tile.tile}/pred"][()]
            err = np.abs(pred - truth).transpose(0, 2, 3, 1)[far]  # (pixels, bands)
            row[exp] = float(np.nanmean(err))
        rows.append(row)
    return pd.DataFrame(rows, columns=["tile", "pixels", *EXPERIMENTS])


def long_gap_comparison(errors: pd.DataFrame, min_days: float) -> dict[str, Any]:
    diff = (errors["s1"] - errors["optical"]).to_numpy(dtype=float)
    low, high = bootstrap_ci(diff) if len(diff) >= 10 else (float("nan"), float("nan"))
    return {
        "min_days": min_days,
        "tiles": len(errors),
        "pixels": int(errors["pixels"].sum()),
        "mae": {e: float(errors[e].mean()) if len(errors) else float("nan") for e in EXPERIMENTS},
        "s1_minus_optical": {
            "mae": float(diff.mean()) if diff.size else float("nan"),
            "ci_low": low,
            "ci_high": high,
        },
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--config", type=Path, default=REPO / "config/sar_fusion.yaml")
    parser.add_argument("--work", type=Path, default=None, help="default: a temporary folder")
    parser.add_argument("--long-gap", type=float, default=60.0)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks/results/sar_fusion.json")
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="sar_fusion_"))
    load = os.getloadavg()
    wall = run_workflow(work, args.config.resolve(), args.cores)
    result: dict[str, Any] = {
        "command": f"python benchmarks/sar_fusion.py --cores {args.cores}",
        "machine": f"{platform.machine()}, {os.cpu_count()} cpus, py {platform.python_version()}",
        "load_average_before": [round(v, 2) for v in load],
        "wall_seconds": round(wall, 1),
        "evaluation": "inductive",
        "regions": {},
    }
    for region in ("africa", "europa"):
        errors = long_gap_errors(work, region, args.long_gap)
        result["regions"][region] = {
            "all_masked": comparison(work, region),
            "long_gaps": long_gap_comparison(errors, args.long_gap),
        }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    for region, res in result["regions"].items():
        for part, key in (("all_masked", "mae_masked"), ("long_gaps", "mae")):
            d, optical = res[part]["s1_minus_optical"], res[part][key]["optical"]
            print(
                f"{region:8s} {part:10s} optical {optical:.5f} s1 - optical {d['mae']:+.5f} "
                f"[{d['ci_low']:+.5f}, {d['ci_high']:+.5f}]"
            )
    print(f"wall {wall:.0f} s; work {work}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Time the default workflow (`snakemake -c N` on config/config.yaml) and check its results.

    python benchmarks/default_run.py --cores 2

Runs in the repository as a user would (`--clean` first removes earlier results), prints
the wall time, the jobs' own times from Snakemake's benchmark files and, per region and
evaluation set (the held-out tiles of the training scene, ``transductive``, and the region's
evaluation scene, ``inductive``), the pooled masked MAE of every method next to a constant
guess (per-band mean of the pixels a method could see), and the model's paired difference
to linear interpolation and to the best baseline with their 95 % intervals. Writes the
numbers to benchmarks/results/default_run.json. Exits non-zero when the run fails or the
model or linear interpolation does not beat the constant guess: the workflow then produces
nothing worth using.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from cloudfree.packed import iter_tiles


def constant_guess_mae(packed: Path) -> float:
    """Pooled masked MAE of the per-band mean of each test tile's input pixels: per tile over
    all its masked pixels, then averaged over the tiles (as rule metrics pools)."""
    per_tile = []
    for tile in iter_tiles(packed, split="test"):
        refl = tile.reflectance()
        seen = tile.clear & ~tile.gap
        hidden = tile.clear & tile.gap
        if not hidden.any() or not seen.any():
            continue
        mean = np.array([refl[:, c][seen].mean() for c in range(refl.shape[1])])
        per_tile.append(float(np.abs(refl.transpose(0, 2, 3, 1)[hidden] - mean).mean()))
    return float(np.mean(per_tile))


def _interval(row: pd.Series, against: str) -> list[float]:
    keys = [f"mae_masked_diff_{against}{end}" for end in ("", "_ci_low", "_ci_high")]
    return [round(float(row[k]), 5) for k in keys]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks/results/default_run.json")
    parser.add_argument("--clean", action="store_true", help="delete results/ and tiles first")
    args = parser.parse_args()
    if args.clean:
        for folder in ("resources/tiles", ".snakemake"):
            shutil.rmtree(REPO / folder, ignore_errors=True)
        for path in (REPO / "results").glob("*"):  # the folder and its .gitkeep stay
            if path.is_dir():
                shutil.rmtree(path)
            elif path.name != ".gitkeep":
                path.unlink()

    cmd = [sys.executable, "-m", "snakemake", "-c", str(args.cores)]
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=REPO)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        print(f"snakemake failed with exit code {proc.returncode}", file=sys.stderr)
        return proc.returncode

    jobs = {
        str(p.relative_to(REPO / "results/benchmarks")): float(
            pd.read_csv(p, sep="\t")["s"].iloc[0]
        )
        for p in sorted((REPO / "results/benchmarks").rglob("*.tsv"))
    }
    result: dict = {
        "command": " ".join(["snakemake", "-c", str(args.cores)]),
        "machine": f"{platform.machine()}, {os.cpu_count()} cpus, py {platform.python_version()}",
        "wall_seconds": round(wall, 1),
        "job_seconds": {k: round(v, 1) for k, v in jobs.items()},
        "regions": {},
    }
    ok = True
    packed = {"transductive": "{region}.h5", "inductive": "{region}_inductive.h5"}
    for summary_path in sorted((REPO / "results/metrics").glob("*_summary.csv")):
        region = summary_path.name.removesuffix("_summary.csv")
        summary = pd.read_csv(summary_path)
        result["regions"][region] = {}
        for evaluation, rows in summary.groupby("evaluation", sort=False):
            rows = rows.set_index("method")
            const = constant_guess_mae(
                REPO / "results/hdf5" / packed[evaluation].format(region=region)
            )
            maes = rows["mae_masked"].round(5).to_dict()
            model = rows.loc["model"]
            result["regions"][region][evaluation] = {
                "tiles": int(model["tiles"]),
                "constant_guess_mae_masked": round(const, 5),
                "mae_masked": maes,
                "model_minus_linear": _interval(model, "linear"),
                "best_baseline": str(model["best_baseline"]),
                "model_minus_best_baseline": _interval(model, "best"),
            }
            for method in ("model", "linear"):
                if not maes[method] < 0.8 * const:
                    print(f"{region} {evaluation}: {method} MAE {maes[method]:.4f}, "
                          f"constant guess {const:.4f}")  # fmt: skip
                    ok = False
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

"""Cloud statistics, packing and metrics of one image cut into ever more, ever smaller tiles.

    python benchmarks/pack_scale.py [--size 2048] [--tiles 1024,4096,16384] [--workdir DIR]

Writes two dates of a ``--size`` px square 13-band image with cloud masks (the
``folder_crop`` benchmark's series), then for each tile count cuts the same pixels into that
many square tiles with the ``folder`` source (per-tile per-date GeoTIFFs and the manifest,
the layout the stages read) and runs, each in a fresh process calling the library function
as the rule's script does:

- ``cloud_stats``: :func:`cloudfree.clouds.region.cloud_statistics` (the five tables);
- ``pack``: :func:`cloudfree.pack.writer.pack_region` with the date classes of the cloud
  statistics (as rule pack_hdf5);
- ``metrics``: :func:`cloudfree.metrics.region.region_metrics` (the model and every
  baseline of ``metrics.baselines`` on the test tiles) and its three tables written as CSV,
  the model's output being stand-in predictions (truth plus noise, written to an
  ``eval.h5`` of inference's layout: ``tiles/<tile>/pred``) so that no model is trained.

Each stage reports its wall time per tile-date of the region and the peak resident memory
of its process (``VmHWM``, read by the process itself at its end); ``--trace`` adds the
peak of traced allocations and the ten largest allocation sites left at the end
(tracemalloc, slower).  The load average is recorded before and after each stage.  Targets:
the largest tile count's peak RSS at most 1.3x the smallest's for every stage, and packing's
time per tile-date within 1.5x.  Writes benchmarks/results/pack_scale.json (``--out``).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import h5py
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from folder_crop import config, make_series

from cloudfree.manifest import write_manifest
from cloudfree.packed import iter_tiles
from cloudfree.tiles.folder import folder_tiles

RSS_TARGET = 1.3  # largest case's peak RSS over the smallest's, every stage
TIME_TARGET = 1.5  # packing's time per tile-date, largest spread over the cases
STAGES = ("cloud_stats", "pack", "metrics")
TABLES = ("coverage", "runs", "tiles", "summary", "dates")

CHILD = """
import json, sys, time
sys.path.insert(0, {repo!r})
stage, case, trace = {stage!r}, {case!r}, {trace!r}
from pathlib import Path
from cloudfree.config import section
if stage == "cloud_stats":  # each stage imports what its rule's script does, no more
    import dask
    from cloudfree.clouds.region import cloud_statistics
elif stage == "pack":
    from cloudfree.manifest import read_manifest
    from cloudfree.pack.writer import pack_region
else:
    from cloudfree.metrics.region import region_metrics
if trace:
    import tracemalloc
    tracemalloc.start()
case = Path(case)
t0 = time.perf_counter()
if stage == "cloud_stats":
    dask.config.set(scheduler="threads", num_workers=2)  # rule cloud_stats: threads 2
    (case / "cloudstats").mkdir(exist_ok=True)
    outputs = {{k: case / "cloudstats" / f"{{k}}.csv" for k in {tables!r}}}
    stats = cloud_statistics(case / "manifest.csv", outputs, section("clouds")["selection"])
    items = len(stats.coverage)
elif stage == "pack":
    pack_region(read_manifest(case / "manifest.csv"), case / "region.h5", pack=section("pack"),
                evaluation=section("evaluation"), date_stats=case / "cloudstats" / "dates.csv")
    items = None
else:
    scores = region_metrics(case / "region.h5", case / "eval.h5",
                            baselines=section("metrics")["baselines"], experiment="bench",
                            holdout=None)
    for name, frame in zip(("table", "pooled", "summary"), scores):
        frame.to_csv(case / f"metrics_{{name}}.csv", index=False, float_format="%.6g")
    items = len(scores.table)
seconds = time.perf_counter() - t0
out = {{"seconds": seconds, "items": items}}
if trace:
    out["traced_peak_mb"] = tracemalloc.get_traced_memory()[1] / 2**20
    top = tracemalloc.take_snapshot().statistics("lineno")[:10]
    out["traced_left_top"] = [str(s) for s in top]
status = open("/proc/self/status").read().splitlines()
out["peak_rss_mb"] = int(next(l for l in status if l.startswith("VmHWM")).split()[1]) / 1024
print(json.dumps(out))
"""


def build_case(root: Path, series: Path, size: int, n_tiles: int) -> tuple[Path, int]:
    """Cut the series into ``n_tiles`` square tiles; returns the case folder and tile side."""
    side = math.isqrt(n_tiles)
    if side * side != n_tiles or size % side:
        raise SystemExit(f"{n_tiles} tiles: not a square number dividing {size} px")
    tile = size // side
    case = root / f"tiles{n_tiles}"
    case.mkdir(parents=True, exist_ok=True)
    cfg = config(series, tile) | {"max_tiles": max(n_tiles, 20000)}
    rows = folder_tiles("bench", cfg, case / "tiles")
    write_manifest(rows, case / "manifest.csv")
    return case, tile


def write_predictions(case: Path, seed: int = 0) -> int:
    """Stand-in model output of every test tile with gaps (truth plus noise, nodata 0.3) in
    ``eval.h5`` as inference writes it; returns the number of tiles."""
    rng = np.random.default_rng(seed)
    n = 0
    with h5py.File(case / "eval.h5", "w") as ev:
        ev.attrs.update(region="bench", model="stand-in")
        for tile in iter_tiles(case / "region.h5", split="test"):
            if tile.gap is None:
                continue
            truth = np.nan_to_num(tile.reflectance(), nan=0.3)
            pred = (truth + rng.normal(0.0, 0.02, truth.shape)).astype(np.float32)
            ev.create_group(f"tiles/{tile.tile}").create_dataset(
                "pred", data=pred, compression="gzip", shuffle=True
            )
            n += 1
    return n


def run_stage(stage: str, case: Path, trace: bool) -> dict[str, Any]:
    code = CHILD.format(repo=str(REPO), stage=stage, case=str(case), trace=trace, tables=TABLES)
    load = os.getloadavg()
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(f"{stage} on {case} failed:\n{proc.stderr[-3000:]}")
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    out["process_seconds"] = round(time.perf_counter() - t0, 2)
    out["load_before"], out["load_after"] = (
        [round(x, 2) for x in load],
        [round(x, 2) for x in os.getloadavg()],
    )
    return out


def summarise(result: dict[str, Any], out: Path) -> bool:
    """Ratios of the last case over the first against the targets; writes ``out``."""
    first, last = result["cases"][0], result["cases"][-1]
    ratios = {
        f"{s}_peak_rss_ratio": round(last[s]["peak_rss_mb"] / first[s]["peak_rss_mb"], 3)
        for s in STAGES
    }
    per = [c["pack"]["seconds_per_tile_date"] for c in result["cases"]]
    ratios["pack_time_per_tile_date_spread"] = round(max(per) / min(per), 3)
    result["ratios"] = ratios
    result["targets"] = {"peak_rss_ratio_max": RSS_TARGET, "pack_time_spread_max": TIME_TARGET}
    ok = all(ratios[f"{s}_peak_rss_ratio"] <= RSS_TARGET for s in STAGES) and (
        ratios["pack_time_per_tile_date_spread"] <= TIME_TARGET
    )
    result["targets_met"] = ok
    result["load_end"] = [round(x, 2) for x in os.getloadavg()]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    return ok


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", type=int, default=2048, help="image side in pixels")
    ap.add_argument("--tiles", default="1024,4096,16384", help="tile counts (squares)")
    ap.add_argument("--workdir", type=Path, help="where the cases go (default: a temp dir)")
    ap.add_argument("--trace", action="store_true", help="tracemalloc peaks and top sites")
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks/results/pack_scale.json")
    args = ap.parse_args()
    counts = [int(n) for n in args.tiles.split(",")]
    result: dict[str, Any] = {
        "command": "python benchmarks/pack_scale.py " + " ".join(sys.argv[1:]),
        "machine": f"{platform.machine()}, {os.cpu_count()} cpus, py {platform.python_version()}",
        "image_px": args.size, "bands": 13, "dates": 2,
        "load_start": [round(x, 2) for x in os.getloadavg()], "cases": [],
    }  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="pack-scale-", dir=args.workdir) as tmp:
        root = Path(tmp)
        series = root / "series"
        series.mkdir()
        make_series(series, args.size, 2)
        for n in counts:
            t0 = time.perf_counter()
            case, tile = build_case(root, series, args.size, n)
            built = round(time.perf_counter() - t0, 1)
            entry: dict[str, Any] = {"tiles": n, "tile_px": tile, "build_seconds": built}
            entry["tile_dates"] = sum(1 for _ in open(case / "manifest.csv")) - 1
            for stage in STAGES:
                if stage == "metrics":
                    entry["scored_tiles"] = write_predictions(case)
                out = run_stage(stage, case, args.trace)
                out["seconds_per_tile_date"] = out["seconds"] / entry["tile_dates"]
                entry[stage] = out
                print(f"{n:6d} tiles of {tile} px, {stage:11s}: {out['seconds']:8.1f} s, "
                      f"{1e3 * out['seconds_per_tile_date']:6.2f} ms/tile-date, "
                      f"peak RSS {out['peak_rss_mb']:7.1f} MB", flush=True)  # fmt: skip
            result["cases"].append(entry)
            summarise(result, args.out)  # what is done so far, should a later case not end
            shutil.rmtree(case / "tiles")  # room for the next case
            for path in (case / "region.h5", case / "eval.h5"):
                path.unlink()
    ok = summarise(result, args.out)
    print(json.dumps(result["ratios"], indent=2), "targets met" if ok else "targets MISSED")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())

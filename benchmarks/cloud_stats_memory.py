"""Peak memory of the cloud statistics for N tiles and for 10 N tiles of the same size.

    python benchmarks/cloud_stats_memory.py [--tiles 3] [--size 512] [--dates 20]

Writes N and 10 N tiles of random masks (clear, cloud, thin cloud, shadow, nodata) and
cloud probabilities as GeoTIFFs, then runs :func:`cloudfree.clouds.region.region_statistics` on
each manifest in a fresh process and records the peak of traced Python/NumPy allocations
(tracemalloc, which sees NumPy buffers) during the statistics, and the process's peak
resident memory.  The statistics read each tile lazily in chunks, so the peaks must not grow
with the number of tiles; a whole-region load would grow 10x.  Writes
benchmarks/results/cloud_stats_memory.json.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
from rasterio.transform import from_origin

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from cloudfree.io import geotiff_profile, write_raster

CHILD = """
import json, resource, sys, time, tracemalloc
sys.path.insert(0, {repo!r})
import pandas as pd
from cloudfree.clouds.region import region_statistics
from cloudfree.config import section
manifest = pd.read_csv({manifest!r}, dtype={{"tile": str, "date": str}})
selection = section("clouds")["selection"]
tracemalloc.start()
t0 = time.perf_counter()
stats = region_statistics(manifest, selection)
seconds = time.perf_counter() - t0
peak = tracemalloc.get_traced_memory()[1]
print(json.dumps({{"traced_peak_mb": peak / 2**20, "seconds": seconds,
    "max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    "tile_dates": len(stats.coverage)}}))
"""


def write_tiles(root: Path, n_tiles: int, size: int, n_dates: int, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    dates = pd.date_range("2021-01-01", periods=n_dates, freq="5D").strftime("%Y-%m-%d")
    rows = []
    for k in range(n_tiles):
        tile = f"t{k:03d}"
        left, top = 600000.0 + k * size * 10.0, 5000000.0
        prof = geotiff_profile(
            crs="EPSG:32632", transform=from_origin(left, top, 10.0, 10.0), width=size,
            height=size, count=1, dtype="uint8", nodata=255,
        )  # fmt: skip
        for date in dates:
            mask = rng.choice(np.array([0, 1, 2, 3, 255], np.uint8), (size, size),
                              p=[0.5, 0.25, 0.1, 0.1, 0.05])  # fmt: skip
            prob = rng.random((size, size), dtype=np.float32)
            m = write_raster(root / tile / f"{date}_mask.tif", mask, prof)
            p = write_raster(root / tile / f"{date}_prob.tif", prob, {**prof, "nodata": None})
            rows.append(
                {
                    "region": "bench", "source": "folder", "tile": tile, "date": date,
                    "split": "train", "image": str(m), "mask": str(m), "probability": str(p),
                    "crs": "EPSG:32632", "left": left, "bottom": top - size * 10.0,
                    "right": left + size * 10.0, "top": top, "width": size, "height": size,
                }
            )  # fmt: skip
    path = root / "manifest.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def measure(manifest: Path) -> dict[str, float]:
    code = CHILD.format(repo=str(REPO), manifest=str(manifest))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiles", type=int, default=3)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--dates", type=int, default=20)
    args = parser.parse_args()
    result: dict[str, object] = {"size": args.size, "dates": args.dates}
    with tempfile.TemporaryDirectory(prefix="cloudstats-mem-") as tmp:
        for n in (args.tiles, 10 * args.tiles):
            manifest = write_tiles(Path(tmp) / f"n{n}", n, args.size, args.dates)
            result[f"tiles_{n}"] = {"tiles": n, **measure(manifest)}
            print(f"{n:4d} tiles: {result[f'tiles_{n}']}")
    small, large = result[f"tiles_{args.tiles}"], result[f"tiles_{10 * args.tiles}"]
    one_tile_mb = args.dates * args.size**2 * 5 / 2**20  # uint8 mask + float32 probability
    result["one_tile_data_mb"] = one_tile_mb
    result["traced_peak_ratio"] = large["traced_peak_mb"] / small["traced_peak_mb"]
    result["rss_ratio"] = large["max_rss_mb"] / small["max_rss_mb"]
    print(
        f"one tile holds {one_tile_mb:.0f} MB of masks + probabilities; traced peak "
        f"{small['traced_peak_mb']:.1f} MB -> {large['traced_peak_mb']:.1f} MB "
        f"(x{result['traced_peak_ratio']:.2f}), max RSS {small['max_rss_mb']:.0f} MB -> "
        f"{large['max_rss_mb']:.0f} MB (x{result['rss_ratio']:.2f}) for 10x the tiles"
    )
    out = REPO / "benchmarks/results/cloud_stats_memory.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    ok = result["traced_peak_ratio"] < 1.5
    print("OK: flat" if ok else "GROWS with the number of tiles")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())

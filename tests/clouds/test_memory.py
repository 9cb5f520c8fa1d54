"""Cloud statistics memory does not grow with the number of tiles: ten times the tiles, the
same peak (but for a few numbers per tile-date in the tables).

Each case runs :func:`cloudfree.clouds.region.region_statistics` in a fresh process on a
manifest of tiny tiles (masks and cloud probabilities as GeoTIFFs, written beforehand) and
reports the peak of the memory Python and numpy allocate meanwhile (``tracemalloc``: every
block read, every per-tile table; exact, unlike the resident size, which a fresh
interpreter's imports dominate at this size).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from rasterio.transform import from_origin

from cloudfree.io import geotiff_profile, write_raster

REPO = Path(__file__).resolve().parents[2]
DATES = [f"2021-0{m}-01" for m in range(1, 5)]
SIZE = 32

SCRIPT = """
import json, sys, tracemalloc
import dask
import pandas as pd
from cloudfree.clouds.region import region_statistics
from cloudfree.config import section

dask.config.set(scheduler="synchronous")
manifest = pd.read_csv(sys.argv[1], dtype={"tile": str, "date": str})
selection = section("clouds")["selection"]
tracemalloc.start()
stats = region_statistics(manifest, selection)
peak = tracemalloc.get_traced_memory()[1]
assert len(stats.coverage) == len(manifest), len(stats.coverage)
print(json.dumps({"peak_mb": peak / 2**20}))
"""


def write_region(root: Path, n_tiles: int) -> Path:
    """``n_tiles`` tiles of 4 dates of random masks and probabilities; the manifest's path."""
    rng = np.random.default_rng(0)
    classes = np.array([0, 1, 2, 3, 255], np.uint8)
    rows = []
    for k in range(n_tiles):
        tile, left = f"t{k:04d}", 600000.0 + k * SIZE * 10.0
        prof = geotiff_profile(
            crs="EPSG:32632", transform=from_origin(left, 5000000.0, 10.0, 10.0),
            width=SIZE, height=SIZE, count=1, dtype="uint8", nodata=255,
        )  # fmt: skip
        for date in DATES:
            mask = rng.choice(classes, (SIZE, SIZE), p=[0.5, 0.25, 0.1, 0.1, 0.05])
            prob = rng.random((SIZE, SIZE), dtype=np.float32)
            m = write_raster(root / tile / f"{date}_mask.tif", mask, prof)
            p = write_raster(root / tile / f"{date}_prob.tif", prob, {**prof, "nodata": None})
            rows.append({"region": "mem", "tile": tile, "date": date, "split": "train",
                         "mask": str(m), "probability": str(p), "width": SIZE,
                         "height": SIZE})  # fmt: skip
    path = root / "manifest.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def peak_mb(manifest: Path) -> float:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(manifest)],
        capture_output=True, text=True, env=env, timeout=600, check=True,
    )  # fmt: skip
    return json.loads(proc.stdout.strip().splitlines()[-1])["peak_mb"]


def test_peak_memory_of_the_cloud_statistics_does_not_grow_with_the_tile_count(tmp_path):
    small = peak_mb(write_region(tmp_path / "small", 20))
    large = peak_mb(write_region(tmp_path / "large", 200))
    # 200 tiles hold 4.1 MB of masks and probabilities (read a tile at a time) and 800
    # tile-dates: a frame kept per tile (about 20 kB) would add 3.6 MB; what the tables keep
    # (a few numbers per tile-date in columns, each date and class string once) about 1 kB
    # per tile-date, dask's key names (a bounded cache) included
    extra = (200 - 20) * len(DATES)
    assert large <= 1.3 * small + 0.5 + 1e-3 * extra, (small, large)

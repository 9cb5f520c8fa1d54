"""Metrics memory does not grow with the number of tiles: ten times the tiles, the same peak
(but for a few numbers per scored row in the tables).

Each case packs a region of tiny test tiles with evaluation gaps and writes stand-in model
output for them (an ``eval.h5`` of inference's layout), then scores the model and a baseline
with :func:`cloudfree.metrics.region.region_metrics` in a fresh process and reports the peak
of the memory Python and numpy allocate meanwhile (``tracemalloc``: every tile series,
prediction and SSIM map, every row kept; exact, unlike the resident size, which a fresh
interpreter's imports dominate at this size).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
from affine import Affine
from rasterio.crs import CRS

from cloudfree.config import section
from cloudfree.pack.gaps import iter_evaluation_gaps
from cloudfree.pack.writer import write_packed
from cloudfree.packed import TileSeries, iter_tiles

REPO = Path(__file__).resolve().parents[2]
T, C, S = 4, 3, 32

SCRIPT = """
import json, sys, tracemalloc
from cloudfree.metrics.region import region_metrics

packed, ev = sys.argv[1], sys.argv[2]
region_metrics(packed, ev, baselines=["linear"], experiment="e", holdout=None)  # warm-up
tracemalloc.start()
scores = region_metrics(sys.argv[3], sys.argv[4], baselines=["linear"], experiment="e",
                        holdout=None)
peak = tracemalloc.get_traced_memory()[1]
print(json.dumps({"peak_mb": peak / 2**20, "rows": len(scores.table)}))
"""


def write_region(root: Path, n: int) -> tuple[Path, Path]:
    """A packed region of ``n`` test tiles with gaps and its stand-in ``eval.h5``."""
    root.mkdir(parents=True)
    dates = [f"2021-{m:02d}-01" for m in range(1, T + 1)]

    def tiles():
        for i in range(n):
            rng = np.random.default_rng(i)
            yield TileSeries(
                tile=f"t{i:04d}", split="test",
                mask=(rng.random((T, S, S)) < 0.3).astype(np.uint8),
                s2=rng.integers(1, 10000, (T, C, S, S), dtype=np.uint16), dates=dates,
                doy=np.arange(1, T + 1, dtype=np.int16) * 30, crs=CRS.from_epsg(32632),
                transform=Affine(10, 0, i * S * 10, 0, -10, 0),
            )  # fmt: skip

    names = [f"t{i:04d}" for i in range(n)]

    def gaps(masks, covers):
        yield from iter_evaluation_gaps(masks, covers, names, seed=0, date_fraction=0.5)

    packed, ev_path = root / "region.h5", root / "eval.h5"
    write_packed(packed, tiles(), region="r", source="synthetic", bands=["B02", "B03", "B04"],
                 pack=section("pack"), gaps=gaps)  # fmt: skip
    with h5py.File(ev_path, "w") as ev:
        for tile in iter_tiles(packed, split="test"):
            ev[f"tiles/{tile.tile}/pred"] = np.nan_to_num(tile.reflectance(), nan=0.3) + 0.01
    return packed, ev_path


def peak(warm: tuple[Path, Path], case: tuple[Path, Path]) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT, *map(str, warm), *map(str, case)],
        capture_output=True, text=True, env=env, timeout=600, check=True,
    )  # fmt: skip
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_peak_memory_of_the_metrics_does_not_grow_with_the_tile_count(tmp_path):
    warm = write_region(tmp_path / "warm", 2)
    small = peak(warm, write_region(tmp_path / "small", 20))
    large = peak(warm, write_region(tmp_path / "large", 200))
    assert (small["rows"], large["rows"]) == (20 * T * 2, 200 * T * 2)  # model and linear
    # 200 tiles hold 3.1 MB of pixels (and 13 MB of float64 predictions, truth and SSIM
    # maps while scored); a dict kept per row (about 3 kB) would add 4 MB; rows kept as
    # columns add a few numbers a row (under 0.5 kB with the pooled rows and the summary)
    extra_rows = large["rows"] - small["rows"]
    assert large["peak_mb"] <= 1.3 * small["peak_mb"] + 0.5 + 0.5e-3 * extra_rows, (small, large)

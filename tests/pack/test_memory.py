"""Packing memory does not grow with the number of tiles: ten times the tiles, the same peak.

Each case packs in a fresh process (the tiles made one at a time by a generator, evaluation
gaps on half of them) and reports the peak of the memory Python and numpy allocate
(``tracemalloc``: every pixel array, the gaps and per-tile bookkeeping; exact, unlike the
resident size, which a fresh interpreter's imports dominate at this size).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import h5py

from cloudfree.config import section
from cloudfree.h5cache import METADATA_CACHE_BYTES
from cloudfree.pack import writer

REPO = Path(__file__).resolve().parents[2]

SCRIPT = """
import json, sys, tracemalloc
import numpy as np
from affine import Affine
from rasterio.crs import CRS
from cloudfree.config import section
from cloudfree.h5cache import METADATA_CACHE_BYTES
from cloudfree.pack.gaps import TrainOverlap, iter_evaluation_gaps
from cloudfree.pack.writer import write_packed
from cloudfree.packed import TileSeries
import pandas as pd

n, dest = int(sys.argv[1]), sys.argv[2]
T, C, S = 8, 4, 64
dates = [f"2021-{m:02d}-01" for m in range(1, T + 1)]

def tiles():
    for i in range(n):
        rng = np.random.default_rng(i)
        mask = (rng.random((T, S, S)) < rng.uniform(0.1, 0.6, (T, 1, 1))).astype(np.uint8)
        s2 = rng.integers(1, 10000, (T, C, S, S), dtype=np.uint16)
        yield TileSeries(
            tile=f"t{i:04d}", split="train" if i % 2 else "val", s2=s2, mask=mask,
            dates=dates, doy=np.arange(1, T + 1, dtype=np.int16) * 30,
            crs=CRS.from_epsg(32632), transform=Affine(10, 0, i * S * 10, 0, -10, 0),
        )

targets = [f"t{i:04d}" for i in range(0, n, 2)]
cols = ["tile", "split", "crs", "left", "bottom", "right", "top"]
overlap = TrainOverlap(pd.DataFrame(columns=cols))

def gaps(masks, covers):
    for name, gap in iter_evaluation_gaps(masks, covers, targets, seed=0, date_fraction=0.5):
        assert overlap(name, gap.shape[1:]) is None
        yield name, gap

tracemalloc.start()
write_packed(dest, tiles(), region="r", source="synthetic", bands=["B02", "B03", "B04", "B08"],
             pack=section("pack"), gaps=gaps)
print(json.dumps({"peak_mb": tracemalloc.get_traced_memory()[1] / 2**20}))
"""


def peak_mb(n: int, dest: Path) -> float:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(n), str(dest)],
        capture_output=True, text=True, env=env, timeout=600, check=True,
    )  # fmt: skip
    return json.loads(proc.stdout.strip().splitlines()[-1])["peak_mb"]


def test_peak_memory_of_a_pack_does_not_grow_with_the_tile_count(tmp_path):
    small = peak_mb(30, tmp_path / "small.h5")
    large = peak_mb(300, tmp_path / "large.h5")
    # 300 tiles hold 9.4 MB of masks and 4.7 MB of gaps: kept per tile, the peak would
    # grow by that much; streamed, it stays that of one tile (about 1 MB of pixels)
    assert large <= 1.3 * small + 0.5, (small, large)


def test_the_metadata_cache_of_a_pack_is_bounded(tmp_path, monkeypatch):
    """HDF5's metadata cache grows with the objects a pack touches (every tile's datasets
    when the gaps read the masks back) unless capped: the writer caps it on its file."""
    seen = []
    bound = writer.bound_metadata_cache

    def recording(h5: h5py.File) -> None:
        bound(h5)
        seen.append(h5.id.get_mdc_config().max_size)

    monkeypatch.setattr(writer, "bound_metadata_cache", recording)
    writer.write_packed(tmp_path / "r.h5", iter([]), region="r", source="s", bands=["B02"],
                        pack=section("pack"))  # fmt: skip
    assert seen == [METADATA_CACHE_BYTES]

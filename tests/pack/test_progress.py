"""Progress lines of packing: one per tile written when due, i of N with an ETA."""

import logging
from collections.abc import Iterator

from cloudfree.bands import S2_L1C_BANDS
from cloudfree.pack.writer import write_packed
from cloudfree.packed import TileSeries, iter_tiles
from cloudfree.progress import Progress

from .sample import PACK, pack

LOGGER = "cloudfree.pack.writer"


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_write_packed_counts_the_tiles_it_writes(tmp_path, manifest, caplog):
    tiles = list(iter_tiles(pack(manifest, tmp_path / "r.h5")))
    clock = Clock()

    def slow() -> Iterator[TileSeries]:  # each tile takes 20 s to load
        for tile in tiles:
            clock.now += 20.0
            yield tile

    progress = Progress(logging.getLogger(LOGGER), "w.h5: tiles packed", len(tiles), clock=clock)
    with caplog.at_level(logging.INFO, logger=LOGGER):
        caplog.clear()  # the pack above logs too where an earlier test set the root to INFO
        write_packed(
            tmp_path / "w.h5", slow(), region="r", source="s", bands=S2_L1C_BANDS, pack=PACK,
            progress=progress,
        )  # fmt: skip
    lines = [r.getMessage() for r in caplog.records if r.name == LOGGER]
    # the first tile, the third (40 s after the first line: at least every 30 s), the last
    assert lines == [
        "w.h5: tiles packed: 1 of 4 (25 %), 20 s elapsed, ETA 1 min 00 s",
        "w.h5: tiles packed: 3 of 4 (75 %), 1 min 00 s elapsed, ETA 20 s",
        "w.h5: tiles packed: 4 of 4 (100 %), 1 min 20 s elapsed",
    ]


def test_pack_region_logs_the_first_and_the_last_tile_of_the_region(tmp_path, manifest, caplog):
    dest = tmp_path / "r.h5"
    with caplog.at_level(logging.INFO, logger=LOGGER):
        pack(manifest, dest)
    lines = [r.getMessage() for r in caplog.records if r.name == LOGGER]
    assert lines[0].startswith(f"{dest}: tiles packed: 1 of 4 (25 %), ")
    assert ", ETA " in lines[0]
    assert lines[-1].startswith(f"{dest}: tiles packed: 4 of 4 (100 %), ")
    assert all(": tiles packed: " in line for line in lines)

"""Tests of cloudfree.train.reader: windows of packed tiles, from the file or the cache."""

import h5py
import numpy as np
import pytest

from cloudfree.errors import InputDataError
from cloudfree.packed import read_meta
from cloudfree.train.reader import PackedReader

from ..packed import write_packed

WINDOWS = [
    (slice(None), slice(None), slice(None)),
    (slice(1, 3), slice(37, 69), slice(61, 93)),  # across four 64 px chunks
    (np.array([0, 2]), slice(68, 100), slice(118, 150)),  # at the edge
]


@pytest.fixture
def packed(tmp_path):
    rng = np.random.default_rng(4)
    s2 = rng.integers(1, 10000, (3, 13, 100, 150), dtype=np.uint16)
    mask = rng.integers(0, 4, (3, 100, 150), dtype=np.uint8)
    path = write_packed(tmp_path / "big.h5", {"a": ("train", s2, mask, [5, 50, 90], None)})
    return path, s2, mask


@pytest.mark.parametrize("cache_bytes", [0, 1 << 30])
def test_read_mask_gives_the_mask_of_read(packed, cache_bytes):
    path, s2, mask = packed
    (ref,) = read_meta([path]).tiles
    reader = PackedReader([path], cache_bytes=cache_bytes)
    for dates, rows, cols in WINDOWS:
        got_s2, got_mask = reader.read(ref, dates, rows, cols)
        np.testing.assert_array_equal(got_s2, s2[dates][:, :, rows, cols])
        np.testing.assert_array_equal(got_mask, mask[dates][:, rows, cols])
        only = reader.read_mask(ref, dates, rows, cols)
        assert only.dtype == np.uint8
        np.testing.assert_array_equal(only, got_mask)
    reader.close()


def test_read_mask_decodes_no_band(packed):
    path, _, mask = packed
    with h5py.File(path, "r") as h5:  # every s2 chunk unreadable: its checksum fails
        d = h5["tiles/a/s2"].id
        spans = [(i.byte_offset, i.size) for i in map(d.get_chunk_info, range(d.get_num_chunks()))]
    with open(path, "r+b") as f:
        for offset, size in spans:
            f.seek(offset + size // 2)
            f.write(bytes(8))
    (ref,) = read_meta([path]).tiles
    reader = PackedReader([path], cache_bytes=0)
    every = slice(None)
    with pytest.raises(InputDataError, match=r"tile a of .*big\.h5"):
        reader.read(ref, every, every, every)
    np.testing.assert_array_equal(reader.read_mask(ref, every, every, every), mask)
    reader.close()

"""A full disk gives a clear error naming the output and leaves nothing half-written.

Two ways: an ``OSError(ENOSPC)`` injected at the write layer (runs everywhere), and real
writes into a size-limited tmpfs (where the machine lets the tests mount one).
"""

import errno
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from rasterio.transform import from_origin

from cloudfree.errors import StorageError
from cloudfree.io import atomic_path, geotiff_profile, write_raster
from cloudfree.manifest import write_manifest
from tests.reliability.disk import leftovers, small_filesystem
from tests.series import write_series

pytestmark = pytest.mark.reliability
REPO = Path(__file__).resolve().parents[2]


def noise_raster(bands: int = 4, side: int = 512) -> np.ndarray:
    """Incompressible pixels, so compression cannot make them fit."""
    return np.random.default_rng(0).integers(1, 65535, (bands, side, side), dtype=np.uint16)


def profile(side: int = 512) -> dict:
    return geotiff_profile(
        crs="EPSG:32632", transform=from_origin(600000, 5400000, 10, 10), width=side,
        height=side, count=4, dtype="uint16", nodata=0,
    )  # fmt: skip


def test_injected_enospc_becomes_a_storage_error_naming_the_output(tmp_path):
    dest = tmp_path / "out" / "table.csv"
    expected = r"no space left while writing .*table\.csv"
    with pytest.raises(StorageError, match=expected), atomic_path(dest) as tmp:
        tmp.write_text("partial")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    assert leftovers(tmp_path) == ["out"]


def test_injected_enospc_in_a_directory_output_removes_the_partial_folder(tmp_path):
    dest = tmp_path / "tiles"
    with pytest.raises(StorageError, match="tiles"), atomic_path(dest) as tmp:
        tmp.mkdir()
        (tmp / "a.tif").write_bytes(b"x" * 100)
        raise OSError(errno.EDQUOT, "Disk quota exceeded")
    assert leftovers(tmp_path) == []


def test_other_errors_pass_through_unchanged(tmp_path):
    with pytest.raises(PermissionError), atomic_path(tmp_path / "x") as tmp:
        tmp.write_text("x")
        raise PermissionError(errno.EACCES, "denied")


def test_an_older_file_survives_a_failed_rewrite(tmp_path):
    dest = tmp_path / "table.csv"
    dest.write_text("complete")
    with pytest.raises(StorageError), atomic_path(dest) as tmp:
        tmp.write_text("half")
        raise OSError(errno.ENOSPC, "No space left on device")
    assert dest.read_text() == "complete"
    assert leftovers(tmp_path) == ["table.csv"]


def test_geotiff_on_a_full_disk(tmp_path):
    with small_filesystem(tmp_path / "disk", 512) as disk:
        with pytest.raises(StorageError, match=r"image\.tif"):
            write_raster(disk / "image.tif", noise_raster(), profile())
        assert leftovers(disk) == []


def test_manifest_and_model_file_on_a_full_disk(tmp_path):
    with small_filesystem(tmp_path / "disk", 64) as disk:
        (disk / "filler").write_bytes(b"\0" * (60 * 1024))
        rows = pd.DataFrame(
            {
                "region": "r", "source": "folder", "tile": [f"t{i}" for i in range(2000)],
                "date": "2021-01-01", "split": "train", "image": "/data/" + "x" * 200,
                "mask": "/data/m.tif", "crs": "EPSG:32632", "left": 0.0, "bottom": 0.0,
                "right": 10.0, "top": 10.0, "width": 1, "height": 1,
            }
        )  # fmt: skip
        with pytest.raises(StorageError, match=r"manifest\.csv"):
            write_manifest(rows, disk / "manifest.csv")
        with pytest.raises(StorageError, match=r"model\.pt"), atomic_path(disk / "model.pt") as t:
            torch.save({"w": torch.zeros(100_000)}, t)
        assert leftovers(disk) == ["filler"]


def test_hdf5_pack_on_a_full_disk(tmp_path):
    """HDF5 cannot always close a file after a failed write (h5py issue 2160: the close may
    crash the process), so the packer runs in a child process here. Whatever way it fails, no
    file appears under the final name; at most a hidden temporary one is left."""
    dates = ["2021-01-01", "2021-02-01", "2021-03-01", "2021-04-01"]
    manifest = write_series(tmp_path / "tiles", {"a": "train", "b": "test"}, dates, size=64)
    manifest.to_csv(tmp_path / "manifest.csv", index=False)
    code = (
        "import sys, pandas as pd\n"
        "from cloudfree.config import section\n"
        "from cloudfree.pack.writer import pack_region\n"
        "pack_region(pd.read_csv(sys.argv[1], dtype={'tile': str, 'date': str}), sys.argv[2],"
        " pack=section('pack', {'compression': 'lzf'}), evaluation=section('evaluation'))\n"
    )
    with small_filesystem(tmp_path / "disk", 256) as disk:
        proc = subprocess.run(
            [sys.executable, "-c", code, str(tmp_path / "manifest.csv"), str(disk / "region.h5")],
            capture_output=True, text=True, cwd=REPO, check=False,
        )  # fmt: skip
        assert proc.returncode != 0
        assert not (disk / "region.h5").exists()
        assert all(name.startswith(".region.h5.tmp-") for name in leftovers(disk))
        if proc.returncode > 0:  # a Python error, not a crash: it must say what happened
            assert "no space left while writing" in proc.stderr

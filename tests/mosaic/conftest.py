"""Fixtures of the mosaic tests."""

from __future__ import annotations

from pathlib import Path

import pytest
import rasterio

from .inputs import X0, write_tile


@pytest.fixture
def overlap(tmp_path: Path) -> list[Path]:
    """A: x 0..160 (cloud-reconstructed in its last 4 columns), B: x 80..240 (reconstructed
    in its last 6 columns); 8 columns overlap; A has a nodata hole at row 0, column 12."""
    root = tmp_path / "tiles"
    a = write_tile(root, "A", X0, 100, quality_cols=slice(12, 16))
    b = write_tile(root, "B", X0 + 80, 200, quality_cols=slice(10, 16))
    with rasterio.open(a, "r+") as dst:
        hole = dst.read()
        hole[:, 0, 12] = 0
        dst.write(hole)
    return [a, b]

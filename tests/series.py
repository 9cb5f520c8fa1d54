"""Small hand-made GeoTIFF series for tests of the file-level stages."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from rasterio.transform import from_origin

from cloudfree.bands import S2_L1C_BANDS
from cloudfree.io import geotiff_profile, write_raster

CRS = "EPSG:32632"


def write_series(
    root: Path,
    tiles: dict[str, str],
    dates: list[str],
    *,
    size: int = 16,
    seed: int = 0,
) -> pd.DataFrame:
    """Write ``<tile>/<date>_S2.tif`` and ``_CLD.tif`` files; return their manifest.

    ``tiles`` maps tile id to split. Tiles sit side by side along x; clouds are a square
    whose position moves with the date.
    """
    rng = np.random.default_rng(seed)
    rows = []
    for k, (tile, split) in enumerate(sorted(tiles.items())):
        left, top = 600000.0 + k * size * 10.0, 5000000.0
        transform = from_origin(left, top, 10.0, 10.0)
        prof = geotiff_profile(
            crs=CRS, transform=transform, width=size, height=size, count=13,
            dtype="uint16", nodata=0,
        )  # fmt: skip
        for t, date in enumerate(dates):
            img = rng.integers(200, 4000, (len(S2_L1C_BANDS), size, size)).astype(np.uint16)
            mask = np.zeros((size, size), dtype=np.uint8)
            mask[t : t + size // 2, t : t + size // 2] = 1
            mask[0, :] = 3
            image = write_raster(root / tile / f"{date}_S2.tif", img, prof)
            cld = write_raster(root / tile / f"{date}_CLD.tif", mask, {**prof, "nodata": 255})
            rows.append(
                {
                    "region": "testland", "source": "synthetic", "tile": tile, "date": date,
                    "split": split, "image": str(image), "mask": str(cld), "crs": CRS,
                    "left": left, "bottom": top - size * 10.0, "right": left + size * 10.0,
                    "top": top, "width": size, "height": size,
                }
            )  # fmt: skip
    return pd.DataFrame(rows)

"""Sentinel-2 band names and the conventions the whole chain shares."""

from __future__ import annotations

import numpy as np

S2_L1C_BANDS: tuple[str, ...] = (
    "B01", "B02", "B03", "B04", "B05", "B06", "B07",
    "B08", "B8A", "B09", "B10", "B11", "B12",
)  # fmt: skip
# Sentinel-1 polarisations, in the order of every S1 file and the packed ``s1`` (dB).
S1_BANDS: tuple[str, ...] = ("VV", "VH")

# Digital numbers are reflectance x 10000 (uint16); 0 marks nodata, as in the L1C/L2A products.
REFLECTANCE_SCALE = 10000.0
NODATA = 0

# Cloud mask classes written by every tile source (uint8 rasters).
CLEAR, CLOUD, THIN_CLOUD, SHADOW = 0, 1, 2, 3
MASK_NODATA = 255
MASK_CLASSES = {"clear": CLEAR, "cloud": CLOUD, "thin_cloud": THIN_CLOUD, "shadow": SHADOW}


def band_index(name: str, bands: tuple[str, ...] = S2_L1C_BANDS) -> int:
    """Position of a band by name, with a clear error for unknown names."""
    try:
        return bands.index(name)
    except ValueError:
        raise KeyError(f"unknown band {name!r}; known bands: {', '.join(bands)}") from None


def cloudy(mask: np.ndarray) -> np.ndarray:
    """Pixels a cloud mask marks as cloud, thin cloud or shadow (anything but clear and nodata)."""
    return (mask != CLEAR) & (mask != MASK_NODATA)


def clear_pixels(s2: np.ndarray, mask: np.ndarray, nodata: int = NODATA) -> np.ndarray:
    """(T, H, W) pixels with data in some band whose mask says clear (``TileSeries.clear``)."""
    return (s2 != nodata).any(axis=1) & (mask == CLEAR)


def to_dn(reflectance: np.ndarray) -> np.ndarray:
    """Reflectance -> uint16 DN (x REFLECTANCE_SCALE), valid range 1..65535 (0 = nodata).

    NaN becomes DN 1 (the darkest valid value); callers mark nodata themselves."""
    dn = np.rint(np.nan_to_num(reflectance, nan=0.0) * REFLECTANCE_SCALE)
    return np.clip(dn, NODATA + 1, 65535).astype(np.uint16)

"""The metrics of one reconstructed date: a method's output, the pixels hidden from it and the
truth, scored as the evaluation tables score every tile and date (they call these functions).

The pixel sets come from the clear pixels (truth known and cloud-free) and the gap (pixels
hidden from the method): ``masked = clear & gap`` (hidden, truth known), ``available = clear
& ~gap`` (what the method saw, scored as ``observed``) and ``all = clear``.  The product a user
gets is the output with the available pixels pasted back (:func:`delivered`); masked and all
pixels score the product, observed pixels the raw output.  SSIM maps are computed on the whole
image (:func:`ssim_pair`).

Plain functions on numpy arrays (reflectance in [0, 1], NaN where there is no data): nothing
is read or written.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from cloudfree.metrics.kernels import METRICS, band_mae, input_difficulty, score_image, ssim_maps

SETS: tuple[str, ...] = ("masked", "observed", "all")


def score_columns(bands: Iterable[str]) -> tuple[str, ...]:
    """The score columns of one date for the given band names: per set (masked, observed,
    all) ``n_<set>, mae_<set>, rmse_<set>, psnr_<set>, ssim_<set>, sam_<set>``, then
    ``mae_masked_<band>`` per band."""
    per_set = tuple(col for s in SETS for col in (f"n_{s}", *(f"{m}_{s}" for m in METRICS)))
    return per_set + tuple(f"mae_masked_{b}" for b in bands)


def pixel_sets(clear: np.ndarray, gap: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``masked = clear & gap`` and ``available = clear & ~gap`` (any shape, bool)."""
    clear, gap = np.asarray(clear, dtype=bool), np.asarray(gap, dtype=bool)
    return clear & gap, clear & ~gap


def delivered(raw: np.ndarray, truth: np.ndarray, available: np.ndarray) -> np.ndarray:
    """The product a user gets: the truth where the method saw the pixel, its output elsewhere
    (``raw``/``truth`` (..., C, H, W), ``available`` (..., H, W))."""
    return np.where(np.expand_dims(available, -3), truth, raw)


def ssim_pair(
    product: np.ndarray, raw: np.ndarray, truth: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The (T, C, H, W) SSIM maps of the product and of the raw output against the truth (one
    computation when they are the same image: a gap filler returns what it saw)."""
    maps = ssim_maps(product, truth)
    raw_maps = maps if np.array_equal(raw, product, equal_nan=True) else ssim_maps(raw, truth)
    return maps, raw_maps


def date_scores(
    arrays: tuple[np.ndarray, np.ndarray, np.ndarray],
    sets: tuple[np.ndarray, np.ndarray, np.ndarray],
    maps: tuple[np.ndarray, np.ndarray],
    bands: Iterable[str],
) -> dict[str, float | int]:
    """The :func:`score_columns` of one date: ``arrays`` are the (C, H, W) product, raw output
    and truth, ``sets`` the (H, W) masked, available and clear pixels and ``maps`` the SSIM
    maps of the product and of the raw output (:func:`ssim_pair`)."""
    product, raw, truth = arrays
    masked, available, clear = sets
    product_map, raw_map = maps
    scores = score_image(product, truth, {"masked": masked, "all": clear}, product_map)
    scores |= score_image(raw, truth, {"observed": available}, raw_map)
    per_band = band_mae(product, truth, masked)
    return scores | {f"mae_masked_{b}": float(v) for b, v in zip(bands, per_band, strict=True)}


def score_date(
    raw: np.ndarray,
    truth: np.ndarray,
    gap: np.ndarray,
    clear: np.ndarray,
    valid: np.ndarray,
    bands: Iterable[str],
) -> dict[str, float | int]:
    """Every score of one date of a method's output, in the order of :func:`score_columns`,
    and ``cloud_fraction``: the share of the ``valid`` pixels (the truth has data) the method
    did not see (not clear, or in the gap).

    ``raw`` and ``truth`` are (C, H, W) reflectance (NaN: no data), ``gap`` (H, W) the pixels
    hidden from the method, ``clear`` (H, W) those whose truth is known and cloud-free."""
    raw, truth = np.asarray(raw), np.asarray(truth)
    bands = tuple(bands)
    if raw.shape != truth.shape or raw.ndim != 3:
        raise ValueError(f"raw {raw.shape} and truth {truth.shape} must both be (C, H, W)")
    for name, pixels in (("gap", gap), ("clear", clear), ("valid", valid)):
        if np.shape(pixels) != truth.shape[1:]:
            raise ValueError(f"{name} {np.shape(pixels)} does not match images {truth.shape}")
    if len(bands) != truth.shape[0]:
        raise ValueError(f"{len(bands)} band names for {truth.shape[0]} bands")
    masked, available = pixel_sets(clear, gap)
    product = delivered(raw, truth, available)
    maps, raw_maps = ssim_pair(product[None], raw[None], truth[None])
    scores = date_scores(
        (product, raw, truth), (masked, available, np.asarray(clear, dtype=bool)),
        (maps[0], raw_maps[0]), bands,
    )  # fmt: skip
    cloud, _ = input_difficulty(
        available[None], np.asarray(valid, dtype=bool)[None], masked[None], np.zeros(1)
    )
    ordered = {c: scores[c] for c in score_columns(bands)}
    return ordered | {"cloud_fraction": float(cloud[0])}

"""Sentinel-1 radar as a model input: the scaling of VV/VH backscatter (dB) to the network's
channels (``train.inputs.s1``).

Packed files hold ``s1`` (T, 2, H, W) float32 VV and VH in dB, aligned to the S2 dates and
NaN where no S1 exists for a date (:mod:`cloudfree.packed`).  :func:`scale_s1` turns them
into the (T, 3, H, W) input a network with ``s1_channels`` takes beside the optical bands
(:class:`cloudfree.models.network.UTILISE`): scaled VV, scaled VH and the S1 availability.
Reads and writes nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from cloudfree.bands import S1_BANDS

# Backscatter range kept, in dB (SEN12MS-CR-TS's convention, as U-TILISE uses it).
S1_CLIP_DB = (-25.0, 0.0)
S1_CHANNELS = len(S1_BANDS)  # the network's ``s1_channels`` with S1 input (0 without)


def scale_s1(db: np.ndarray) -> np.ndarray:
    """(T, 2, H, W) VV/VH in dB -> (T, 3, H, W) float32: scaled VV, scaled VH, availability.

    Values are clipped to :data:`S1_CLIP_DB` and mapped linearly to [0, 1] (``(v + 25) /
    25``: -25 dB -> 0, 0 dB -> 1; -inf dB, no backscatter, counts as -25 dB).  A pixel that is
    NaN in either band (no S1 for that date) gets 0 in both and availability 0; every other
    pixel availability 1.
    """
    db = np.asarray(db, dtype=np.float32)
    if db.ndim != 4 or db.shape[1] != S1_CHANNELS:
        raise ValueError(f"s1 must be (T, {S1_CHANNELS}, H, W) dB, got shape {db.shape}")
    low, high = S1_CLIP_DB
    avail = ~np.isnan(db).any(axis=1)  # (T, H, W)
    scaled = (np.clip(db, low, high) - np.float32(low)) / np.float32(high - low)
    scaled = np.where(avail[:, None], scaled, np.float32(0))
    return np.concatenate([scaled, avail[:, None].astype(np.float32)], axis=1).astype(
        np.float32, copy=False
    )


def uses_s1(params: Mapping[str, Any]) -> bool:
    """``train.inputs.s1`` of a resolved train section (the schema fills it in; the params of
    a model file written before the key existed get it from
    :func:`cloudfree.modelfile.read_model_file`)."""
    return bool(params["inputs"]["s1"])


def s1_channels(params: Mapping[str, Any]) -> int:
    """The ``s1_channels`` of the network a resolved train section describes (0 or 2)."""
    return S1_CHANNELS if uses_s1(params) else 0

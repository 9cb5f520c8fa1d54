"""Load a trained model file and reconstruct whole tiles with it.

A model file (written by :func:`cloudfree.train.train_model`) is a ``torch.save`` of plain
tensors, lists, dicts and scalars, so it loads with ``torch.load(..., weights_only=True)``::

    {"format_version": 1, "model": {"name", "kwargs"}, "state_dict", "norm": {"mean", "std"},
     "bands", "params", "regions", "best_step", "val_mae_masked"}
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .bands import NODATA, REFLECTANCE_SCALE
from .errors import CloudfreeError, InputDataError, ModelFileError
from .models import build_model, pad_spatial

MODEL_FORMAT_VERSION = 1
REQUIRED_KEYS = ("format_version", "model", "state_dict", "norm", "bands")


def autocast_dtype(device: torch.device, enabled: bool = True) -> torch.dtype | None:
    """Mixed-precision dtype: bf16 on CUDA GPUs that support it, else fp16; None off CUDA."""
    if not enabled or device.type != "cuda":
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def autocast(device: torch.device, dtype: torch.dtype | None) -> contextlib.AbstractContextManager:
    """``torch.autocast`` for ``dtype``, or a no-op context when it is None."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def _windows(size: int, window: int, overlap: int) -> Iterator[tuple[int, int, int, int]]:
    """(start, stop, keep_start, keep_stop) windows covering ``range(size)``."""
    if size <= window:
        yield 0, size, 0, size
        return
    overlap = min(overlap, window // 4)
    step = window - 2 * overlap
    starts = [*range(0, size - window, step), size - window]
    for s in starts:
        lo = s + overlap if s > 0 else 0
        hi = s + window - overlap if s + window < size else size
        yield s, s + window, lo, hi


@torch.inference_mode()
def run_model(
    model: nn.Module,
    x: torch.Tensor,
    avail: torch.Tensor,
    doy: torch.Tensor,
    *,
    window: int = 256,
    overlap: int = 16,
    amp_dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """Apply ``model`` to one normalised series (T, C, H, W) of any size, on CPU output.

    Inputs are moved to the model's device.  Images larger than ``window`` are processed in
    overlapping windows (the ``overlap`` margins are dropped); each window is padded by
    reflection to the model's size multiple and cropped back.
    """
    device = next(model.parameters()).device
    multiple = int(getattr(model, "multiple", 1))
    t, c, h, w = x.shape
    out = torch.empty((t, c, h, w), dtype=torch.float32)
    for ys, ye, ylo, yhi in _windows(h, window, overlap):
        for xs, xe, xlo, xhi in _windows(w, window, overlap):
            xi, _ = pad_spatial(x[None, :, :, ys:ye, xs:xe].to(device), multiple)
            ai, _ = pad_spatial(avail[None, :, ys:ye, xs:xe].to(device), multiple)
            with autocast(device, amp_dtype):
                pred = model(xi.float(), ai.float(), doy[None].to(device))
            pred = pred[0, :, :, : ye - ys, : xe - xs].float().cpu()
            out[:, :, ylo:yhi, xlo:xhi] = pred[:, :, ylo - ys : yhi - ys, xlo - xs : xhi - xs]
    return out


class Predictor:
    """A trained network with its normalisation, ready to reconstruct tiles."""

    def __init__(
        self,
        model: nn.Module,
        *,
        mean: Sequence[float],
        std: Sequence[float],
        bands: Sequence[str],
        device: torch.device,
        meta: Mapping[str, Any] | None = None,
        scale: float = REFLECTANCE_SCALE,
        window: int = 256,
        amp: bool = True,
    ) -> None:
        self.model = model.to(device).eval()
        self.mean = np.asarray(mean, dtype=np.float32)
        self.std = np.asarray(std, dtype=np.float32)
        self.bands = list(bands)
        self.device = device
        self.meta = dict(meta or {})
        self.scale = float(scale)
        self.window = int(window)
        self.amp_dtype = autocast_dtype(device, amp)

    def reconstruct(self, s2: np.ndarray, available: np.ndarray, doy: np.ndarray) -> np.ndarray:
        """Reconstruct every date and pixel of one tile.

        Args:
            s2: (T, C, H, W) uint16 digital numbers (reflectance x 10000, 0 = nodata).
            available: (T, H, W) bool, pixels the model may use (e.g. ``TileSeries.clear``);
                nodata pixels are never used.
            doy: (T,) day of year.

        Returns:
            (T, C, H, W) float32 reflectance (DN / 10000): the raw network output at every
            pixel, observed ones included (not replaced by the observations).
        """
        s2 = np.asarray(s2)
        available = np.asarray(available, dtype=bool)
        doy = np.asarray(doy)
        if s2.ndim != 4 or s2.shape[1] != len(self.bands):
            raise InputDataError(
                f"s2 must be (T, {len(self.bands)}, H, W) for bands {self.bands}, got {s2.shape}"
            )
        t, _, h, w = s2.shape
        if available.shape != (t, h, w) or doy.shape != (t,):
            raise InputDataError(
                f"available {available.shape} / doy {doy.shape} do not match s2 {s2.shape}"
            )
        avail = available & (s2 != NODATA).any(axis=1)
        norm = (s2.astype(np.float32) / np.float32(self.scale) - self.mean[:, None, None]) / (
            self.std[:, None, None]
        )
        norm = np.where(avail[:, None], norm, np.float32(0)).astype(np.float32, copy=False)
        self.model.eval()
        out = run_model(
            self.model,
            torch.from_numpy(norm),
            torch.from_numpy(avail.astype(np.float32)),
            torch.from_numpy(doy.astype(np.int64)),
            window=self.window,
            amp_dtype=self.amp_dtype,
        ).numpy()
        return out * self.std[:, None, None] + self.mean[:, None, None]


def load_model(
    path: str | os.PathLike[str], device: str | torch.device = "auto", window: int = 256
) -> Predictor:
    """Read a model file written by ``train_model`` (``weights_only=True``).

    Raises ModelFileError naming the file when it is missing, unreadable, of another
    ``format_version`` or lacks keys.  ``window`` bounds the pixels processed at once.
    """
    from .train import select_device  # local: train imports this module

    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"model file {path} does not exist")
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # unpickling errors come in many types
        raise ModelFileError(f"cannot read model file {path}: {exc}") from exc
    if not isinstance(blob, dict):
        raise ModelFileError(f"model file {path}: expected a dict, got {type(blob).__name__}")
    missing = [k for k in REQUIRED_KEYS if k not in blob]
    if missing:
        raise ModelFileError(f"model file {path}: missing keys {missing}")
    if blob["format_version"] != MODEL_FORMAT_VERSION:
        raise ModelFileError(
            f"model file {path}: format_version {blob['format_version']!r}, "
            f"expected {MODEL_FORMAT_VERSION}"
        )
    try:
        spec, norm = blob["model"], blob["norm"]
        model = build_model(spec["name"], **spec["kwargs"])
        model.load_state_dict(blob["state_dict"])
        mean, std = norm["mean"], norm["std"]
    except (CloudfreeError, KeyError, TypeError, RuntimeError) as exc:
        raise ModelFileError(f"model file {path}: {exc}") from exc
    dev = device if isinstance(device, torch.device) else select_device(device)
    meta = {k: v for k, v in blob.items() if k != "state_dict"}
    amp = bool(blob.get("params", {}).get("amp", True))
    return Predictor(
        model,
        mean=mean,
        std=std,
        bands=blob["bands"],
        device=dev,
        meta=meta,
        window=window,
        amp=amp,
    )

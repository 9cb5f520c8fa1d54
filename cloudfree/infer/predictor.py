"""A trained model ready to reconstruct whole tiles of any size, in sliding windows.

Reads a model file (:mod:`cloudfree.modelfile`) in :func:`load_model`; writes nothing.
:func:`run_products` runs any registered model over a normalised series (training's
validation uses it too); :class:`Predictor` adds the normalisation and the checks of a tile,
and the scaling of its Sentinel-1 input for a model that takes one (``s1_channels`` > 0,
:mod:`cloudfree.models.s1`).
"""

from __future__ import annotations

import contextlib
import itertools
import os
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from cloudfree.bands import NODATA, REFLECTANCE_SCALE
from cloudfree.device import autocast, autocast_dtype, select_device
from cloudfree.errors import ConfigError, InputDataError, ModelFileError
from cloudfree.infer.blend import blend
from cloudfree.modelfile import read_model_file
from cloudfree.models.network import pad_spatial
from cloudfree.models.s1 import S1_BANDS, scale_s1


def bottleneck_module(model: nn.Module) -> nn.Module:
    """The module whose output is the encoder embedding (the temporal bottleneck).

    Networks name it ``temporal`` (see :mod:`cloudfree.models.network`); its output's first element
    is (B, T, C, h, w).
    """
    module = getattr(model, "temporal", None)
    if not isinstance(module, nn.Module):
        raise ModelFileError(
            f"{type(model).__name__} has no 'temporal' bottleneck to take embeddings from"
        )
    return module


@contextlib.contextmanager
def capture_bottleneck(model: nn.Module) -> Iterator[dict[str, torch.Tensor]]:
    """A forward hook on the bottleneck; the dict holds its last output under ``"feat"``."""
    store: dict[str, torch.Tensor] = {}

    def hook(_module: nn.Module, _inputs: Any, output: Any) -> None:
        store["feat"] = output[0] if isinstance(output, tuple) else output

    handle = bottleneck_module(model).register_forward_hook(hook)
    try:
        yield store
    finally:
        handle.remove()


def module_device(model: nn.Module) -> torch.device:
    """The device of a module's first parameter or buffer; the CPU for one without any (a
    network run by another runtime, :mod:`cloudfree.infer.exported`)."""
    for tensor in itertools.chain(model.parameters(), model.buffers()):
        return tensor.device
    return torch.device("cpu")


def _upsample(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear upsampling of the last two dims of (..., h, w) to ``size``."""
    lead = x.shape[:-2]
    flat = x.reshape(-1, 1, *x.shape[-2:]).float()
    out = F.interpolate(flat, size=size, mode="bilinear", align_corners=False)
    return out.reshape(*lead, *size)


def run_model(
    model: nn.Module,
    x: torch.Tensor,
    avail: torch.Tensor,
    doy: torch.Tensor,
    *,
    window: int,
    overlap: int,
    batch_size: int,
    amp_dtype: torch.dtype | None,
    s1: torch.Tensor | None = None,
) -> torch.Tensor:
    """(T, C, H, W) reconstruction of a normalised series of any size (:func:`run_products`)."""
    return run_products(
        model, x, avail, doy, window=window, overlap=overlap, batch_size=batch_size,
        amp_dtype=amp_dtype, s1=s1,
    )["pred"]  # fmt: skip


@torch.inference_mode()
def run_products(
    model: nn.Module,
    x: torch.Tensor,
    avail: torch.Tensor,
    doy: torch.Tensor,
    *,
    window: int,
    overlap: int,
    batch_size: int,
    amp_dtype: torch.dtype | None,
    embed_channels: Sequence[int] | None = None,
    change_pairs: Sequence[tuple[int, int]] | None = None,
    s1: torch.Tensor | None = None,
) -> dict[str, torch.Tensor]:
    """Apply ``model`` to one normalised series (T, C, H, W) of any size; CPU outputs.

    ``s1`` (T, 3, H, W), the scaled Sentinel-1 input of a model that takes it
    (:func:`cloudfree.models.s1.scale_s1`), is cut into the same windows and padded alike.

    Images larger than ``window`` are cut into overlapping windows (``batch_size`` at a time)
    whose outputs are blended with smooth weights (:mod:`cloudfree.infer.blend`); each window is
    padded by reflection to the model's size multiple and cropped back.  Returns ``pred``
    (T, C, H, W); with ``embed_channels`` also ``embedding`` (T, K, H, W): those channels of
    the bottleneck features, upsampled bilinearly; with ``change_pairs`` (date indices
    (a, b)) also ``change`` (P, H, W): the cosine similarity of the two dates' bottleneck
    features, upsampled likewise.
    """
    device = module_device(model)
    multiple = int(getattr(model, "multiple", 1))
    t, _, h, w = x.shape
    need_feat = bool(embed_channels) or bool(change_pairs)
    channels = list(embed_channels or [])
    pairs = list(change_pairs or [])

    def apply(offsets: list[tuple[int, int]], size: tuple[int, int]) -> dict[str, torch.Tensor]:
        wh, ww = size
        xs = torch.stack([x[:, :, y0 : y0 + wh, x0 : x0 + ww] for y0, x0 in offsets])
        av = torch.stack([avail[:, y0 : y0 + wh, x0 : x0 + ww] for y0, x0 in offsets])
        xi, _ = pad_spatial(xs.to(device), multiple)
        ai, _ = pad_spatial(av.to(device), multiple)
        days = doy[None].expand(len(offsets), t).to(device)
        radar = {}
        if s1 is not None:
            rs = torch.stack([s1[:, :, y0 : y0 + wh, x0 : x0 + ww] for y0, x0 in offsets])
            radar["s1"] = pad_spatial(rs.to(device), multiple)[0].float()
        hook = capture_bottleneck(model) if need_feat else contextlib.nullcontext({})
        with hook as store, autocast(device, amp_dtype):
            pred = model(xi.float(), ai.float(), days, **radar)
        out = {"pred": pred[..., :wh, :ww].float()}
        if need_feat:
            feat = store["feat"].float()  # (B, T, Cb, hb, wb)
            padded = (int(xi.shape[-2]), int(xi.shape[-1]))
            if channels:
                out["embedding"] = _upsample(feat[:, :, channels], padded)[..., :wh, :ww]
            if pairs:
                cos = torch.stack(
                    [F.cosine_similarity(feat[:, a], feat[:, b], dim=1) for a, b in pairs], 1
                )
                out["change"] = _upsample(cos, padded)[..., :wh, :ww]
        return out

    return blend(
        apply, (h, w), window=window, overlap=overlap, batch_size=batch_size, multiple=multiple
    )


class Predictor:
    """A trained network with its normalisation, ready to reconstruct tiles.

    A network with Sentinel-1 input (:attr:`s1_channels` > 0) needs the tiles' ``s1``.
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        mean: Sequence[float],
        std: Sequence[float],
        bands: Sequence[str],
        device: torch.device,
        window: int,
        overlap: int,
        batch_size: int,
        amp: bool,
        meta: Mapping[str, Any] | None = None,
        scale: float = REFLECTANCE_SCALE,
    ) -> None:
        self.model = model.to(device).eval()
        self.mean = np.asarray(mean, dtype=np.float32)
        self.std = np.asarray(std, dtype=np.float32)
        self.bands = list(bands)
        self.device = device
        self.meta = dict(meta or {})
        self.scale = float(scale)
        self.window = int(window)
        self.overlap = int(overlap)
        self.batch_size = int(batch_size)
        self.amp_dtype = autocast_dtype(device, amp)
        self.s1_channels = int(getattr(model, "s1_channels", 0))

    @property
    def embedding_size(self) -> int:
        """Channels of the bottleneck features (the encoder embedding)."""
        widths = getattr(self.model, "widths", None)
        if widths:
            return int(widths[-1])
        return int(self.meta.get("model", {}).get("kwargs", {}).get("widths", [0])[-1])

    def predict(
        self,
        s2: np.ndarray,
        available: np.ndarray,
        doy: np.ndarray,
        *,
        embed_channels: Sequence[int] | None = None,
        change_pairs: Sequence[tuple[int, int]] | None = None,
        s1: np.ndarray | None = None,
    ) -> dict[str, np.ndarray]:
        """Reconstruct every date and pixel of one tile, optionally with embeddings.

        Args:
            s2: (T, C, H, W) uint16 digital numbers (reflectance x 10000, 0 = nodata).
            available: (T, H, W) bool, pixels the model may use (e.g. ``TileSeries.clear``);
                nodata pixels are never used.
            doy: (T,) day of year.
            embed_channels: bottleneck channels to return as ``embedding`` (T, K, H, W).
            change_pairs: (a, b) date indices; ``change`` (P, H, W) is the cosine
                similarity of their embeddings (1 = no change).
            s1: (T, 2, H, W) Sentinel-1 VV/VH in dB, NaN where none (``TileSeries.s1``):
                required by a model with S1 input (InputDataError without), ignored by
                any other.

        Returns:
            ``pred``: (T, C, H, W) float32 reflectance (DN / 10000): the raw network output at
            every pixel, observed ones included; plus the requested products.
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
        radar = self._radar(s1, (t, h, w))
        channels = list(embed_channels or [])
        size = self.embedding_size
        bad = [ch for ch in channels if not 0 <= int(ch) < size]
        if bad:
            raise ConfigError(
                f"infer.embeddings.channels {bad} out of range: the model's embedding has "
                f"{size} channels (0..{size - 1})"
            )
        pairs = [(int(a), int(b)) for a, b in (change_pairs or [])]
        if any(not (0 <= a < t and 0 <= b < t) for a, b in pairs):
            raise InputDataError(f"change pairs {pairs} out of range for {t} dates")
        avail = available & (s2 != NODATA).any(axis=1)
        norm = (s2.astype(np.float32) / np.float32(self.scale) - self.mean[:, None, None]) / (
            self.std[:, None, None]
        )
        norm = np.where(avail[:, None], norm, np.float32(0)).astype(np.float32, copy=False)
        self.model.eval()
        out = run_products(
            self.model,
            torch.from_numpy(norm),
            torch.from_numpy(avail.astype(np.float32)),
            torch.from_numpy(doy.astype(np.int64)),
            window=self.window,
            overlap=self.overlap,
            batch_size=self.batch_size,
            amp_dtype=self.amp_dtype,
            embed_channels=channels,
            change_pairs=pairs,
            s1=radar,
        )
        result = {k: v.numpy() for k, v in out.items()}
        result["pred"] = result["pred"] * self.std[:, None, None] + self.mean[:, None, None]
        return result

    def reconstruct(
        self,
        s2: np.ndarray,
        available: np.ndarray,
        doy: np.ndarray,
        s1: np.ndarray | None = None,
    ) -> np.ndarray:
        """(T, C, H, W) float32 reflectance of every date and pixel (see :meth:`predict`)."""
        return self.predict(s2, available, doy, s1=s1)["pred"]

    def _radar(self, s1: np.ndarray | None, size: tuple[int, int, int]) -> torch.Tensor | None:
        """The scaled (T, 3, H, W) S1 input of a model that takes it, else None."""
        if not self.s1_channels:
            return None
        if s1 is None:
            raise InputDataError(
                "the model was trained with Sentinel-1 input (train.inputs.s1) but no s1 "
                f"({', '.join(S1_BANDS)} in dB) was given"
            )
        t, h, w = size
        s1 = np.asarray(s1)
        if s1.shape != (t, len(S1_BANDS), h, w):
            raise InputDataError(
                f"s1 must be (T, {len(S1_BANDS)}, H, W) = {(t, len(S1_BANDS), h, w)} like s2, "
                f"got {s1.shape}"
            )
        return torch.from_numpy(scale_s1(s1))


def load_model(
    path: str | os.PathLike[str],
    device: str | torch.device,
    *,
    window: int,
    overlap: int,
    batch_size: int,
    amp: bool,
    bands: Sequence[str] | None = None,
) -> Predictor:
    """A :class:`Predictor` for a model file (:func:`cloudfree.modelfile.read_model_file`).

    Everything needed (architecture, weights, normalisation, bands) comes from the file;
    ``device`` is an ``infer.device`` value or a torch device, ``window``/``overlap``/
    ``batch_size`` set the sliding windows and ``amp`` mixed precision on CUDA.  Raises
    ModelFileError naming the file when it is missing, unreadable, of another
    ``format_version``, lacks keys, or (with ``bands``, the data's band names) was trained
    on other bands.
    """
    model, meta = read_model_file(path, bands=bands)
    dev = device if isinstance(device, torch.device) else select_device(device, "infer.device")
    return Predictor(
        model,
        mean=meta["norm"]["mean"],
        std=meta["norm"]["std"],
        bands=meta["bands"],
        device=dev,
        meta=meta,
        window=window,
        overlap=overlap,
        batch_size=batch_size,
        amp=amp,
    )

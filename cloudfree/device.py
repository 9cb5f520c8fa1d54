"""Device selection and mixed precision, for training and inference alike (no file I/O)."""

from __future__ import annotations

import contextlib

from cloudfree.errors import ConfigError
from cloudfree.extras import missing_extra

try:
    import torch
except ImportError as exc:
    raise missing_extra("torch", "train") from exc


def autocast_dtype(device: torch.device, enabled: bool) -> torch.dtype | None:
    """Mixed-precision dtype: bf16 on CUDA GPUs that support it natively (Ampere on), else
    fp16 (with a gradient scaler in training); None off CUDA.  Emulated bf16 (V100, T4) is
    slower than fp16 there, so it does not count."""
    if not enabled or device.type != "cuda":
        return None
    native = torch.cuda.is_bf16_supported(including_emulation=False)
    return torch.bfloat16 if native else torch.float16


def autocast(device: torch.device, dtype: torch.dtype | None) -> contextlib.AbstractContextManager:
    """``torch.autocast`` for ``dtype``, or a no-op context when it is None."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def require_cuda_for_gpus(gpus: int, device: str, key: str) -> None:
    """A job given GPUs with ``device: auto`` must see one: otherwise torch is a CPU build (or
    the driver is missing) and the job would quietly run on the CPU for hours."""
    if gpus > 0 and device == "auto" and not torch.cuda.is_available():
        raise ConfigError(
            f"this job was given {gpus} GPU(s) (resource gpu) but torch {torch.__version__} "
            f"sees no CUDA device (CUDA build: {torch.version.cuda or 'none'}): install a CUDA "
            f"build of torch (README, 'Training on a cluster'), or set {key}: cpu to run on the "
            "CPU anyway"
        )


def select_device(pref: str, key: str) -> torch.device:
    """The device a ``train.device`` / ``infer.device`` value names (``key``, for errors).

    ``auto``: CUDA if available, else Apple MPS, else the CPU; ``cpu``, ``mps``, ``cuda`` and
    ``cuda:N`` exactly as given, or a ConfigError naming ``key`` when that device is missing.
    """
    if pref == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    if pref == "cpu":
        return torch.device("cpu")
    if pref == "mps":
        if not _mps_available():
            raise ConfigError(f"{key}: 'mps' requested but MPS is not available; set {key}: auto")
        return torch.device("mps")
    if pref == "cuda" or pref.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise ConfigError(
                f"{key}: {pref!r} requested but CUDA is not available (torch "
                f"{torch.__version__}, CUDA build: {torch.version.cuda or 'none'}); set {key}: "
                "auto or cpu"
            )
        device = torch.device(pref)
        visible = torch.cuda.device_count()
        if device.index is not None and device.index >= visible:
            raise ConfigError(
                f"{key}: {pref!r} requested but {visible} CUDA device(s) are visible "
                f"(cuda:0..cuda:{visible - 1})"
            )
        return device
    raise ConfigError(f"{key}: device {pref!r}: expected auto, cpu, mps, cuda or cuda:N")


def _mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return mps is not None and mps.is_available()

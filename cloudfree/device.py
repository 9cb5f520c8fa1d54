"""Device selection and mixed precision, for training and inference alike."""

from __future__ import annotations

import contextlib

import torch

from cloudfree.errors import ConfigError


def autocast_dtype(device: torch.device, enabled: bool = True) -> torch.dtype | None:
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
    if gpus > 0 and str(device).lower() == "auto" and not torch.cuda.is_available():
        raise ConfigError(
            f"this job was given {gpus} GPU(s) (resource gpu) but torch {torch.__version__} "
            f"sees no CUDA device (CUDA build: {torch.version.cuda or 'none'}): install a CUDA "
            f"build of torch (README, 'Training on a cluster'), or set {key}: cpu to run on the "
            "CPU anyway"
        )


def select_device(pref: str = "auto") -> torch.device:
    """``auto``: CUDA if available, else Apple MPS, else CPU; or exactly ``cpu``/``cuda[:n]``."""
    pref = str(pref).strip().lower()
    if pref == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if pref == "cpu":
        return torch.device("cpu")
    if pref == "cuda" or pref.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise ConfigError(f"device {pref!r} requested but CUDA is not available")
        return torch.device(pref)
    if pref == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise ConfigError("device 'mps' requested but MPS is not available")
        return torch.device("mps")
    raise ConfigError(f"device {pref!r}: expected auto, cpu, cuda or cuda:N")

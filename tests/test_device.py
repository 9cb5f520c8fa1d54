"""Tests of cloudfree.device: which device a setting picks, and mixed precision."""

from __future__ import annotations

import pytest
import torch

from cloudfree.device import autocast, autocast_dtype, require_cuda_for_gpus, select_device
from cloudfree.errors import ConfigError


def _machine(monkeypatch: pytest.MonkeyPatch, *, cuda: int, mps: bool) -> None:
    """Pretend this machine has ``cuda`` CUDA devices and MPS or not."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda > 0)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: cuda)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: mps)


@pytest.mark.parametrize(
    ("cuda", "mps", "expected"),
    [(1, True, "cuda"), (2, False, "cuda"), (0, True, "mps"), (0, False, "cpu")],
)
def test_auto_prefers_cuda_then_mps_then_the_cpu(
    monkeypatch: pytest.MonkeyPatch, cuda: int, mps: bool, expected: str
) -> None:
    _machine(monkeypatch, cuda=cuda, mps=mps)
    assert select_device("auto", "train.device") == torch.device(expected)


def test_an_explicit_device_is_kept_as_given(monkeypatch: pytest.MonkeyPatch) -> None:
    _machine(monkeypatch, cuda=2, mps=True)
    assert select_device("cpu", "train.device") == torch.device("cpu")
    assert select_device("cuda", "train.device") == torch.device("cuda")
    assert select_device("cuda:1", "infer.device") == torch.device("cuda", 1)
    assert select_device("mps", "infer.device") == torch.device("mps")


def test_an_unavailable_device_is_an_error_naming_the_key(monkeypatch: pytest.MonkeyPatch) -> None:
    _machine(monkeypatch, cuda=0, mps=False)
    with pytest.raises(ConfigError, match=r"^train\.device: 'cuda' requested but CUDA is not"):
        select_device("cuda", "train.device")
    with pytest.raises(ConfigError, match=r"^infer\.device: 'cuda:0' requested but CUDA"):
        select_device("cuda:0", "infer.device")
    with pytest.raises(ConfigError, match=r"^infer\.device: 'mps' requested but MPS"):
        select_device("mps", "infer.device")
    _machine(monkeypatch, cuda=1, mps=False)
    with pytest.raises(ConfigError, match=r"^train\.device: 'cuda:1' requested but 1 CUDA"):
        select_device("cuda:1", "train.device")
    assert select_device("cpu", "train.device") == torch.device("cpu")  # always there
    with pytest.raises(ConfigError, match=r"^train\.device: device 'tpu'"):
        select_device("tpu", "train.device")


def test_a_gpu_job_that_sees_no_cuda_stops(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ConfigError, match=r"given 2 GPU\(s\).*set infer\.device: cpu"):
        require_cuda_for_gpus(2, "auto", "infer.device")
    require_cuda_for_gpus(1, "cpu", "train.device")  # the user asked for the CPU
    require_cuda_for_gpus(0, "auto", "train.device")  # no GPU given: the CPU is expected


def test_mixed_precision_dtype_ignores_emulated_bf16(monkeypatch: pytest.MonkeyPatch) -> None:
    cuda = torch.device("cuda")
    for native, expected in ((False, torch.float16), (True, torch.bfloat16)):
        # a V100/T4 answers True only when emulation counts
        monkeypatch.setattr(
            torch.cuda, "is_bf16_supported",
            lambda including_emulation=True, n=native: n or including_emulation,
        )  # fmt: skip
        assert autocast_dtype(cuda, True) == expected
    assert autocast_dtype(cuda, False) is None
    assert autocast_dtype(torch.device("cpu"), True) is None


def test_autocast_is_a_no_op_without_a_dtype() -> None:
    with autocast(torch.device("cpu"), None):
        assert not torch.is_autocast_enabled("cpu")
    with autocast(torch.device("cpu"), torch.bfloat16):
        assert torch.is_autocast_enabled("cpu")

"""Tests of cloudfree.train.monitor: the TensorBoard events and progress lines of a run."""

from __future__ import annotations

import math
from typing import Any

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from cloudfree.train.monitor import TensorBoardLog, progress_line


def test_tensorboard_events(trained: dict[str, Any]) -> None:
    events = EventAccumulator(str(trained["model"].parent / "tensorboard"))
    events.Reload()
    tags = events.Tags()
    for tag in ("train/loss", "train/lr", "train/grad_norm", "train/samples_per_second",
                "val/mae_masked", "val/psnr_masked"):  # fmt: skip
        assert tag in tags["scalars"], tag
    assert [e.step for e in events.Scalars("val/mae_masked")] == [20, 40, 60]
    assert len(events.Scalars("train/loss")) == 60
    assert "val/input_reconstruction_truth" in tags["images"]
    assert (trained["model"].parent / "checkpoints/last_model.pt").is_file()


def test_a_disabled_log_writes_nothing(tmp_path) -> None:
    log = TensorBoardLog(None, 0)
    log.scalars(1, {"train/loss": 1.0})
    log.close()
    assert list(tmp_path.iterdir()) == []


def test_progress_line(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("INFO")
    row = {"train_loss": 0.5, "grad_norm": 0.25, "lr": 1e-3, "val_mae_masked": 0.0123,
           "val_psnr_masked": 30.5}  # fmt: skip
    progress_line(40, 60, 3, 20, row, {"mae": 0.0111, "step": 20}, 12.3, 512.0)
    assert "epoch 2/3 step 40/60: loss 0.5000" in caplog.text
    assert "val masked MAE 0.0123 PSNR 30.50 dB (best 0.0111 @ 20)" in caplog.text
    assert "12.3 samples/s, GPU peak 512 MB" in caplog.text
    caplog.clear()
    progress_line(10, 60, 3, 20, {**row, "val_mae_masked": math.nan}, {}, 1.0)
    assert "val masked" not in caplog.text and "GPU" not in caplog.text

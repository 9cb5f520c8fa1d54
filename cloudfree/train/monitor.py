"""What a run reports while it trains: TensorBoard event files and progress lines.

Writes the event files under the folder it is given and one log line per epoch; reads
validation tiles (:class:`cloudfree.train.dataset.EvalTiles`) for the example images.
"""

from __future__ import annotations

import logging
import math
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from cloudfree.extras import missing_extra

try:
    import torch
    from torch import nn
except ImportError as exc:
    raise missing_extra("torch", "train") from exc

from cloudfree.train.dataset import EvalTiles
from cloudfree.train.validate import reconstruct

log = logging.getLogger("cloudfree.train")


class TensorBoardLog:
    """TensorBoard event files of one run (a no-op when disabled or unavailable)."""

    def __init__(self, folder: Path | None, resume_step: int) -> None:
        self.writer = None
        if folder is None:
            return
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:  # tensorboard comes with the train extra; do not die for a log
            log.warning("%s: no event files", missing_extra("tensorboard", "train"))
            return
        if resume_step == 0 and folder.exists():
            shutil.rmtree(folder)  # a fresh run: old curves would only confuse
        # purge_step drops events a killed run wrote after its last checkpoint.
        self.writer = SummaryWriter(
            str(folder), purge_step=resume_step + 1 if resume_step else None
        )

    def scalars(self, step: int, values: Mapping[str, float]) -> None:
        if self.writer is not None:
            for tag, value in values.items():
                if value is not None and math.isfinite(value):
                    self.writer.add_scalar(tag, value, step)

    def example(
        self,
        step: int,
        model: nn.Module,
        tiles: EvalTiles,
        norm: tuple[np.ndarray, np.ndarray],
        bands: Sequence[str],
        amp_dtype: torch.dtype | None,
        kept: Mapping[str, Any] | None = None,
    ) -> None:
        """Input, reconstruction and truth (RGB) of the first val tile's most-hidden date;
        ``kept``: that tile's item and reconstruction from the validation just run (the
        ``keep`` of :func:`cloudfree.train.validate.evaluate`), else it is reconstructed."""
        if self.writer is None or len(tiles) == 0:
            return
        item = kept["item"] if kept else tiles[0]
        whole = kept.get("pred") if kept else None
        t = int(item["hidden"].flatten(1).sum(1).argmax())
        pred = (whole if whole is not None else reconstruct(model, item, amp_dtype))[t]
        rgb = [bands.index(b) if b in bands else i for i, b in enumerate(("B04", "B03", "B02"))]
        rgb = [min(i, len(bands) - 1) for i in rgb]
        mean = torch.as_tensor(norm[0])[rgb, None, None]
        std = torch.as_tensor(norm[1])[rgb, None, None]
        panels = [item["x"][t, rgb], pred[rgb], item["target"][t, rgb]]
        images = torch.stack([(v * std + mean) * 3.5 for v in panels]).clamp(0, 1)
        images[0] *= item["avail"][t][None]  # unseen input pixels black
        self.writer.add_images("val/input_reconstruction_truth", images, step)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def progress_line(
    step: int,
    steps: int,
    epochs: int,
    val_every: int,
    row: Mapping[str, Any],
    best: Mapping[str, Any],
    speed: float,
    gpu_mb: float | None = None,
) -> None:
    """Log the end of an epoch: loss, gradient norm, rate, val scores, speed (GPU memory)."""
    epoch = math.ceil(step / val_every)
    mem = f", GPU peak {gpu_mb:.0f} MB" if gpu_mb is not None else ""
    val = (
        f", val masked MAE {row['val_mae_masked']:.4f} PSNR {row['val_psnr_masked']:.2f} dB "
        f"(best {best['mae']:.4f} @ {best['step']})"
        if math.isfinite(row["val_mae_masked"])
        else ""
    )
    log.info(
        "epoch %d/%d step %d/%d: loss %.4f, grad norm %.3f, lr %.2e%s, %.1f samples/s%s",
        epoch, epochs, step, steps, row["train_loss"], row["grad_norm"], row["lr"], val, speed,
        mem,
    )  # fmt: skip

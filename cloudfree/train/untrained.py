"""Models that need no training (the gap-filling baselines): scored once, files written.

Reads the val tiles; writes the model file (:mod:`cloudfree.modelfile`) and a one-row history
(:mod:`cloudfree.train.history`), so inference and metrics treat a baseline like a network.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from cloudfree.extras import missing_extra
from cloudfree.modelfile import save_model_file
from cloudfree.packed import PackedMeta
from cloudfree.train.checkpoint import cpu_state
from cloudfree.train.dataset import EvalTiles
from cloudfree.train.history import write_history
from cloudfree.train.validate import evaluate

try:
    import torch
    from torch import nn
except ImportError as exc:
    raise missing_extra("torch", "train") from exc

log = logging.getLogger("cloudfree.train")


def write_untrained(
    model: nn.Module,
    name: str,
    kwargs: Mapping[str, Any],
    norm: tuple[np.ndarray, np.ndarray],
    meta: PackedMeta,
    p: Mapping[str, Any],
    val_tiles: EvalTiles,
    model_out: Path,
    history_out: Path,
    amp_dtype: torch.dtype | None,
    main: bool,
) -> dict[str, Any]:
    """No optimizer step: score ``model`` on the val gaps, write its files (``main``), return
    the summary."""
    scores = evaluate(model, val_tiles, norm[1], amp_dtype) if len(val_tiles) else {
        "mae": math.nan, "psnr": math.nan}  # fmt: skip
    val_tiles.close()
    log.info("%s needs no training; val masked MAE %.4f", name, scores["mae"])
    row = {
        "step": 0, "lr": 0.0, "train_loss": math.nan, "grad_norm": math.nan,
        "val_mae_masked": scores["mae"], "val_psnr_masked": scores["psnr"], "seconds": 0.0,
    }  # fmt: skip
    if main:
        save_model_file(
            model_out, name=name, kwargs=kwargs, state_dict=cpu_state(model), mean=norm[0],
            std=norm[1], bands=meta.bands, regions=meta.regions, params=p, best_step=0,
            val_mae_masked=float(scores["mae"]), steps_done=0,
        )  # fmt: skip
        write_history([row], history_out)
    return {
        "steps": 0,
        "best_step": 0,
        "val_mae_masked": float(scores["mae"]),
        "val_psnr_masked": float(scores["psnr"]),
        "parameters": 0,
        "seconds": 0.0,
    }

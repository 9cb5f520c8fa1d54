"""The history CSV of a training run: one row per optimiser step.

Columns: step, lr (rate used for that step), train_loss, grad_norm (before clipping),
val_mae_masked, val_psnr_masked (empty unless validated at that step), seconds (wall time of
the training loop, summed over resumed runs).  A model that needs no training has one row,
step 0, with its validation scores.  :func:`write_history` writes the file atomically.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from cloudfree.io import atomic_path

HISTORY_COLUMNS = (
    "step", "lr", "train_loss", "grad_norm", "val_mae_masked", "val_psnr_masked", "seconds",
)  # fmt: skip


def write_history(rows: Sequence[Mapping[str, Any]], path: str | os.PathLike[str]) -> None:
    """Write the rows (dicts keyed by :data:`HISTORY_COLUMNS`) as the history CSV."""
    with atomic_path(path) as tmp:
        pd.DataFrame(list(rows), columns=list(HISTORY_COLUMNS)).to_csv(tmp, index=False)

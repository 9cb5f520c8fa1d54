"""Resumable training state: written atomically, found again after a kill or a time-out.

A checkpoint folder (``results/models/<experiment>/checkpoints/`` in the workflow, not a
declared Snakemake output, so a failed job's rerun does not delete it) holds:

- ``state.pt``: everything needed to continue exactly where the run stopped (model,
  optimizer, scheduler and grad-scaler states, RNG states, step, history, best-so-far
  weights, early-stopping counter) and the run's *fingerprint*;
- ``last_model.pt``: the last weights of a finished run, in the model-file format.

The fingerprint hashes the training parameters that change the result and the identity of
the input files (name, size, modification time): a checkpoint from other parameters or
other data is never resumed (it is set aside with a warning and training starts at step 0).
``state.pt`` loads with ``torch.load(..., weights_only=True)``: it holds only tensors and
plain containers.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import random
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cloudfree.io import atomic_path

log = logging.getLogger("cloudfree.checkpoint")

CHECKPOINT_VERSION = 1
STATE_NAME = "state.pt"
LAST_MODEL_NAME = "last_model.pt"
# Parameters that do not change the trained weights: a resume may change them.
RUNTIME_KEYS = frozenset(
    {"device", "num_workers", "compile", "checkpoint_every", "tensorboard", "amp"}
)


def fingerprint(params: Mapping[str, Any], paths: Sequence[str | os.PathLike[str]]) -> str:
    """Hash of the result-changing ``params`` and of the input files' name, size and mtime."""
    relevant = {k: v for k, v in params.items() if k not in RUNTIME_KEYS}
    files = []
    for path in paths:
        st = os.stat(path)
        files.append([os.path.basename(str(path)), st.st_size, st.st_mtime_ns])
    text = json.dumps({"params": relevant, "files": files}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def rng_state() -> dict[str, Any]:
    """Torch (CPU and CUDA), numpy and Python RNG states as tensors and plain values."""
    np_state = np.random.get_state()  # noqa: NPY002 (global state, used by libraries)
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "keys": torch.from_numpy(np.asarray(np_state[1], dtype=np.int64)),
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "cached": float(np_state[4]),
        },
        "python": list(random.getstate()[1]),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: Mapping[str, Any]) -> None:
    """Restore what :func:`rng_state` returned."""
    torch.set_rng_state(state["torch"])
    npst = state["numpy"]
    np.random.set_state(  # noqa: NPY002
        (
            "MT19937",
            npst["keys"].numpy().astype(np.uint32),
            npst["pos"],
            npst["has_gauss"],
            npst["cached"],
        )
    )
    random.setstate((3, tuple(state["python"]), None))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


class CheckpointStore:
    """The checkpoint folder of one training run."""

    def __init__(self, folder: str | os.PathLike[str], fingerprint: str) -> None:
        self.folder = Path(folder)
        self.fingerprint = fingerprint

    @property
    def state_path(self) -> Path:
        return self.folder / STATE_NAME

    @property
    def last_model_path(self) -> Path:
        return self.folder / LAST_MODEL_NAME

    def save(self, state: Mapping[str, Any]) -> Path:
        """Write ``state`` (plus version and fingerprint) atomically to ``state.pt``."""
        blob = {**state, "version": CHECKPOINT_VERSION, "fingerprint": self.fingerprint}
        with atomic_path(self.state_path) as tmp:
            torch.save(blob, tmp)
        return self.state_path

    def load(self) -> dict[str, Any] | None:
        """The saved state of this run, or None (no file, other run, or unreadable)."""
        path = self.state_path
        if not path.is_file():
            return None
        try:
            blob = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # a truncated file cannot happen (atomic), but be safe
            log.warning("checkpoint %s is unreadable (%s): starting from step 0", path, exc)
            self._set_aside("unreadable")
            return None
        if blob.get("version") != CHECKPOINT_VERSION or blob.get("fingerprint") != (
            self.fingerprint
        ):
            log.warning(
                "checkpoint %s belongs to other parameters or data (fingerprint %s, this run "
                "%s): set aside, starting from step 0",
                path, blob.get("fingerprint"), self.fingerprint,
            )  # fmt: skip
            self._set_aside("stale")
            return None
        return blob

    def _set_aside(self, why: str) -> None:
        # Every DDP rank looks at the same file: another rank may have moved it already.
        with contextlib.suppress(FileNotFoundError):
            self.state_path.replace(self.folder / f"{STATE_NAME}.{why}")

    def clear(self) -> None:
        """Remove the resumable state (the run finished)."""
        for path in (self.state_path, *self.folder.glob(f"{STATE_NAME}.*")):
            path.unlink(missing_ok=True)

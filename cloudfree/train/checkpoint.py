"""Resumable training state: written atomically, found again after a kill or a time-out.

A checkpoint folder (``results/models/<experiment>/checkpoints/`` in the workflow, not a
declared Snakemake output, so a failed job's rerun does not delete it) holds:

- ``state.pt``: everything needed to continue exactly where the run stopped (model,
  optimizer, scheduler and grad-scaler states, RNG states, and the :class:`RunState`: step,
  history, best-so-far weights, early-stopping counter) and the run's *fingerprint*;
- ``last_model.pt``: the last weights of a finished run, in the model-file format.

A run's last checkpoint is that of its final step: ``state.pt`` is removed only once the
model file is in place under its final name (:func:`release`; the rule train releases it
after all of its outputs are written), so a run killed while writing its files resumes at
its final step and only writes them again.

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
import math
import os
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cloudfree.extras import missing_extra
from cloudfree.io import atomic_path

try:
    import torch
    from torch import nn
except ImportError as exc:
    raise missing_extra("torch", "train") from exc

log = logging.getLogger("cloudfree.checkpoint")

CHECKPOINT_VERSION = 1
STATE_NAME = "state.pt"
LAST_MODEL_NAME = "last_model.pt"
# Parameters that do not change the trained weights: a resume may change them.
RUNTIME_KEYS = frozenset(
    {"device", "num_workers", "compile", "checkpoint_every", "tensorboard", "amp"}
)


def default_folder(model_out: str | os.PathLike[str]) -> Path:
    """The checkpoint folder of a model file: ``checkpoints/`` next to it."""
    return Path(model_out).parent / "checkpoints"


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


def release(
    model_out: str | os.PathLike[str], folder: str | os.PathLike[str] | None = None
) -> bool:
    """Remove the resumable state of the run that wrote ``model_out`` (its checkpoint folder,
    by default :func:`default_folder`), only if the model file is in place; True if it was."""
    if not Path(model_out).is_file():
        log.warning("model file %s is missing: checkpoint kept to resume from", model_out)
        return False
    CheckpointStore(folder if folder is not None else default_folder(model_out), "").clear()
    return True


def restore_scaler(scaler: torch.amp.GradScaler, state: Mapping[str, Any]) -> None:
    """Load a saved gradient-scaler state; a run saved without fp16 (CPU, bf16, AMP off)
    saved an empty one, and resuming it on an fp16 GPU starts a fresh scaler."""
    if state:
        scaler.load_state_dict(dict(state))


def cpu_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """A copy of the model's weights on the CPU."""
    return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}


def _no_best() -> dict[str, Any]:
    return {"step": 0, "mae": math.inf, "psnr": math.nan, "state": None}


@dataclass
class RunState:
    """What a run carries from step to step; a checkpoint saves it with the weights."""

    step: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    best: dict[str, Any] = field(default_factory=_no_best)  # step, mae, psnr, state (weights)
    bad_validations: int = 0  # validations in a row without an improvement
    elapsed: float = 0.0  # seconds trained by the runs this one resumes
    stopped_early: bool = False


@dataclass
class Trainable:
    """What a checkpoint saves besides the :class:`RunState`: the optimisation's states."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler


def save_run(
    store: CheckpointStore, state: RunState, parts: Trainable, seconds: float, world_size: int
) -> Path:
    """Write the checkpoint of a run at ``state.step``; ``seconds`` trained so far in all."""
    return store.save({
        "step": state.step, "model": cpu_state(parts.model),
        "optimizer": parts.optimizer.state_dict(), "scheduler": parts.scheduler.state_dict(),
        "scaler": parts.scaler.state_dict(), "rng": rng_state(), "history": state.history,
        "best": state.best, "bad_validations": state.bad_validations, "seconds": seconds,
        "world_size": world_size, "stopped_early": state.stopped_early,
    })  # fmt: skip


def resume_run(store: CheckpointStore, parts: Trainable, world_size: int, main: bool) -> RunState:
    """The state of the run's checkpoint, with its weights, optimiser states and RNG states
    restored into ``parts`` and the process; a fresh state when there is no checkpoint."""
    saved = store.load()
    if saved is None:
        return RunState()
    parts.model.load_state_dict(saved["model"])
    parts.optimizer.load_state_dict(saved["optimizer"])
    parts.scheduler.load_state_dict(saved["scheduler"])
    restore_scaler(parts.scaler, saved["scaler"])
    set_rng_state(saved["rng"])
    state = RunState(
        step=int(saved["step"]),
        history=list(saved["history"]),
        best=dict(saved["best"]),
        bad_validations=int(saved["bad_validations"]),
        elapsed=float(saved["seconds"]),
        stopped_early=bool(saved.get("stopped_early", False)),  # older checkpoints lack it
    )
    if main:
        log.info("resumed from step %d (checkpoint %s)", state.step, store.state_path)
        if int(saved.get("world_size", world_size)) != world_size:
            log.warning(
                "checkpoint written by %d processes, resumed by %d: the global batch "
                "and the order of the samples from step %d on differ from the "
                "uninterrupted run", saved["world_size"], world_size, state.step,
            )  # fmt: skip
    return state


def checkpoint_step(store: CheckpointStore) -> int | str:
    """Step of the checkpoint in ``store`` (for messages), '?' if unreadable."""
    try:
        return int(torch.load(store.state_path, map_location="cpu", weights_only=True)["step"])
    except Exception:
        return "?"

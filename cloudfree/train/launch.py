"""Command-line entry point of training, and the launcher that picks one or many processes.

    python -m cloudfree.train.launch --h5 results/hdf5/africa.h5 --model m.pt --history h.csv \
        --params '{"steps": 300}'

:func:`train_outputs` is the rule train: :func:`launch`, the training curve, and only then
the removal of the run's checkpoint, so a kill before every output is in place resumes the
finished run instead of training it again from step 0.

:func:`launch` runs :func:`cloudfree.train.loop.train_model` in the calling process when one
process is asked for, and otherwise starts ``torchrun --standalone --nproc_per_node=N``
(``python -m torch.distributed.run``) on this module: one process per GPU inside one job
(one Slurm allocation), DistributedDataParallel between them.  SIGTERM, SIGUSR1 and SIGINT
received by the launcher are passed on to torchrun, which passes them to the workers, which
write a checkpoint and stop (see :mod:`cloudfree.train.loop`).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from cloudfree.config import section
from cloudfree.errors import CloudfreeError
from cloudfree.extras import missing_extra
from cloudfree.train.checkpoint import release
from cloudfree.train.control import TrainingInterrupted
from cloudfree.train.curve import training_curve
from cloudfree.train.loop import train_model
from cloudfree.train.tracking import log_training_run

try:
    import torch
except ImportError as exc:
    raise missing_extra("torch", "train") from exc

log = logging.getLogger("cloudfree.train")

FORWARDED = ("SIGTERM", "SIGUSR1", "SIGINT")


def processes_for(gpus: int, device: str) -> int:
    """Training processes for a job with ``gpus`` GPUs (``device``: ``train.device``): one per
    usable GPU, else one."""
    if gpus <= 1 or device == "cpu" or not torch.cuda.is_available():
        return 1
    visible = torch.cuda.device_count()
    if visible < gpus:
        log.warning("%d GPUs requested but %d visible: using %d", gpus, visible, visible)
    return max(1, min(gpus, visible))


def launch(
    packed_paths: Sequence[str | os.PathLike[str]],
    model_out: str | os.PathLike[str],
    history_out: str | os.PathLike[str],
    params: Mapping[str, Any],
    threads: int = 1,
    processes: int = 1,
    keep_checkpoint: bool = False,
) -> dict[str, Any]:
    """Train in this process (``processes`` <= 1) or in ``processes`` torchrun workers, on a
    resolved train section ``params`` (:func:`cloudfree.config.section`).

    ``keep_checkpoint``: leave the final step's checkpoint for the caller to
    :func:`~cloudfree.train.checkpoint.release`.  Returns rank 0's summary.  Raises
    CloudfreeError when the workers fail (their messages are in this process's stderr, i.e.
    the rule's log).
    """
    if processes <= 1:
        return train_model(
            packed_paths, model_out, history_out, params, threads=threads,
            keep_checkpoint=keep_checkpoint,
        )  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="cloudfree-train-") as tmp:
        summary_path = Path(tmp) / "summary.json"
        cmd = [
            sys.executable, "-m", "torch.distributed.run", "--standalone",
            f"--nproc_per_node={processes}", "-m", "cloudfree.train.launch",
            "--h5", *map(str, packed_paths), "--model", str(model_out),
            "--history", str(history_out), "--params", json.dumps(dict(params)),
            "--threads", str(max(1, threads // processes)), "--summary", str(summary_path),
            *(["--keep-checkpoint"] if keep_checkpoint else []),
        ]  # fmt: skip
        log.info("launching %d training processes: %s", processes, " ".join(cmd[:6]))
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [
            str(Path(__file__).resolve().parents[2]), os.environ.get("PYTHONPATH")]))}  # fmt: skip
        rc = _run_forwarding_signals(cmd, env)
        if rc != 0:
            raise CloudfreeError(
                f"distributed training ({processes} processes) failed with exit code {rc}; "
                "see the workers' messages above"
            )
        return json.loads(summary_path.read_text())


def train_outputs(
    packed_paths: Sequence[str | os.PathLike[str]],
    model_out: str | os.PathLike[str],
    history_out: str | os.PathLike[str],
    curve_out: str | os.PathLike[str],
    params: Mapping[str, Any],
    threads: int = 1,
    processes: int = 1,
    *,
    tracking: str | None = None,
    run_name: str | None = None,
) -> dict[str, Any]:
    """The outputs of the rule train: :func:`launch`, then the training curve of the history,
    then (every output in place) the removal of the checkpoint; returns the summary.

    Until then the checkpoint of the final step stays, so a run killed after training (while
    the model file, the history or the curve are written) resumes at that step.

    ``tracking``: an MLflow tracking URI or path; the run (``run_name``, default: the model
    file's directory name, i.e. the experiment) is logged there once the curve is written
    (:func:`cloudfree.train.tracking.log_training_run`).  Tracking is optional and the model
    is the product: a tracking failure (MLflow missing, store unreachable) is logged as a
    warning and training still succeeds, since raising would make Snakemake delete the
    finished outputs.
    """
    summary = launch(
        packed_paths, model_out, history_out, params, threads=threads, processes=processes,
        keep_checkpoint=True,
    )  # fmt: skip
    training_curve(pd.read_csv(history_out), curve_out, run=run_name or Path(model_out).parent.name)
    if tracking:
        try:
            log_training_run(
                tracking, run_name or Path(model_out).parent.name, params,
                pd.read_csv(history_out), summary, tags={"model_file": str(model_out)},
            )  # fmt: skip
        except Exception as exc:  # the model and its history are written: keep them
            log.warning("MLflow tracking to %s failed, the model is kept: %s", tracking, exc)
    release(model_out)
    return summary


def _run_forwarding_signals(cmd: list[str], env: Mapping[str, str]) -> int:
    proc = subprocess.Popen(cmd, env=dict(env))
    old = {}

    def forward(signum: int, frame: object) -> None:
        del frame
        proc.send_signal(signum)

    for name in FORWARDED:
        sig = getattr(signal, name, None)
        if sig is not None:
            old[sig] = signal.signal(sig, forward)
    try:
        return proc.wait()
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Train a cloudfree reconstruction model.")
    parser.add_argument("--h5", nargs="+", required=True, help="packed HDF5 files")
    parser.add_argument("--model", required=True, help="model file to write")
    parser.add_argument("--history", required=True, help="history CSV to write")
    parser.add_argument(
        "--params", default="{}", help="train section as JSON (the schema fills in the rest)"
    )
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--processes", type=int, default=1, help="torchrun processes")
    parser.add_argument("--summary", help="write rank 0's summary here (JSON)")
    parser.add_argument(
        "--keep-checkpoint", action="store_true",
        help="leave the final checkpoint (the caller removes it once its outputs are written)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    logging.basicConfig(
        stream=sys.stderr,
        level=logging.INFO,
        format=f"%(asctime)s %(levelname)s [rank {os.environ.get('RANK', '0')}] %(name)s: "
        "%(message)s",
    )
    try:
        params = section("train", json.loads(args.params))
        keep = args.keep_checkpoint
        if "RANK" in os.environ or args.processes <= 1:
            summary = train_model(
                args.h5, args.model, args.history, params, args.threads, keep_checkpoint=keep
            )
        else:
            summary = launch(
                args.h5, args.model, args.history, params, args.threads, args.processes,
                keep_checkpoint=keep,
            )  # fmt: skip
    except TrainingInterrupted as exc:
        log.error("%s", exc)
        return 75  # EX_TEMPFAIL: run again to resume
    except CloudfreeError as exc:
        log.error("%s", exc)
        return 1
    if args.summary and summary.get("rank", 0) == 0:
        Path(args.summary).write_text(json.dumps(summary, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())

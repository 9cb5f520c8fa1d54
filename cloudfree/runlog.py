"""Logging for workflow scripts: everything a script says goes to its rule's log file, and
one summary line per job goes to the Snakemake console."""

from __future__ import annotations

import atexit
import logging
import os
import sys
import time
from types import TracebackType
from typing import Any, TextIO

from cloudfree.progress import duration, latest


def setup_script_logging(smk: Any) -> logging.Logger:
    """Send stderr and the ``cloudfree`` loggers to the rule's log file (``log[0]``).

    File descriptor 2 goes there too, so what native code (GDAL, HDF5) and child processes
    (torchrun workers) write to stderr lands in the same log."""
    if smk.log:
        sys.stderr = open(smk.log[0], "w", buffering=1)  # open for the job's lifetime
        os.dup2(sys.stderr.fileno(), 2)
    logging.basicConfig(
        stream=sys.stderr,
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        force=True,
    )
    logger = logging.getLogger(f"cloudfree.{smk.rule}")
    logger.info("rule %s, wildcards %s", smk.rule, dict(smk.wildcards))
    _summary_at_exit(smk, sys.__stdout__ or sys.stdout)
    return logger


def job_summary(smk: Any, seconds: float, failed: bool) -> str:
    """``cloudfree: <rule> <wildcards> done in 12 s (<last progress line>); log <path>``."""
    where = " ".join(f"{k}={v}" for k, v in dict(smk.wildcards).items())
    text = f"cloudfree: {smk.rule}{' ' + where if where else ''} "
    text += f"{'FAILED after' if failed else 'done in'} {duration(seconds)}"
    last = latest()
    if last is not None:
        text += f" ({last})"
    if smk.log:
        text += f"; log {smk.log[0]}"
    return text


def _summary_at_exit(smk: Any, console: TextIO) -> None:
    """At the script's exit, one :func:`job_summary` line on the console (the script's
    stdout, which Snakemake shows); a failure is told by an uncaught exception."""
    start, failed = time.monotonic(), []
    previous = sys.excepthook

    def hook(kind: type[BaseException], error: BaseException, tb: TracebackType | None) -> None:
        failed.append(True)
        previous(kind, error, tb)

    def report() -> None:
        try:
            console.write(job_summary(smk, time.monotonic() - start, bool(failed)) + "\n")
            console.flush()
        except (OSError, ValueError):  # no console left (closed by whoever ran the script)
            pass

    sys.excepthook = hook
    atexit.register(report)

"""Logging for workflow scripts: everything a script says goes to its rule's log file."""

from __future__ import annotations

import logging
import os
import sys
from typing import Any


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
    return logger

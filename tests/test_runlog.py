"""Script logging: Python, native code and child processes all write to the rule's log."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_native_and_child_stderr_reach_the_log(tmp_path: Path) -> None:
    log = tmp_path / "rule.log"
    code = f"""
import os, subprocess, sys, types
sys.path.insert(0, {str(REPO)!r})
from cloudfree.runlog import setup_script_logging
smk = types.SimpleNamespace(log=[{str(log)!r}], rule="train", wildcards={{"experiment": "x"}})
logger = setup_script_logging(smk)
logger.info("from python")
os.write(2, b"from native code\\n")
subprocess.run([sys.executable, "-c", "import sys; sys.stderr.write('from a worker\\\\n')"])
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    text = log.read_text()
    assert "rule train" in text and "from python" in text
    assert "from native code" in text and "from a worker" in text
    assert out.stderr == ""

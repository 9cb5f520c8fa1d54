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


def test_one_summary_line_per_job_on_the_console(tmp_path: Path) -> None:
    log = tmp_path / "rule.log"
    code = f"""
import logging, sys, types
sys.path.insert(0, {str(REPO)!r})
from cloudfree.progress import Progress
from cloudfree.runlog import setup_script_logging
smk = types.SimpleNamespace(log=[{str(log)!r}], rule="pack", wildcards={{"region": "africa"}})
logger = setup_script_logging(smk)
progress = Progress(logger, "tiles", 3, every=1e9)
for _ in range(3):
    progress.step()
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    (line,) = out.stdout.splitlines()
    assert line.startswith("cloudfree: pack region=africa done in ")
    assert "(tiles: 3 of 3 (100 %)" in line and line.endswith(f"; log {log}")
    assert "tiles: 1 of 3 (33 %)" in log.read_text()  # the first and the last in the log


def test_a_failed_job_says_so_on_the_console(tmp_path: Path) -> None:
    code = f"""
import sys, types
sys.path.insert(0, {str(REPO)!r})
from cloudfree.runlog import setup_script_logging
smk = types.SimpleNamespace(log=[{str(tmp_path / "rule.log")!r}], rule="train", wildcards={{}})
setup_script_logging(smk)
raise ValueError("bad tile")
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 1
    assert out.stdout.startswith("cloudfree: train FAILED after ")
    assert "ValueError: bad tile" in (tmp_path / "rule.log").read_text()

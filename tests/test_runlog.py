"""Script logging: Python, native code and child processes all write to the rule's log."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _script(log: Path, rule: str, wildcards: dict[str, str], body: str) -> list[str]:
    """A workflow script's command: its logging set up for ``rule``, then ``body``."""
    head = f"""
import os, subprocess, sys, types
sys.path.insert(0, {str(REPO)!r})
from cloudfree.progress import Progress
from cloudfree.runlog import setup_script_logging
smk = types.SimpleNamespace(log=[{str(log)!r}], rule={rule!r}, wildcards={wildcards!r})
logger = setup_script_logging(smk)
"""
    return [sys.executable, "-c", head + body]


def test_native_and_child_stderr_reach_the_log(tmp_path: Path) -> None:
    log = tmp_path / "rule.log"
    body = """
logger.info("from python")
os.write(2, b"from native code\\n")
subprocess.run([sys.executable, "-c", "import sys; sys.stderr.write('from a worker\\\\n')"])
"""
    cmd = _script(log, "train", {"experiment": "x"}, body)
    out = subprocess.run(cmd, capture_output=True, text=True, check=True)
    text = log.read_text()
    assert "rule train" in text and "from python" in text
    assert "from native code" in text and "from a worker" in text
    assert out.stderr == ""


def test_one_summary_line_per_job_on_the_console(tmp_path: Path) -> None:
    log = tmp_path / "rule.log"
    body = """
progress = Progress(logger, "tiles", 3, every=1e9)
for _ in range(3):
    progress.step()
"""
    cmd = _script(log, "pack", {"region": "africa"}, body)
    out = subprocess.run(cmd, capture_output=True, text=True, check=True)
    (line,) = out.stdout.splitlines()
    assert line.startswith("cloudfree: pack region=africa done in ")
    assert "(tiles: 3 of 3 (100 %)" in line and line.endswith(f"; log {log}")
    assert "tiles: 1 of 3 (33 %)" in log.read_text()  # the first and the last in the log


def test_a_failed_job_says_so_on_the_console(tmp_path: Path) -> None:
    cmd = _script(tmp_path / "rule.log", "train", {}, 'raise ValueError("bad tile")\n')
    out = subprocess.run(cmd, capture_output=True, text=True)
    assert out.returncode == 1
    assert out.stdout.startswith("cloudfree: train FAILED after ")
    assert "ValueError: bad tile" in (tmp_path / "rule.log").read_text()

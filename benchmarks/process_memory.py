"""Peak memory of a piece of work run alone, in a fresh Python process."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def peak_rss_mb(code: str) -> float:
    """Max RSS (MB) of a fresh interpreter that runs ``code`` with the repository importable.

    Read from VmHWM, not ru_maxrss: the latter keeps the forked parent's peak across exec.
    """
    script = (
        f"import sys; sys.path.insert(0, {str(REPO)!r})\n{code}\n"
        "hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM')][0]\n"
        "print(int(hwm.split()[1]) / 1024)\n"
    )
    out = subprocess.run([sys.executable, "-c", script], check=True, capture_output=True, text=True)
    return float(out.stdout.strip().splitlines()[-1])

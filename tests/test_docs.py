"""The docs stay in step with the code: config reference and README commands."""

import re
import subprocess
import sys

from .workflow_run import REPO


def test_config_reference_is_generated_from_the_schema():
    proc = subprocess.run(
        [sys.executable, str(REPO / "docs/make_config_reference.py"), "--check"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr


def test_ci_runs_the_readme_commands():
    readme = (REPO / "README.md").read_text()
    ci = (REPO / ".ci/run").read_text()
    for label in ("install", "test"):
        command = re.search(rf"# README: {label}\n(.+)\n", ci).group(1).strip()
        assert f"\n{command}\n" in readme, f"README lacks the {label} command {command!r}"

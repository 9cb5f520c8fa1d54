"""The code and the workflow stay lint-clean."""

import subprocess
import sys

from .workflow_run import REPO


def test_ruff_clean():
    cmd = [sys.executable, "-m", "ruff", "check", str(REPO)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout


def test_snakemake_lint_clean():
    proc = subprocess.run(
        [sys.executable, "-m", "snakemake", "--lint", "-s", str(REPO / "Snakefile")],
        capture_output=True, text=True, cwd=REPO,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Lints for" not in proc.stdout + proc.stderr, proc.stdout + proc.stderr


def test_rule_files_are_snakefmt_formatted():
    files = [str(REPO / "Snakefile"), *map(str, sorted((REPO / "workflow/rules").glob("*.smk")))]
    proc = subprocess.run(
        [sys.executable, "-m", "snakefmt", "--check", *files], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr

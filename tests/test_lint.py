"""The code and the workflow stay lint-clean: ruff (check and format), snakefmt and
``snakemake --lint`` (which the Snakemake workflow catalog runs on workflow/Snakefile)."""

import subprocess
import sys

from .workflow_run import REPO

SNAKEFILES = [REPO / "Snakefile", REPO / "workflow" / "Snakefile"]


def test_ruff_clean():
    cmd = [sys.executable, "-m", "ruff", "check", str(REPO)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout


def test_ruff_format_clean():
    cmd = [sys.executable, "-m", "ruff", "format", "--check", str(REPO)]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_snakemake_lint_clean():
    proc = subprocess.run(
        [sys.executable, "-m", "snakemake", "--lint", "-s", str(REPO / "workflow" / "Snakefile")],
        capture_output=True, text=True, cwd=REPO,
    )  # fmt: skip
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert "Lints for" not in out, out
    assert "Congratulations, your workflow is in a good condition!" in out, out


def test_the_top_level_snakefile_only_includes_the_workflow():
    """`snakemake` at the root finds Snakefile first: it is workflow/Snakefile, with its
    rule all as the default target (an included file's rules never become it)."""
    code = [
        line
        for line in SNAKEFILES[0].read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert code == ['include: "workflow/Snakefile"', 'workflow.default_target = "all"']


def test_rule_files_are_snakefmt_formatted():
    files = [*map(str, SNAKEFILES), *map(str, sorted((REPO / "workflow/rules").glob("*.smk")))]
    proc = subprocess.run(
        [sys.executable, "-m", "snakefmt", "--check", *files], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr

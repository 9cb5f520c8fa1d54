"""The docs stay in step with the code: config reference and README commands."""

import re
import subprocess
import sys
from pathlib import Path

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


def test_every_test_the_docs_name_exists():
    """README.md and docs/*.md point at tests as ``tests/x/test_y.py[::test_z]`` (or, in a
    table, ``test_y.py::test_z`` and ``::test_z`` for the file just named): all exist."""
    tests = REPO / "tests"
    by_name = {}
    for path in tests.rglob("test_*.py"):
        by_name.setdefault(path.name, []).append(path)
    missing = []
    ref = re.compile(r"(tests/[\w/]+\.py|\btest_\w+\.py)?(::(test_\w+))?")
    for doc in [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]:
        last: list[Path] = []
        for m in ref.finditer(doc.read_text()):
            path, name = m.group(1), m.group(3)
            if not path and not name:
                continue
            if path:
                last = [REPO / path] if path.startswith("tests/") else by_name.get(path, [])
                if not last or not all(p.is_file() for p in last):
                    missing.append(f"{doc.name}: {path}")
                    continue
            if name and not any(re.search(rf"^def {name}\b", p.read_text(), re.M) for p in last):
                missing.append(f"{doc.name}: {path or ''}::{name}")
    assert missing == []


def test_readme_generalisation_tables_are_the_results():
    """The README's generalisation tables are the benchmark's results, as its --report
    prints them."""
    readme = (REPO / "README.md").read_text()
    for name in ("generalisation_default.json", "generalisation.json"):
        proc = subprocess.run(
            [sys.executable, str(REPO / "benchmarks/generalisation.py"), "--report",
             str(REPO / "benchmarks/results" / name)],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        assert proc.stdout.strip() in readme, f"README's table of {name} differs from its results"

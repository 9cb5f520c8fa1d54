"""The fresh-environment check (tests/install/fresh_venv.py) runs the README's user install
and CI runs it after the default workflow; the check itself installs for minutes, so only CI
runs it."""

from __future__ import annotations

import re

import pytest

from ..workflow_run import REPO
from .fresh_venv import readme_install_line, report_categories, report_problems


def test_the_install_line_is_the_readmes_user_install():
    line = readme_install_line()
    readme = (REPO / "README.md").read_text()
    assert f"\n{line}\n" in readme
    assert line == 'pip install torch==2.13.0 -e ".[all]"'
    # the same torch pin as the test install CI runs
    ci = (REPO / ".ci/run").read_text()
    test_install = re.search(r"# README: install\n(.+)\n", ci).group(1)
    assert test_install == 'pip install torch==2.13.0 -e ".[dev]"'


def test_one_install_line_or_none(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text('```\npip install -e ".[all]"\n```\n\n```\npip install x -e ".[all]"\n```\n')
    with pytest.raises(SystemExit, match="expected one user install line"):
        readme_install_line(readme)


def test_ci_runs_the_check_after_the_default_run():
    lines = [line.strip() for line in (REPO / ".ci/run").read_text().splitlines()]
    default_run = lines.index("python benchmarks/default_run.py --cores 2")
    check = lines.index("python tests/install/fresh_venv.py")
    assert check > default_run


def test_the_categories_are_the_rules():
    assert report_categories() == {"Cloud statistics", "Metrics", "Mosaics", "Training", "Settings"}


def test_the_report_check():
    categories = {"Metrics", "Mosaics"}
    page = '<html><script>{"Metrics": {"Other": ["a.png"]}, "Mosaics": {"Other": []}}</html>'
    assert report_problems(page, categories) == []
    assert report_problems("  ", categories) == ["the report is empty"]
    assert report_problems('<html>{"Metrics": {}, "Mosaics"', categories) == [
        "the report is not a whole HTML page",
        "category 'Mosaics' is missing",
    ]

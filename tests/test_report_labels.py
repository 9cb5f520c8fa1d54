"""The labels of the report's entries, read from the ``report(...)`` marks of the rule files:
unique per entry in every category, and never a toggle the report cannot show.

Snakemake's report lists a category's entries by their labels; a label after the first with
two values, each on half the entries, becomes a toggle, and an entry lacking one of its
two values then breaks the page (for a region whose model is named after it, two regions
gave ``experiment`` two values).  So here: the labels of an output name every wildcard of
its path, two outputs of a category differ in their labels' fixed text, and a label after
the first on every output of a category is fixed text with other than two values.
"""

from __future__ import annotations

import ast
import importlib.util
import re
from collections import defaultdict
from pathlib import Path

import pytest

from .workflow_run import REPO

RULES = sorted((REPO / "workflow" / "rules").glob("*.smk"))
WILDCARD = re.compile(r"{(\w+)}")


def report_calls(text: str) -> list[str]:
    """The source of every ``report(...)`` call in a rule file."""
    calls = []
    for match in re.finditer(r"\breport\(", text):
        depth, i = 0, match.end() - 1
        while True:
            depth += {"(": 1, ")": -1}.get(text[i], 0)
            if depth == 0:
                break
            i += 1
        calls.append(text[match.start() : i + 1])
    return calls


def marks() -> list[dict]:
    """path, category and labels of every output marked for the report."""
    found = []
    for smk in RULES:
        for call in report_calls(smk.read_text()):
            node = ast.parse(call, mode="eval").body
            assert isinstance(node, ast.Call)
            kwargs = {k.arg: ast.literal_eval(k.value) for k in node.keywords}
            found.append(
                {
                    "file": smk.name,
                    "path": ast.literal_eval(node.args[0]),
                    "category": kwargs.get("category"),
                    "labels": kwargs.get("labels"),
                }
            )
    return found


MARKS = marks()
BY_CATEGORY: dict[str, list[dict]] = defaultdict(list)
for _mark in MARKS:
    BY_CATEGORY[_mark["category"]].append(_mark)


def test_the_rule_files_mark_every_category():
    assert set(BY_CATEGORY) == {"Cloud statistics", "Metrics", "Mosaics", "Settings", "Training"}
    assert all(m["path"].endswith((".png", ".html")) for m in MARKS), "a mark only a download"


@pytest.mark.parametrize("mark", MARKS, ids=lambda m: m["path"])
def test_labels_name_every_wildcard_of_the_path(mark):
    labels = mark["labels"]
    assert isinstance(labels, dict) and labels, f"{mark['path']}: no labels"
    named = {w for value in labels.values() for w in WILDCARD.findall(value)}
    assert named == set(WILDCARD.findall(mark["path"])), mark["path"]


@pytest.mark.parametrize("category", sorted(BY_CATEGORY))
def test_outputs_of_a_category_differ_in_their_labels(category):
    fixed = [
        tuple(sorted((k, WILDCARD.sub("{}", v)) for k, v in m["labels"].items()))
        for m in BY_CATEGORY[category]
    ]
    assert len(set(fixed)) == len(fixed), fixed


def toggle_risks(outputs: list[dict]) -> list[str]:
    """Labels of a category's outputs that the report could make a toggle."""
    firsts = {next(iter(m["labels"])) for m in outputs}
    if len(firsts) > 1:
        return [f"entries start with different labels {sorted(firsts)}"]
    everywhere = set.intersection(*(set(m["labels"]) for m in outputs)) - firsts
    risks = []
    for label in sorted(everywhere):
        values = {m["labels"][label] for m in outputs}
        if any(WILDCARD.search(v) for v in values):
            risks.append(f"{label!r} takes a wildcard's values {sorted(values)}")
        elif len(values) == 2:
            risks.append(f"{label!r} has two values {sorted(values)}")
    return risks


@pytest.mark.parametrize("category", sorted(BY_CATEGORY))
def test_no_label_can_become_a_toggle(category):
    assert toggle_risks(BY_CATEGORY[category]) == []


def test_toggle_risks_find_the_labels_that_broke_the_mosaics():
    """A region and its model as two labels: two regions each with its own model gave the
    second two values, half the entries each."""
    old = {"path": "q/{experiment}/{region}.png",
           "labels": {"region": "{region}", "experiment": "{experiment}"}}  # fmt: skip
    assert toggle_risks([old]) == ["'experiment' takes a wildcard's values ['{experiment}']"]
    figures = [{"labels": {"region": "{region}", "figure": f}} for f in ("a", "b")]
    assert toggle_risks(figures) == ["'figure' has two values ['a', 'b']"]
    tables = [{"labels": {"region": "{region}", "table": "summary"}}]
    assert toggle_risks(figures[:1] + tables) == []  # no label on every entry: no toggle


def test_the_mosaic_quicklooks_have_one_label():
    (mosaic,) = BY_CATEGORY["Mosaics"]
    assert list(mosaic["labels"]) == ["quicklook"] and Path(mosaic["path"]).suffix == ".png"


def _check_report():
    """docs/check_report.py as a module."""
    spec = importlib.util.spec_from_file_location("check_report", REPO / "docs/check_report.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_report_check_finds_a_toggle_the_page_cannot_show():
    """docs/check_report.py reads the labels as the report's JavaScript does."""
    check = _check_report()
    old = [{"labels": {"region": r, "experiment": r}} for r in ("africa", "europa")]
    assert check.toggles(old) == {"experiment": ["africa", "europa"]}
    (problem,) = check.label_problems("Mosaics", old)
    assert "'experiment' becomes a toggle" in problem and "{'region': 'africa'}" in problem
    crossed = [{"labels": {"region": r, "model": m}} for r in ("a", "b") for m in ("x", "y")]
    assert check.toggles(crossed) == {"model": ["x", "y"]}  # a toggle with both everywhere
    assert check.label_problems("Mosaics", crossed) == []
    new = [{"labels": {"quicklook": f"{r}, model {r}"}} for r in ("africa", "europa")]
    assert check.toggles(new) == {} and check.label_problems("Mosaics", new) == []
    twice = [{"labels": {"region": "a", "figure": "f"}}] * 2
    assert check.label_problems("Metrics", twice) == [
        "Metrics: {'figure': 'f', 'region': 'a'} labels 2 entries"
    ]

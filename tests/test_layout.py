"""The library's layout: one sub-package per stage over shared contracts, no import cycle, no
import hidden inside a function, no private name used outside its module, short modules."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

from .workflow_run import REPO

PACKAGE = REPO / "cloudfree"
STAGES = ("tiles", "clouds", "pack", "train", "infer", "mosaic", "metrics")
SHARED_PACKAGES = ("models",)
# Top-level modules that may call into the stages: the command line, and the checks of a
# whole config by the stages' own code before the first job.
ENTRY_POINTS = ("cli", "preflight")
MAX_LINES = 450


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


MODULES = _modules()


def _imports(path: Path) -> list[tuple[str, list[str], bool, int]]:
    """(module, names, at module level, line) of every cloudfree import in a file."""
    tree = ast.parse(path.read_text())
    top = {id(node) for node in tree.body}
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module.split(".")[0] == "cloudfree":
                names = [a.name for a in node.names]
                out.append((node.module, names, id(node) in top, node.lineno))
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "cloudfree":
                    out.append((alias.name, [], id(node) in top, node.lineno))
    return out


def _targets(module: str, names: list[str]) -> list[str]:
    """The cloudfree modules an import statement loads (``from pkg import submodule`` too)."""
    found = [module] if module in MODULES else []
    found += [f"{module}.{n}" for n in names if f"{module}.{n}" in MODULES]
    return found


def _graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = defaultdict(set)
    for name, path in MODULES.items():
        for module, names, _, _ in _imports(path):
            for target in _targets(module, names):
                if target != name:
                    graph[name].add(target)
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_no_import_cycle_between_modules():
    assert _cycle(_graph()) is None, " -> ".join(_cycle(_graph()) or [])


def test_no_import_cycle_between_stages():
    stages: dict[str, set[str]] = defaultdict(set)
    for src, targets in _graph().items():
        for dst in targets:
            a, b = src.split(".")[1], dst.split(".")[1]
            if a != b and a in STAGES and b in STAGES:
                stages[a].add(b)
    assert _cycle(stages) is None, " -> ".join(_cycle(stages) or [])


def test_the_cycle_check_finds_a_cycle():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def test_no_cloudfree_import_inside_a_function():
    """Imports hidden in functions hide cycles; every cloudfree import is at module level."""
    lazy = [
        f"{path.relative_to(REPO)}:{line} imports {module}"
        for path in MODULES.values()
        for module, _, top, line in _imports(path)
        if not top
    ]
    assert lazy == []


def test_no_private_name_is_imported_from_another_module():
    private = [
        f"{path.relative_to(REPO)}:{line} imports {n} from {module}"
        for path in MODULES.values()
        for module, names, _, line in _imports(path)
        for n in names
        if n.startswith("_")
    ]
    assert private == []


def test_shared_modules_do_not_reach_into_the_stages():
    """The contracts at the top (manifest, packed format, model file, bands, io, ...) and the
    shared models sit below every stage."""
    wrong = []
    for src, targets in _graph().items():
        parts = src.split(".")
        shared = (len(parts) == 2 and parts[1] not in STAGES + ENTRY_POINTS) or (
            parts[1] in SHARED_PACKAGES
        )
        if shared:
            wrong += [f"{src} -> {dst}" for dst in targets if dst.split(".")[1] in STAGES]
    assert wrong == []


def test_every_stage_is_a_package_with_a_docstring():
    for stage in STAGES:
        init = PACKAGE / stage / "__init__.py"
        assert init.is_file(), stage
        assert ast.get_docstring(ast.parse(init.read_text())), f"{stage}/__init__.py"


@pytest.mark.parametrize("name", sorted(MODULES))
def test_modules_are_short_and_say_what_they_do(name):
    path = MODULES[name]
    text = path.read_text()
    assert ast.get_docstring(ast.parse(text)), f"{name} has no module docstring"
    lines = len(text.splitlines())
    assert lines <= MAX_LINES, f"{name}: {lines} lines"


def test_every_rule_script_calls_its_stage():
    """rule -> workflow/scripts/<rule>.py -> cloudfree/<stage>/: one hop each."""
    stage_of = {
        "download_tiles": "tiles", "cloud_stats": "clouds", "pack_hdf5": "pack",
        "train": "train", "infer": "infer", "mosaic": "mosaic", "metrics": "metrics",
        "metrics_all": "metrics",
    }  # fmt: skip
    for rule, stage in stage_of.items():
        script = REPO / "workflow" / "scripts" / f"{rule}.py"
        modules = {m for m, _, _, _ in _imports(script)}
        assert any(m.startswith(f"cloudfree.{stage}.") for m in modules), (rule, modules)

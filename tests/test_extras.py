"""The pip extras: pyproject.toml lists exactly the packages of cloudfree.extras.EXTRAS, every
import of an optional package is guarded, and without one the core still imports while the
parts that need it say which extra to install.

The imports are read from the source (AST): a module-level import of an optional package sits
in ``try: ... except ImportError: raise missing_extra(<package>, <extra>)`` (or in a package
whose ``__init__`` guards it); an import at its use goes through ``import_optional`` or the
same ``try`` (a probe whose handler only returns a constant, the caller falling back, counts
too).  A missing package is simulated with ``sys.modules[name] = None``.
"""

from __future__ import annotations

import ast
import json
import logging
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from cloudfree.extras import DISTRIBUTIONS, EXTRAS, MissingExtraError, extra_of, missing_extra

from .workflow_run import REPO

PACKAGE = REPO / "cloudfree"
OPTIONAL = {name for names in EXTRAS.values() for name in names}
# import names of the core dependencies ([project] dependencies) -> their distribution; None:
# installed with one of them (affine with rasterio, urllib3 with requests, jsonschema with
# snakemake), imported but not declared
CORE = {
    "numpy": "numpy", "scipy": "scipy", "pandas": "pandas", "rasterio": "rasterio",
    "h5py": "h5py", "hdf5plugin": "hdf5plugin", "xarray": "xarray", "dask": "dask",
    "matplotlib": "matplotlib", "yaml": "pyyaml", "tqdm": "tqdm", "requests": "requests",
    "snakemake": "snakemake", "pystac": "pystac", "affine": None, "urllib3": None,
    "jsonschema": None,
}  # fmt: skip
# modules whose import name is not their package's
SUBMODULE_PACKAGE = {"torch.utils.tensorboard": "tensorboard"}
# The core: tiles of the synthetic and folder sources, cloud statistics, packing, mosaics,
# and what the Snakefile imports to check a config.
CORE_MODULES = [
    "cloudfree.tiles.region", "cloudfree.tiles.synthetic.region", "cloudfree.tiles.folder",
    "cloudfree.clouds.region",
    "cloudfree.clouds.figures", "cloudfree.clouds.detector", "cloudfree.pack.writer",
    "cloudfree.pack.check", "cloudfree.mosaic.region", "cloudfree.mosaic.quicklook",
    "cloudfree.config", "cloudfree.configfile", "cloudfree.overrides", "cloudfree.experiments",
    "cloudfree.packed", "cloudfree.preflight", "cloudfree.report_pages",
]  # fmt: skip
# Imports at their use: a call of the detector (namespace cloudfree.clouds.detector) that
# needs the package.
LAZY_PARTS = {
    "s2cloudless": "model_file()",
    "lightgbm": "booster()",
    "lleaves": "CompiledForest(Path('.'))",
    "llvmlite": "compile_object(Path('model.txt'))",
}


def norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_name(spec: str) -> str:
    return norm(re.split(r"[ \[=<>!~;]", spec.strip(), maxsplit=1)[0])


def pyproject() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text())["project"]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imported(node: ast.AST) -> list[str]:
    """The modules an import statement names (absolute imports only)."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
        return [node.module]
    return []


def package_of(module: str) -> str:
    for prefix, package in SUBMODULE_PACKAGE.items():
        if module == prefix or module.startswith(prefix + "."):
            return package
    return module.split(".")[0]


def calls(tree: ast.AST, name: str) -> list[ast.Call]:
    return [
        n for n in ast.walk(tree)
        if isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id == name
    ]  # fmt: skip


def constant_args(call: ast.Call) -> tuple:
    return tuple(a.value if isinstance(a, ast.Constant) else None for a in call.args)


def catches_import_error(handler: ast.ExceptHandler) -> bool:
    types = handler.type.elts if isinstance(handler.type, ast.Tuple) else [handler.type]
    return any(isinstance(t, ast.Name) and t.id in ("ImportError", "ModuleNotFoundError")
               for t in types)  # fmt: skip


def guarding_try(node: ast.AST, parents: dict[int, ast.AST]) -> ast.Try | None:
    """The innermost ``try`` whose body holds ``node``."""
    child, parent = node, parents.get(id(node))
    while parent is not None:
        if isinstance(parent, ast.Try) and child in parent.body:
            return parent
        child, parent = parent, parents.get(id(parent))
    return None


def guard_problem(node: ast.AST, package: str, parents: dict[int, ast.AST]) -> str | None:
    """Why an import of ``package`` is not guarded (None: it is)."""
    block = guarding_try(node, parents)
    handlers = [h for h in block.handlers if catches_import_error(h)] if block else []
    if not handlers:
        return "not in a try with an ImportError handler"
    for handler in handlers:
        if any(constant_args(c)[1:2] == (extra_of(package),)
               for c in calls(handler, "missing_extra")):  # fmt: skip
            return None  # the error names the extra (and one package of it)
        body = handler.body
        if (
            len(body) == 1
            and isinstance(body[0], ast.Return)
            and (body[0].value is None or isinstance(body[0].value, ast.Constant))
        ):  # a probe: the caller falls back
            return None
    return f"its ImportError handler names no missing_extra(..., {extra_of(package)!r})"


def raises_on_import(block: ast.Try, package: str) -> bool:
    """Whether a guard raises the error at once (else it keeps it for the first use)."""
    return any(
        isinstance(r, ast.Raise) and isinstance(r.exc, ast.Call)
        and getattr(r.exc.func, "id", None) == "missing_extra"
        and constant_args(r.exc)[1:2] == (extra_of(package),)
        for h in block.handlers for r in ast.walk(h)
    )  # fmt: skip


def module_guards(path: Path) -> set[str]:
    """The optional packages whose module-level guard in ``path`` raises on import."""
    tree = ast.parse(path.read_text())
    parents = {id(c): p for p in ast.walk(tree) for c in ast.iter_child_nodes(p)}
    top = set()
    for stmt in tree.body:
        if isinstance(stmt, ast.Try):
            for node in stmt.body:
                for name in imported(node):
                    package = package_of(name)
                    if (
                        package in OPTIONAL
                        and guard_problem(node, package, parents) is None
                        and raises_on_import(stmt, package)
                    ):
                        top.add(package)
    return top


def package_guards(module: str) -> set[str]:
    """The optional packages the ``__init__`` of ``module``'s packages guard."""
    parts = module.split(".")
    found: set[str] = set()
    for k in range(1, len(parts)):
        init = MODULES.get(".".join(parts[:k]))
        if init is not None and init.name == "__init__.py":
            found |= module_guards(init)
    return found


def optional_imports() -> list[tuple[str, str, int, str | None, bool]]:
    """(module, package, line, problem, part) of every optional import; ``part``: importing
    the module needs the package (a module-level import, unguarded or raising at once; a
    guard that keeps the error for the first use lets the module import)."""
    found = []
    for module, path in MODULES.items():
        tree = ast.parse(path.read_text())
        parents = {id(c): p for p in ast.walk(tree) for c in ast.iter_child_nodes(p)}
        covered = package_guards(module) if not path.name == "__init__.py" else set()
        for node in ast.walk(tree):
            for name in imported(node):
                package = package_of(name)
                if package not in OPTIONAL:
                    continue
                ancestors = _ancestors(node, parents)
                if any(type_checking(a) for a in ancestors):
                    continue  # annotations only: never imported at run time
                in_function = any(
                    isinstance(p, (ast.FunctionDef, ast.AsyncFunctionDef)) for p in ancestors
                )
                problem = guard_problem(node, package, parents)
                if problem and package in covered and not in_function:
                    problem = None  # its package's __init__ guards it first
                block = guarding_try(node, parents)
                # a part that needs the package: importing it fails without it
                part = not in_function and (
                    problem is not None or block is None or raises_on_import(block, package)
                )
                found.append((module, package, node.lineno, problem, part))
    return found


def type_checking(node: ast.AST) -> bool:
    """Whether ``node`` is an ``if TYPE_CHECKING:`` block."""
    test = getattr(node, "test", None) if isinstance(node, ast.If) else None
    return getattr(test, "id", None) == "TYPE_CHECKING" or getattr(test, "attr", None) == (
        "TYPE_CHECKING"
    )


def _ancestors(node: ast.AST, parents: dict[int, ast.AST]) -> list[ast.AST]:
    out, parent = [], parents.get(id(node))
    while parent is not None:
        out.append(parent)
        parent = parents.get(id(parent))
    return out


def parts_needing(package: str) -> list[str]:
    """The modules that cannot be imported without ``package`` (by their own imports or
    their package's)."""
    direct = {m for m, p, _, _, part in optional_imports() if p == package and part}
    return sorted(direct | {m for m in MODULES if package in package_guards(m)})


# -- pyproject.toml and the table --------------------------------------------------------


def test_pyproject_extras_are_the_table():
    extras = pyproject()["optional-dependencies"]
    assert set(extras) == {*EXTRAS, "all", "dev"}
    for extra, imports in EXTRAS.items():
        listed = {requirement_name(spec) for spec in extras[extra]}
        assert listed == {norm(DISTRIBUTIONS.get(i, i)) for i in imports}, extra
    (everything,) = extras["all"]
    assert everything.replace(" ", "") == f"cloudfree[{','.join(EXTRAS)}]"
    assert "cloudfree[all]" in extras["dev"]
    dev_tools = {requirement_name(s) for s in extras["dev"]} - {"cloudfree"}
    assert {"pytest", "hypothesis", "ruff", "snakefmt", "snakedeploy", "playwright"} <= dev_tools


def test_core_dependencies_hold_no_optional_package():
    core = {requirement_name(spec) for spec in pyproject()["dependencies"]}
    assert core == {norm(d) for d in CORE.values() if d}
    optional = {norm(DISTRIBUTIONS.get(i, i)) for i in OPTIONAL}
    assert not core & optional


def test_every_third_party_import_is_core_or_of_an_extra():
    stray = sorted(
        f"{module}: {name}"
        for module, path in MODULES.items()
        for node in ast.walk(ast.parse(path.read_text()))
        for name in imported(node)
        if (top := name.split(".")[0]) not in sys.stdlib_module_names
        and top not in {"cloudfree", "__future__"} | set(CORE) | OPTIONAL
    )
    assert stray == [], "add each to the core dependencies or to an extra (cloudfree/extras.py)"


def test_extra_of():
    assert extra_of("torch") == "train"
    assert extra_of("s2cloudless.cloud_detector") == "detector"
    with pytest.raises(KeyError, match="numpy"):
        extra_of("numpy")


def test_the_error_names_the_extra_and_is_a_cloudfree_error():
    from cloudfree.errors import CloudfreeError

    err = missing_extra("pystac_client", "stac")
    assert isinstance(err, ImportError) and isinstance(err, CloudfreeError)
    assert err.name == "pystac_client"
    assert "pip install 'cloudfree[stac]'" in str(err)


# -- the source: every optional import guarded ---------------------------------------------


def test_every_optional_import_is_guarded():
    unguarded = [
        f"{module.replace('.', '/')}.py:{line} imports {package}: {problem}"
        for module, package, line, problem, _ in optional_imports()
        if problem
    ]
    assert unguarded == []


def test_the_guards_name_the_extra_of_their_package():
    wrong = []
    for module, path in MODULES.items():
        if module == "cloudfree.extras":  # where they are defined
            continue
        tree = ast.parse(path.read_text())
        for name in ("missing_extra", "import_optional"):
            for call in calls(tree, name):
                package, extra = constant_args(call)[:2]
                if package is None or extra is None:
                    wrong.append(f"{module}:{call.lineno}: {name} without constant arguments")
                elif package_of(package) not in OPTIONAL or extra_of(package) != extra:
                    wrong.append(f"{module}:{call.lineno}: {name}({package!r}, {extra!r})")
    assert wrong == []


def test_imports_for_annotations_only_need_no_guard(tmp_path, monkeypatch):
    module = tmp_path / "cloudfree" / "annotated.py"
    module.parent.mkdir()
    module.write_text("from typing import TYPE_CHECKING\n\nif TYPE_CHECKING:\n    import torch\n")
    monkeypatch.setitem(MODULES, "cloudfree.annotated", module)
    assert [i for i in optional_imports() if i[0] == "cloudfree.annotated"] == []


def test_the_guard_check_finds_an_unguarded_import():
    tree = ast.parse("import torch\ntry:\n    import torch\nexcept ImportError:\n    pass\n")
    parents = {id(c): p for p in ast.walk(tree) for c in ast.iter_child_nodes(p)}
    bare, swallowed = tree.body[0], tree.body[1].body[0]
    assert "not in a try" in guard_problem(bare, "torch", parents)
    assert "missing_extra(..., 'train')" in guard_problem(swallowed, "torch", parents)


# -- without each optional package ---------------------------------------------------------

WITHOUT = r"""
import importlib, json, sys
from pathlib import Path

core, parts, lazy = json.loads(sys.argv[1])
results = {}
for package in sorted(parts):
    for name in [m for m in sys.modules if m == "cloudfree" or m.startswith("cloudfree.")]:
        del sys.modules[name]
    saved = {m: sys.modules.pop(m) for m in list(sys.modules)
             if m == package or m.startswith(package + ".")}
    sys.modules[package] = None
    out = results[package] = {"core": {}, "parts": {}}
    for module in core:
        try:
            importlib.import_module(module)
        except Exception as exc:
            out["core"][module] = f"{type(exc).__name__}: {exc}"
    calls = [(m, None) for m in parts[package]]
    if package in lazy:
        calls.append(("cloudfree.clouds.detector", lazy[package]))
    for module, call in calls:
        try:
            namespace = vars(importlib.import_module(module))
            if call:
                eval(call, {**namespace, "Path": Path})
            out["parts"][call or module] = None
        except Exception as exc:
            got = [type(exc).__name__, str(exc), getattr(exc, "name", None)]
            out["parts"][call or module] = got
    del sys.modules[package]
    sys.modules.update(saved)
print(json.dumps(results))
"""


@pytest.fixture(scope="module")
def without() -> dict:
    """What importing the core and the parts gives with each optional package missing (one
    interpreter, the cloudfree modules imported afresh for each package)."""
    parts = {package: parts_needing(package) for package in sorted(OPTIONAL)}
    arg = json.dumps([CORE_MODULES, parts, LAZY_PARTS])
    proc = subprocess.run(
        [sys.executable, "-c", WITHOUT, arg], capture_output=True, text=True, cwd=REPO,
        timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("package", sorted(OPTIONAL))
def test_the_core_imports_without(without, package):
    assert without[package]["core"] == {}


@pytest.mark.parametrize("package", sorted(OPTIONAL))
def test_a_part_that_needs_it_names_its_extra(without, package):
    extra = extra_of(package)
    wrong = {
        part: got for part, got in without[package]["parts"].items()
        if got is None or got[0] != MissingExtraError.__name__
        or f"{extra!r} extra" not in got[1] or got[2] not in EXTRAS[extra]
    }  # fmt: skip
    assert wrong == {}


def test_the_parts_of_torch_are_found():
    parts = set(parts_needing("torch"))
    assert {"cloudfree.modelfile", "cloudfree.device", "cloudfree.infer.region"} <= parts
    assert {"cloudfree.models.network", "cloudfree.train.loop"} <= parts


def test_tensorboard_missing_warns_with_its_extra(tmp_path, monkeypatch, caplog):
    pytest.importorskip("torch")
    from cloudfree.train.monitor import TensorBoardLog

    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)
    with caplog.at_level(logging.WARNING, logger="cloudfree.train"):
        board = TensorBoardLog(tmp_path / "tensorboard", 0)
    assert board.writer is None
    assert "pip install 'cloudfree[train]'" in caplog.text

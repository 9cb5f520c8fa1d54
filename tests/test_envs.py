"""The conda environments of workflow/envs/ hold every package their rules' scripts import.

A rule with ``conda:`` runs its script in that environment (``--software-deployment-method
conda``); a module it imports, directly or through the cloudfree modules it uses, that the
environment lacks fails only on that route.  The imports are followed statically (every
``import`` in a module, those inside functions included, and every module named to
``cloudfree.extras.import_optional``) from each rule's script.  Their versions start within
the ranges pyproject.toml requires, and their pip lines are pyproject's own.
"""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from itertools import chain
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version

REPO = Path(__file__).resolve().parents[1]
RULES = sorted((REPO / "workflow" / "rules").glob("*.smk"))
ENVS = REPO / "workflow" / "envs"
# import name -> package name where they differ
PACKAGE_OF = {
    "yaml": "pyyaml", "torch": "pytorch", "matplotlib": "matplotlib-base",
    "pystac": "pystac-client", "pystac_client": "pystac-client", "affine": "rasterio",
    "lightgbm": "s2cloudless", "urllib3": "requests", "mlflow": "mlflow-skinny",
    "packaging": "pip",
}  # fmt: skip
# imported where an optional setting asks for it, each at its use with a clear error
OPTIONAL = {"mlflow"}
# provided by Snakemake itself to the scripts it runs (its preamble puts it on the path)
PROVIDED = {"snakemake"}


def rule_envs() -> list[tuple[str, Path, Path]]:
    """(rule, script, environment file) of every rule with both."""
    found = []
    for smk in RULES:
        text = smk.read_text()
        for block in re.split(r"\n(?=(?:rule|checkpoint) \w+:)", text):
            head = re.match(r"(?:rule|checkpoint) (\w+):", block)
            env = re.search(r"\n    conda:\n\s+\"([^\"]+)\"", block)
            script = re.search(r"\n    script:\n\s+\"([^\"]+)\"", block)
            if head and env and script:
                base = smk.parent
                found.append(
                    (
                        head.group(1),
                        (base / script.group(1)).resolve(),
                        (base / env.group(1)).resolve(),
                    )
                )
    return found


def env_packages(path: Path) -> set[str]:
    names: set[str] = set()
    for dep in yaml.safe_load(path.read_text())["dependencies"]:
        specs = dep["pip"] if isinstance(dep, dict) else [dep]
        for spec in specs:
            names.add(re.split(r"[ =<>!\[]", spec.strip(), maxsplit=1)[0].lower())
    return names


def module_file(name: str) -> Path | None:
    parts = name.split(".")
    base = REPO.joinpath(*parts)
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def third_party_imports(script: Path) -> set[str]:
    """Top-level names of the non-cloudfree, non-stdlib modules ``script`` imports,
    following the cloudfree modules it imports."""
    seen: set[Path] = set()
    todo, found = [script], set()
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            elif (
                isinstance(node, ast.Call)
                and getattr(node.func, "id", None) == "import_optional"
                and node.args
                and isinstance(node.args[0], ast.Constant)
            ):
                names = [node.args[0].value]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top == "cloudfree":  # the module and the packages it is in
                    parts = name.split(".")
                    for k in range(1, len(parts) + 1):
                        target = module_file(".".join(parts[:k]))
                        if target is not None:
                            todo.append(target)
                elif top not in sys.stdlib_module_names and top != "__future__":
                    found.add(top)
    return found


def test_every_rule_with_a_script_has_an_environment():
    scripts = {r.group(1) for smk in RULES for r in re.finditer(r"rule (\w+):", smk.read_text())}
    with_env = {rule for rule, _, _ in rule_envs()}
    block_re = re.compile(r"(?:rule|checkpoint) (\w+):(.*?)(?=\n(?:rule|checkpoint) |\Z)", re.S)
    run_scripts = {
        rule for smk in RULES for rule, block in block_re.findall(smk.read_text())
        if "\n    script:" in block
    }  # fmt: skip
    assert run_scripts and run_scripts <= with_env, sorted(run_scripts - with_env)
    assert with_env <= scripts | {"download_tiles"}


@pytest.mark.parametrize(
    ("rule", "script", "env"), rule_envs(), ids=lambda v: getattr(v, "name", v)
)
def test_the_environment_holds_what_the_script_imports(rule, script, env):
    have = env_packages(env)
    needed = third_party_imports(script) - OPTIONAL - PROVIDED
    missing = sorted(
        name for name in needed if PACKAGE_OF.get(name, name).lower().replace("_", "-") not in have
    )
    assert not missing, f"rule {rule}: {env.name} lacks {missing} (imported by {script.name})"


def test_the_environments_are_in_the_workflow_folder():
    """Every rule's environment is a file of workflow/envs/ (the catalog's layout)."""
    envs = {env for _, _, env in rule_envs()}
    assert envs and all(env.is_file() and env.parent == ENVS for env in envs), sorted(envs)
    assert not (REPO / "envs").exists()


def test_the_detector_packages_are_found_through_import_optional():
    """The tile stage reaches s2cloudless and lleaves only through import_optional."""
    script = REPO / "workflow" / "scripts" / "download_tiles.py"
    assert {"s2cloudless", "lleaves", "llvmlite", "lightgbm"} <= third_party_imports(script)


# conda-forge name -> the distribution pyproject.toml names
DISTRIBUTION_OF = {"pytorch": "torch", "matplotlib-base": "matplotlib"}


def _pyproject_specifiers() -> dict[str, SpecifierSet]:
    """Every distribution pyproject.toml requires (core and extras) -> its version specifier;
    ``python`` -> requires-python."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    reqs = [*project["dependencies"], *chain(*project["optional-dependencies"].values())]
    out = {"python": SpecifierSet(project["requires-python"])}
    for text in reqs:
        req = Requirement(text)
        if req.name != "cloudfree":
            out[canonicalize_name(req.name)] = req.specifier
    return out


def _conda_bounds(spec: str) -> tuple[str, list[Version]]:
    """(name, the lowest versions a conda match spec admits) of ``name =1.4`` / ``name >=2.5,<3``
    / ``name``: ``=V`` admits V.*, so V; ``>=V`` V; no version: none."""
    name, _, version = spec.partition(" ")
    lows = []
    for part in filter(None, version.replace(" ", "").split(",")):
        match = re.fullmatch(r"(=|==|>=)?([0-9][0-9.]*)", part) or re.fullmatch(
            r"(<|<=|!=)([0-9][0-9.]*)", part
        )
        assert match, f"{spec}: a version spec the check cannot read"
        if match.group(1) in (None, "=", "==", ">="):
            lows.append(Version(match.group(2)))
    return name, lows


@pytest.mark.parametrize("env", sorted(ENVS.glob("*.yaml")), ids=lambda p: p.name)
def test_the_environment_versions_agree_with_pyproject(env):
    """A conda package that pyproject.toml also requires starts within pyproject's range, and a
    pip line of the environment is pyproject's requirement itself."""
    wanted = _pyproject_specifiers()
    deps = yaml.safe_load(env.read_text())["dependencies"]
    wrong = []
    for dep in deps:
        if isinstance(dep, dict):  # the pip: list
            for line in dep.get("pip", []):
                req = Requirement(line)
                if wanted.get(canonicalize_name(req.name)) != req.specifier:
                    wrong.append(f"pip {line} (pyproject: {wanted.get(req.name)})")
            continue
        name, lows = _conda_bounds(dep)
        dist = canonicalize_name(DISTRIBUTION_OF.get(name, name))
        if dist in wanted:
            wrong += [f"{dep} (pyproject: {wanted[dist]})" for v in lows if v not in wanted[dist]]
    assert wrong == [], f"{env.name}: {wrong}"


def test_the_version_check_finds_a_disagreement():
    assert _conda_bounds("rasterio =1.2") == ("rasterio", [Version("1.2")])
    assert Version("1.2") not in _pyproject_specifiers()["rasterio"]
    assert _conda_bounds("pytorch >=2.5,<3") == ("pytorch", [Version("2.5")])
    assert _conda_bounds("hdf5plugin") == ("hdf5plugin", [])

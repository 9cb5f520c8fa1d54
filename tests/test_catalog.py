"""The workflow as the Snakemake workflow catalog deploys it: snakedeploy writes a project
folder whose workflow/Snakefile uses this one as a module, with a copy of config/ and
profiles/, and Snakemake plans the whole chain there.

The source is a copy of this checkout (what a clone holds). For a local source snakedeploy
(0.17) copies it to a temporary folder and writes the module's ``snakefile:`` as the path
relative to the source (``"workflow/Snakefile"``), which Snakemake reads relative to the
deployed Snakefile; a GitHub source gets ``github("<owner>/<repo>", path=..., tag=...)``.
The test points it at the copy's workflow/Snakefile, as a user deploying from a clone does.
The library is the copy's: its ``cloudfree/__init__.py`` records every import of it.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from .workflow_run import REPO, SNAKEMAKE, planned_jobs, snakemake, tiny_config, write_config

pytestmark = pytest.mark.e2e

# what a clone of the repository needs to run the workflow
SOURCE = ["workflow", "config", "profiles", "cloudfree", "LICENSE", "README.md", "Snakefile"]
SOURCE += ["pyproject.toml", ".snakemake-workflow-catalog.yml"]
SNAKEDEPLOY = "import sys; from snakedeploy.client import main; sys.argv[0] = 'snakedeploy'; main()"
CHAIN = {
    "download_tiles", "cloud_stats", "pack_hdf5", "train", "infer", "mosaic", "score_model",
    "score_baselines", "metrics", "metrics_all", "report_cloud_tables", "settings_workflow",
}  # fmt: skip
IMPORT_LOG = "CLOUDFREE_TEST_IMPORT_LOG"


def copy_source(dest: Path) -> Path:
    dest.mkdir()
    for name in SOURCE:
        path = REPO / name
        if path.is_dir():
            shutil.copytree(path, dest / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(path, dest / name)
    init = dest / "cloudfree" / "__init__.py"
    init.write_text(
        init.read_text() + f"\nimport os as _os\n\nif _os.environ.get({IMPORT_LOG!r}):\n"
        f"    with open(_os.environ[{IMPORT_LOG!r}], 'a') as _log:\n"
        "        _log.write(__file__ + '\\n')\n"
    )
    return dest


def run(cmd: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"{cmd}:\n{proc.stdout[-3000:]}\n{proc.stderr[-4000:]}"
    return proc


@pytest.fixture(scope="module")
def deployed(tmp_path_factory) -> tuple[Path, Path, dict[str, str]]:
    """(source copy, deployed project, environment) after snakedeploy deploy-workflow."""
    root = tmp_path_factory.mktemp("catalog")
    source = copy_source(root / "cloudfree-workflow")
    project = root / "project"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env[IMPORT_LOG] = str(root / "imports.txt")
    cmd = [sys.executable, "-c", SNAKEDEPLOY, "deploy-workflow", str(source), str(project)]
    run([*cmd, "--tag", "v0.1.0"], cwd=root, env=env)
    return source, project, env


def test_snakedeploy_writes_the_module_config_and_profiles(deployed):
    source, project, _ = deployed
    snakefile = (project / "workflow" / "Snakefile").read_text()
    assert re.search(r"^module cloudfree_workflow:", snakefile, re.M)
    assert "use rule * from cloudfree_workflow" in snakefile
    assert '"workflow/Snakefile"' in snakefile  # relative to the source (see above)
    for name in ("config.yaml", "stac.yaml", "README.md"):
        assert (project / "config" / name).read_text() == (source / "config" / name).read_text()
    assert (project / "profiles" / "slurm" / "config.yaml").is_file()
    assert (project / "LICENSE").is_file()


def test_the_deployed_workflow_plans_the_chain_with_the_shipped_config(deployed):
    source, project, env = deployed
    module = project / "workflow" / "Snakefile"
    module.write_text(
        module.read_text().replace('"workflow/Snakefile"', f'"{source / "workflow" / "Snakefile"}"')
    )
    proc = run([*SNAKEMAKE, "-n"], cwd=project, env=env)
    rules = {rule for rule, _ in planned_jobs(proc)}
    assert rules >= CHAIN, sorted(CHAIN - rules)
    regions = {w["region"] for _, w in planned_jobs(proc) if "region" in w}
    shipped = yaml.safe_load((project / "config" / "config.yaml").read_text())
    assert set(shipped["regions"]) <= regions
    # the rules run against the library of the workflow's checkout, not an installed one
    imports = Path(env[IMPORT_LOG]).read_text().split()
    assert imports and set(imports) == {str(source / "cloudfree" / "__init__.py")}

    # a job's script too (the report's settings page: no inputs, seconds)
    target = "results/report/settings/workflow.html"
    Path(env[IMPORT_LOG]).unlink()
    run([*SNAKEMAKE, "-c", "1", target], cwd=project, env=env)
    assert "<table" in (project / target).read_text()
    imports = Path(env[IMPORT_LOG]).read_text().split()
    assert len(imports) >= 2 and set(imports) == {str(source / "cloudfree" / "__init__.py")}


def test_the_top_level_snakefile_plans_rule_all_without_a_target(tmp_path):
    """`snakemake` with the top-level Snakefile (which includes workflow/Snakefile) and no
    target plans the default target, rule all, as workflow/Snakefile alone does."""
    write_config(tmp_path, tiny_config())
    jobs = planned_jobs(snakemake(tmp_path, "-n"))
    assert {rule for rule, _ in jobs} >= CHAIN
    scenes = {w["region"] for rule, w in jobs if rule == "download_tiles"}
    assert scenes == {"africa", "europa", "africa_inductive", "europa_inductive"}

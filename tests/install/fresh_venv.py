"""A fresh virtual environment with the README's user install makes the report of a finished
run.

    python tests/install/fresh_venv.py [--run-dir DIR] [--configfile FILE] [--out HTML]

Creates a new virtual environment (in a temporary folder, removed afterwards unless
``--venv`` names one), runs the README's user install line in it from the checkout (the line
is read from README.md, so the two cannot drift), then that environment's
``snakemake --report`` in the run directory (default: the checkout, where
``python benchmarks/default_run.py`` ran the default workflow), and checks the HTML: a whole
page that holds every report category the rules declare. Prints the time of each step; exits
non-zero when a step or the check fails.
"""

from __future__ import annotations

import argparse
import re
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
# the user install: the one README line that installs every extra
INSTALL = re.compile(r'^pip install (?:\S+ )*-e "\.\[all\]"$', re.M)


def readme_install_line(readme: Path = REPO / "README.md") -> str:
    """The README's user install line (exactly one line matches :data:`INSTALL`)."""
    found = INSTALL.findall(readme.read_text())
    if len(found) != 1:
        raise SystemExit(f"{readme}: expected one user install line, found {found}")
    return found[0]


def report_categories(rules: Path = REPO / "workflow" / "rules") -> set[str]:
    """Every ``category=`` of a ``report()`` output in the rule files."""
    return {
        m.group(1)
        for smk in sorted(rules.glob("*.smk"))
        for m in re.finditer(r'category="([^"]+)"', smk.read_text())
    }


def report_problems(html: str, categories: set[str]) -> list[str]:
    """What is wrong with a report page (nothing: an empty list)."""
    if not html.strip():
        return ["the report is empty"]
    problems = [] if "</html>" in html.lower() else ["the report is not a whole HTML page"]
    # the report's data: {"<category>": {"<subcategory>": [<result files>]}, ...}
    problems += [
        f"category {c!r} is missing" for c in sorted(categories) if f'"{c}": {{' not in html
    ]
    return problems


def step(name: str, cmd: list[str], cwd: Path) -> float:
    print(f"== {name}: {shlex.join(cmd)}  (in {cwd})", flush=True)
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd)
    seconds = time.perf_counter() - start
    print(f"== {name}: {seconds:.0f} s, exit code {proc.returncode}", flush=True)
    if proc.returncode != 0:
        raise SystemExit(f"{name} failed (exit code {proc.returncode})")
    return seconds


def check(venv: Path, run_dir: Path, configfile: Path | None, out: Path) -> None:
    python = venv / "bin" / "python"
    step("venv", [sys.executable, "-m", "venv", str(venv)], cwd=REPO)
    line = readme_install_line()
    args = shlex.split(line)
    step("install", [str(python), "-m", *args], cwd=REPO)  # `pip ...` run by the venv
    report = [str(python), "-m", "snakemake", "-s", str(REPO / "Snakefile")]
    if configfile is not None:
        report += ["--configfile", str(configfile)]
    step("report", [*report, "--report", str(out)], cwd=run_dir)
    problems = report_problems(out.read_text(errors="replace"), report_categories())
    if problems:
        raise SystemExit(f"{out}: " + "; ".join(problems))
    print(f"{out}: {out.stat().st_size / 1e6:.1f} MB, categories {sorted(report_categories())}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run-dir", type=Path, default=REPO, help="a finished run's folder")
    parser.add_argument("--configfile", type=Path, help="the run's config (default: embedded)")
    parser.add_argument("--out", type=Path, help="the report (default: <run-dir>/report.html)")
    parser.add_argument("--venv", type=Path, help="where to create the environment (kept)")
    args = parser.parse_args()
    run_dir = args.run_dir.resolve()
    configfile = args.configfile.resolve() if args.configfile else None
    out = (args.out or run_dir / "report.html").resolve()
    start = time.perf_counter()
    if args.venv is not None:
        if args.venv.exists():
            raise SystemExit(f"{args.venv} exists: the check needs a new environment")
        check(args.venv.resolve(), run_dir, configfile, out)
    else:
        with tempfile.TemporaryDirectory(prefix="cloudfree-venv-") as tmp:
            check(Path(tmp) / "venv", run_dir, configfile, out)
    print(f"fresh environment checked in {time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())

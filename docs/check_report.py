"""Open a Snakemake HTML report in headless Chromium, check its figures load, screenshot it.

    snakemake --report report.html
    python docs/check_report.py report.html --screenshot docs/report.png

Checks, in Chromium itself (Debian package `chromium`):
1. the report renders: after its JavaScript ran, the DOM holds the navigation with the
   result categories (``--expect`` names, default the workflow's four);
2. every figure embedded in it (PNG data URIs) loads as an image with a non-zero size: a
   page holding one ``<img>`` per figure is rendered and each image's natural size read back.
Writes a screenshot of the report's landing page. Exits 1 with the reason on any failure.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

FLAGS = [
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--virtual-time-budget=15000",
]  # fmt: skip
DATA_URI = re.compile(r"data:image/png;charset=utf8;filename=([^;]+);base64,([A-Za-z0-9+/=]+)")


def chromium(*args: str) -> str:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        sys.exit("chromium not found: apt-get install chromium")
    with tempfile.TemporaryDirectory() as profile:
        proc = subprocess.run(
            [exe, *FLAGS, f"--user-data-dir={profile}", *args],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
    return proc.stdout


def figures_load(figures: dict[str, str], workdir: Path) -> dict[str, list[int]]:
    """Natural (width, height) of every figure as Chromium decodes it."""
    imgs = "\n".join(f'<img id="f{i}" src="{uri}">' for i, uri in enumerate(figures.values()))
    names = json.dumps(list(figures))
    page = workdir / "figures.html"
    page.write_text(
        f"<html><body>{imgs}<pre id='out'></pre><script>"
        f"window.onload = () => {{ const names = {names}; const out = {{}};"
        "names.forEach((n, i) => { const im = document.getElementById('f' + i);"
        " out[n] = [im.naturalWidth, im.naturalHeight]; });"
        "document.getElementById('out').textContent = JSON.stringify(out); };"
        "</script></body></html>"
    )
    dom = chromium("--dump-dom", page.as_uri())
    found = re.search(r"<pre id=\"out\">(.*?)</pre>", dom, re.S)
    if not found or not found.group(1):
        sys.exit("Chromium did not run the figure check page")
    return json.loads(found.group(1).replace("&quot;", '"'))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("report", type=Path)
    parser.add_argument("--screenshot", type=Path)
    parser.add_argument(
        "--expect", nargs="*", default=["Cloud statistics", "Metrics", "Mosaics", "Training"]
    )
    args = parser.parse_args()
    html = args.report.read_text()
    figures = {
        f"{name} #{i}": f"data:image/png;base64,{b64}"
        for i, (name, b64) in enumerate(DATA_URI.findall(html), start=1)
    }
    if not figures:
        print(f"{args.report}: no embedded figures", file=sys.stderr)
        return 1

    dom = chromium("--dump-dom", args.report.resolve().as_uri())
    missing = [name for name in args.expect if name not in dom]
    if missing:
        print(f"{args.report}: rendered page lacks {missing}", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory() as tmp:
        sizes = figures_load(figures, Path(tmp))
    broken = [name for name, (w, h) in sizes.items() if not (w and h)]
    for name, (w, h) in sorted(sizes.items()):
        print(f"{name}: {w} x {h} px")
    if broken:
        print(f"figures that do not load in Chromium: {broken}", file=sys.stderr)
        return 1
    if args.screenshot:
        args.screenshot.parent.mkdir(parents=True, exist_ok=True)
        chromium("--window-size=1400,1000", f"--screenshot={args.screenshot.resolve()}",
                 args.report.resolve().as_uri())  # fmt: skip
        print(f"screenshot: {args.screenshot}")
    print(f"{len(sizes)} figures load; categories {args.expect} rendered")
    return 0


if __name__ == "__main__":
    sys.exit(main())

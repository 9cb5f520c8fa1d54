"""Check that a Snakemake HTML report renders and that its figures decode.

    python benchmarks/render_report.py REPORT.html [--screenshot docs/report.png]

1. Reads the report's embedded results (``<script id="results"> var results = {...}``,
   written by ``snakemake --report``), decodes every ``data:image/...;base64,`` URI and checks
   it is a valid image (PNG/JPEG/GIF through matplotlib's PIL; SVG as XML).
2. Loads the page in headless Chromium (``--dump-dom`` after a virtual-time budget) and
   checks the JavaScript app rendered (the DOM holds more than the static page).
3. With ``--screenshot``, writes a screenshot of the rendered page.

Exits 1 with a message when Chromium is missing, the report has no results, an image does
not decode or the page does not render; prints a one-line summary and the timings otherwise.
No network access is needed (the report is self-contained).
"""

from __future__ import annotations

import argparse
import base64
import binascii
import io
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
CHROMIUM_FLAGS = [
    "--headless=new",
    "--no-sandbox",  # needed as root
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--disable-extensions",
    "--no-first-run",
    "--no-default-browser-check",
    "--hide-scrollbars",
    "--mute-audio",
]
_RESULTS = re.compile(r"<script[^>]*id=\"results\"[^>]*>\s*var results\s*=\s*", re.S)
_DATA_URI = re.compile(r"^data:(?P<mime>[\w.+/-]+)(?P<params>(?:;[^;,]*)*?);base64,(?P<b64>.*)$", re.S)


class ReportError(Exception):
    """The report is unreadable, an image does not decode or the page does not render."""


def find_chromium() -> str:
    for name in CHROMIUM_NAMES:
        if exe := shutil.which(name):
            return exe
    raise ReportError(
        "Chromium not found (looked for " + ", ".join(CHROMIUM_NAMES) + "); on Debian: "
        "apt-get install -y chromium"
    )


def embedded_results(html: str) -> dict[str, dict]:
    """The report's ``results`` object: {path: {name, mime_type, data_uri, ...}}."""
    match = _RESULTS.search(html)
    if match is None:
        raise ReportError('no <script id="results"> in the report: not a snakemake --report file?')
    try:
        results, _ = json.JSONDecoder().raw_decode(html, match.end())
    except json.JSONDecodeError as exc:
        raise ReportError(f"the report's results object is not valid JSON: {exc}") from exc
    if not isinstance(results, dict):
        raise ReportError("the report's results object is not a mapping")
    return results


def decode_image(uri: str) -> tuple[str, tuple[int, int] | None]:
    """Decode one image data URI; returns (mime, (width, height) or None for SVG)."""
    match = _DATA_URI.match(uri)
    if match is None:
        raise ReportError(f"not a base64 data URI: {uri[:60]!r}")
    mime = match["mime"]
    try:
        raw = base64.b64decode(match["b64"], validate=True)
    except binascii.Error as exc:
        raise ReportError(f"bad base64 in {mime} data URI: {exc}") from exc
    if mime == "image/svg+xml":
        try:
            root = ET.fromstring(raw)
        except ET.ParseError as exc:
            raise ReportError(f"SVG does not parse: {exc}") from exc
        if not root.tag.endswith("svg"):
            raise ReportError(f"SVG root element is {root.tag!r}")
        return mime, None
    from PIL import Image  # a matplotlib dependency

    try:
        with Image.open(io.BytesIO(raw)) as img:
            img.load()
            size = img.size
    except Exception as exc:
        raise ReportError(f"{mime} does not decode: {exc}") from exc
    if size[0] < 1 or size[1] < 1:
        raise ReportError(f"{mime} has size {size}")
    return mime, size


def check_images(results: dict[str, dict]) -> list[tuple[str, str, tuple[int, int] | None]]:
    """Decode every image result; raises ReportError listing all that fail."""
    checked, errors = [], []
    for key, entry in results.items():
        uri = entry.get("data_uri", "") if isinstance(entry, dict) else ""
        mime = entry.get("mime_type", "") if isinstance(entry, dict) else ""
        if not (mime.startswith("image/") or uri.startswith("data:image/")):
            continue
        try:
            got, size = decode_image(uri)
        except ReportError as exc:
            errors.append(f"{key}: {exc}")
            continue
        checked.append((key, got, size))
    if errors:
        raise ReportError("images that do not decode:\n  " + "\n  ".join(errors))
    if not checked:
        raise ReportError("the report embeds no image result")
    return checked


def run_chromium(exe: str, args: list[str], profile: Path, timeout: float) -> str:
    cmd = [exe, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired as exc:
        raise ReportError(f"Chromium did not finish within {timeout:.0f} s: {cmd}") from exc
    if proc.returncode != 0:
        raise ReportError(f"Chromium failed ({proc.returncode}): {proc.stderr.strip()[-2000:]}")
    return proc.stdout


def render(
    report: Path, screenshot: Path | None, *, budget_ms: int, size: str, timeout: float
) -> dict[str, float]:
    """Dump the rendered DOM (and take the screenshot); returns timings in seconds."""
    exe = find_chromium()
    url = report.resolve().as_uri()
    timings = {}
    with tempfile.TemporaryDirectory(prefix="render_report_") as tmp:
        t0 = time.perf_counter()
        dom = run_chromium(
            exe,
            [f"--virtual-time-budget={budget_ms}", "--dump-dom", url],
            Path(tmp, "profile-dom"),
            timeout,
        )
        timings["dump_dom_s"] = time.perf_counter() - t0
        # The static page has an (almost) empty app root; after rendering, the JS app
        # adds its navigation / results markup.  Look for report content in the DOM.
        body = dom.split("<body", 1)[-1]
        visible = re.sub(r"<script.*?</script>|<style.*?</style>", "", body, flags=re.S)
        if len(visible) < 2000 or "<svg" not in visible and "<img" not in visible:
            raise ReportError(
                f"the page did not render: {len(visible)} characters of markup outside "
                "scripts after the JavaScript ran"
            )
        if screenshot is not None:
            screenshot.parent.mkdir(parents=True, exist_ok=True)
            shot_tmp = Path(tmp, "shot.png")
            t0 = time.perf_counter()
            run_chromium(
                exe,
                [
                    f"--virtual-time-budget={budget_ms}",
                    f"--window-size={size}",
                    f"--screenshot={shot_tmp}",
                    url,
                ],
                Path(tmp, "profile-shot"),
                timeout,
            )
            timings["screenshot_s"] = time.perf_counter() - t0
            if not shot_tmp.exists():
                raise ReportError("Chromium wrote no screenshot")
            _, shot_size = decode_image(
                "data:image/png;base64," + base64.b64encode(shot_tmp.read_bytes()).decode()
            )
            shutil.move(shot_tmp, screenshot)
    return timings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("report", type=Path, help="HTML file of snakemake --report")
    parser.add_argument("--screenshot", type=Path, help="write a PNG screenshot here")
    parser.add_argument("--window-size", default="1400,1000", help="W,H of the screenshot")
    parser.add_argument("--budget-ms", type=int, default=10000, help="virtual time for JS")
    parser.add_argument("--timeout", type=float, default=120, help="seconds per Chromium run")
    args = parser.parse_args(argv)
    try:
        if not args.report.is_file():
            raise ReportError(f"{args.report}: no such file")
        t0 = time.perf_counter()
        results = embedded_results(args.report.read_text(encoding="utf-8"))
        images = check_images(results)
        decode_s = time.perf_counter() - t0
        timings = render(
            args.report,
            args.screenshot,
            budget_ms=args.budget_ms,
            size=args.window_size,
            timeout=args.timeout,
        )
    except ReportError as exc:
        print(f"render_report: {exc}", file=sys.stderr)
        return 1
    for key, mime, size in images:
        print(f"ok  {mime:<14} {'x'.join(map(str, size)) if size else '-':>9}  {key}")
    times = ", ".join(f"{k} {v:.1f}" for k, v in {"decode_s": decode_s, **timings}.items())
    shot = f"; screenshot {args.screenshot}" if args.screenshot else ""
    print(f"{len(images)} of {len(results)} results are images, all decode; rendered{shot} ({times})")
    return 0


if __name__ == "__main__":
    sys.exit(main())

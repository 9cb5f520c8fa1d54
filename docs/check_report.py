"""Check a Snakemake HTML report as a reader uses it: every category, entry and toggle
clicked in headless Chromium, each category screenshot.

    snakemake --report report.html
    python docs/check_report.py report.html --screenshots docs/report --screenshot docs/report.png

Checks, first on the report's embedded data (``--no-browser``: these only):
1. every expected category (``--expect``, default the workflow's five) has entries, and
   every entry is shown in place (an image, HTML or PDF; anything else is only a download);
2. in each category every entry has labels and no two have the same; where the report
   would make a label a toggle (a second label with two values, half the entries each),
   every entry has both values, or the page could not show it.
Then in Chromium (Debian package ``chromium``, driven by Playwright's Python package):
3. each category is opened from the menu, each entry clicked (for every value of a toggle):
   an image must load (non-zero natural size), an HTML page must hold a table or text;
4. the browser logs no console error and the page raises no error.
Writes ``<dir>/<category>.png`` (1280 x 800) per category showing its first figure (or first
entry), and with ``--screenshot`` the landing page.  Exits 1 naming every failure.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections import Counter
from pathlib import Path
from typing import Any

try:
    from playwright.sync_api import Error as PlaywrightError
    from playwright.sync_api import sync_playwright
except ImportError:  # the checks of the embedded data (--no-browser) need none of it
    PlaywrightError = sync_playwright = None

CHROMIUM = "/usr/bin/chromium"
FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
VIEWPORT = {"width": 1280, "height": 800}
INLINE = ("image/svg+xml", "image/png", "image/jpeg", "text/html", "application/pdf")
CATEGORIES = ["Cloud statistics", "Metrics", "Mosaics", "Settings", "Training"]
TIMEOUT_MS = 15000


def embedded(html: str, name: str) -> Any:
    """The JSON a report embeds as ``var <name> = ...;`` in its ``<script id="<name>">``."""
    found = re.search(rf'<script id="{name}">\s*var {name} = (.*?);\s*</script>', html, flags=re.S)
    if found is None:
        raise ValueError(f"the report embeds no {name!r} data")
    return json.loads(found.group(1))


def report_data(path: Path) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, list]]]:
    """(results: path -> entry, categories: category -> subcategory -> paths) of a report."""
    html = path.read_text(encoding="utf-8")
    return embedded(html, "results"), embedded(html, "categories")


def toggles(entries: list[dict[str, Any]]) -> dict[str, list[str]]:
    """The labels the report shows as toggles, as its JavaScript picks them: of the labels
    after the first (in order of first appearance), those with exactly two values, each on
    half of the entries; none when more than one qualifies."""
    order: dict[str, int] = {}
    for entry in entries:
        for i, key in enumerate(entry.get("labels") or {}):
            order.setdefault(key, i)
    labels = sorted(order, key=order.__getitem__)
    found = {}
    for label in labels[1:]:
        values = [e["labels"][label] for e in entries if label in (e.get("labels") or {})]
        counts = Counter(values)
        if len(counts) == 2 and all(c * 2 == len(entries) for c in counts.values()):
            found[label] = sorted(counts)
    return found if len(found) == 1 else {}


def label_problems(category: str, entries: list[dict[str, Any]]) -> list[str]:
    """What is wrong with the labels of a category's entries (see the module's check 2)."""
    if not all(e.get("labels") for e in entries):
        return [f"{category}: entries without labels"]
    problems = []
    seen = Counter(tuple(sorted(e["labels"].items())) for e in entries)
    problems += [f"{category}: {dict(k)} labels {n} entries" for k, n in seen.items() if n > 1]
    for label, values in toggles(entries).items():
        rows: dict[tuple, set[str]] = {}
        for e in entries:
            key = tuple(sorted((k, v) for k, v in e["labels"].items() if k != label))
            rows.setdefault(key, set()).add(e["labels"][label])
        missing = [dict(k) for k, v in rows.items() if v != set(values)]
        if missing:
            problems.append(
                f"{category}: label {label!r} becomes a toggle {values} but entries "
                f"{missing} lack a value: the report fails to show them"
            )
    return problems


def data_problems(
    results: dict[str, dict[str, Any]], categories: dict[str, dict[str, list]], expect: list[str]
) -> list[str]:
    """Checks 1 and 2 on a report's embedded data."""
    problems = [f"category {c!r} missing or empty" for c in expect if not categories.get(c)]
    for category, subcategories in categories.items():
        for subcategory, paths in subcategories.items():
            entries = [results[p] for p in paths]
            problems += [
                f"{category}: {p} ({results[p]['mime_type']}) is only a download"
                for p in paths
                if results[p]["mime_type"] not in INLINE
            ]
            name = category if len(subcategories) == 1 else f"{category}/{subcategory}"
            problems += label_problems(name, entries)
    return problems


SHOWN = """(uris) => {
    const el = [...document.querySelectorAll('#app img, #app iframe')]
        .find((e) => uris.includes(e.getAttribute('src')));
    if (!el) return null;
    return {uri: el.getAttribute('src'), tag: el.tagName.toLowerCase(),
            width: el.naturalWidth || 0, height: el.naturalHeight || 0,
            complete: el.tagName !== 'IMG' || el.complete};
}"""


def shown(page: Any, uris: list[str], before: str | None) -> dict[str, Any]:
    """What the content pane shows once it shows an entry other than ``before``."""
    page.wait_for_function(
        f"([uris, before]) => {{ const s = ({SHOWN})(uris);"
        " return s && s.complete && s.uri !== before; }",
        arg=[uris, before],
        timeout=TIMEOUT_MS,
    )
    return page.evaluate(SHOWN, uris)


def frame_text(page: Any, uri: str) -> tuple[int, int]:
    """(table rows, characters of text) of the HTML page shown from ``uri``."""
    for frame in page.frames:
        if frame.url == uri or (len(frame.url) > 64 and uri.startswith(frame.url[:64])):
            frame.wait_for_load_state()
            return frame.evaluate(
                "() => [document.querySelectorAll('tr').length, document.body.innerText.length]"
            )
    return 0, 0


def open_category(page: Any, url: str, category: str) -> None:
    page.goto(url)
    page.get_by_role("link", name=category, exact=True).click()
    page.locator("#app table tbody tr").first.wait_for(timeout=TIMEOUT_MS)


def check_category(
    page: Any, url: str, category: str, results: dict[str, dict[str, Any]], paths: list[str]
) -> tuple[list[str], dict[str, dict[str, Any]]]:
    """Click every entry of a category (for each toggle value); problems and what was shown
    (result path -> what the content pane showed)."""
    by_uri = {results[p]["data_uri"]: p for p in paths}
    uris = list(by_uri)
    problems: list[str] = []
    seen: dict[str, dict[str, Any]] = {}
    open_category(page, url, category)
    radios = page.locator("#app fieldset input[type=radio]")
    settings = [None] + [radios.nth(i).get_attribute("id") for i in range(radios.count())]
    for radio in settings:
        if radio is not None:
            page.locator(f"label[for='{radio}']").click()
        rows = page.locator("#app table tbody tr")
        before = None
        for i in range(rows.count()):
            button = rows.nth(i).locator("td").last.locator("a").first
            href = button.get_attribute("href")
            if href != "#":  # a download link: nothing to show in place
                path = by_uri.get(href, href[:80])
                mime = results.get(path, {}).get("mime_type")
                problems.append(f"{category}: {path} ({mime}) is only a download")
                seen[path] = {"tag": "download"}
                continue
            button.click()
            try:
                view = shown(page, uris, before)
            except PlaywrightError as exc:  # a timeout: nothing shown
                problems.append(
                    f"{category}: row {i + 1} shows none of its entries ({exc.message})"
                )
                continue
            before = view["uri"]
            path = by_uri[view["uri"]]
            if view["tag"] == "img" and not (view["width"] and view["height"]):
                problems.append(f"{category}: {path} does not load as an image")
            if view["tag"] == "iframe":
                view["rows"], view["text"] = frame_text(page, view["uri"])
                if results[path]["mime_type"] == "text/html" and not view["text"]:
                    problems.append(f"{category}: {path} shows an empty page")
            seen[path] = view
    problems += [f"{category}: {p} not reachable by a click" for p in paths if p not in seen]
    seen = {p: v for p, v in seen.items() if v["tag"] != "download"}
    return problems, seen


def screenshot_category(
    page: Any, url: str, category: str, results: dict[str, dict[str, Any]], paths: list[str],
    out: Path,
) -> None:  # fmt: skip
    """The category's table and its first figure in display order (else its first entry)."""
    open_category(page, url, category)
    rows = page.locator("#app table tbody tr")
    uris = [results[p]["data_uri"] for p in paths]
    before = None
    for i in range(rows.count()):
        rows.nth(i).locator("td").last.locator("a").first.click()
        before = shown(page, uris, before)["uri"]
        if before.startswith("data:image"):
            break
    if not before.startswith("data:image"):
        rows.first.locator("td").last.locator("a").first.click()
    page.wait_for_timeout(500)
    out.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(out))


def slug(category: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", category.lower()).strip("_")


def browser_check(
    report: Path, results: dict[str, dict[str, Any]], categories: dict[str, dict[str, list]],
    screenshots: Path | None, landing: Path | None,
) -> list[str]:  # fmt: skip
    """Checks 3 and 4 in Chromium; writes the screenshots."""

    problems: list[str] = []
    errors: list[str] = []
    url = report.resolve().as_uri()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        page = browser.new_page(viewport=VIEWPORT)
        page.on("console", lambda m: errors.append(f"console {m.type}: {m.text}")
                if m.type == "error" else None)  # fmt: skip
        page.on("pageerror", lambda exc: errors.append(f"page error: {exc}"))
        page.goto(url)
        page.get_by_text("Results", exact=True).first.wait_for(timeout=TIMEOUT_MS)
        if landing:
            landing.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(landing))
        for category in sorted(categories):
            paths = [p for subcat in categories[category].values() for p in subcat]
            try:
                found, seen = check_category(page, url, category, results, paths)
            except PlaywrightError as exc:  # the page broke down: its errors say why
                problems.append(f"{category}: the page stopped responding ({exc.message})")
                continue
            problems += found
            kinds = Counter(v["tag"] for v in seen.values())
            print(f"{category}: {len(seen)} of {len(paths)} entries shown "
                  f"({kinds['img']} figures, {kinds['iframe']} pages)")  # fmt: skip
            if screenshots and not found:
                out = screenshots / f"{slug(category)}.png"
                screenshot_category(page, url, category, results, paths, out)
                print(f"  screenshot {out}")
        browser.close()
    return problems + errors


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("report", type=Path)
    parser.add_argument("--screenshots", type=Path, help="folder of one PNG per category")
    parser.add_argument("--screenshot", type=Path, help="PNG of the landing page")
    parser.add_argument("--expect", nargs="*", default=CATEGORIES)
    parser.add_argument("--no-browser", action="store_true", help="checks 1 and 2 only")
    args = parser.parse_args()
    try:
        results, categories = report_data(args.report)
    except (OSError, ValueError) as exc:
        print(f"{args.report}: {exc}", file=sys.stderr)
        return 1
    problems = data_problems(results, categories, args.expect)
    if not args.no_browser:
        if not Path(CHROMIUM).exists() or sync_playwright is None:
            need = "apt-get install chromium; pip install playwright (not its browsers)"
            print(f"needs {CHROMIUM} and Playwright: {need}", file=sys.stderr)
            return 1
        problems += browser_check(
            args.report, results, categories, args.screenshots, args.screenshot
        )
    problems = list(dict.fromkeys(problems))  # the browser finds what the data showed too
    for problem in problems:
        print(problem, file=sys.stderr)
    if problems:
        return 1
    counts = {c: sum(len(p) for p in s.values()) for c, s in sorted(categories.items())}
    print(f"{args.report}: {sum(counts.values())} entries in {counts}: all shown, no error")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The report in headless Chromium: opens offline, loads every image, fires nothing.

Uses Debian's ``chromium`` (``/usr/bin/chromium``; ``.ci/run`` installs it) through
Playwright for Python — never ``playwright install``. Without the browser the
tests skip and say why; with ``CTQC_REQUIRE_BROWSER=1`` (set by ``.ci/run`` once
Chromium is installed) a missing browser or Playwright is a failure instead.
"""

from __future__ import annotations

import io
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.test_report import XSS_CLASS, XSS_FILE_ID, report_of

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run"]


def _require_browser():
    reason = None
    if not CHROMIUM.exists():
        reason = f"{CHROMIUM} is missing: install Debian's chromium (apt-get install -y chromium; .ci/run does this)"
    else:
        try:
            import playwright.sync_api  # noqa: F401
        except ImportError:
            reason = "playwright (Python) is not installed: pip install -e '.[dev]'"
    if reason:
        if os.environ.get("CTQC_REQUIRE_BROWSER") == "1":
            pytest.fail(reason)
        pytest.skip(reason)


@dataclass
class PageVisit:
    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)
    images: list[dict] = field(default_factory=list)
    resources: list[str] = field(default_factory=list)
    screenshot: bytes = b""
    body_text: str = ""
    script_elements: int = -1


def visit(html_path: Path) -> PageVisit:
    """Open ``html_path`` in a fresh Chromium profile and record everything the page does."""
    _require_browser()
    from playwright.sync_api import sync_playwright

    seen = PageVisit()
    with tempfile.TemporaryDirectory(prefix="ctqc-chromium-") as profile, sync_playwright() as p:
        context = p.chromium.launch_persistent_context(profile, executable_path=str(CHROMIUM), headless=True, args=ARGS, viewport={"width": 1280, "height": 900}, offline=True)
        try:
            page = context.new_page()
            page.on("console", lambda m: seen.console_errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: seen.page_errors.append(str(e)))
            page.on("request", lambda r: seen.requests.append(r.url))
            page.on("dialog", lambda d: (seen.dialogs.append(f"{d.type}: {d.message}"), d.dismiss()))
            page.goto(html_path.resolve().as_uri(), wait_until="load")
            seen.images = page.evaluate("Array.from(document.images, i => ({complete: i.complete, w: i.naturalWidth, h: i.naturalHeight, src: i.src.slice(0, 22)}))")
            seen.resources = page.evaluate("performance.getEntriesByType('resource').map(e => e.name)")
            seen.body_text = page.evaluate("document.body.innerText")
            seen.script_elements = page.evaluate("document.scripts.length")
            page.wait_for_timeout(300)  # anything deferred (it should not exist) gets its chance to fire
            seen.screenshot = page.screenshot(full_page=False)
        finally:
            context.close()
    return seen


def assert_clean(seen: PageVisit, html: str) -> None:
    assert seen.console_errors == [] and seen.page_errors == []
    assert all(u.startswith(("data:", "file:")) for u in seen.requests), seen.requests
    assert all(u.startswith(("data:", "file:")) for u in seen.resources), seen.resources
    assert seen.dialogs == [] and seen.script_elements == 0
    assert len(seen.images) == html.count("<img ") and seen.images
    broken = [i for i in seen.images if not (i["complete"] and i["w"] > 0 and i["h"] > 0)]
    assert not broken, broken[:3]
    assert all(i["src"].startswith("data:image/png") for i in seen.images)
    shot = np.asarray(Image.open(io.BytesIO(seen.screenshot)).convert("L"), dtype=float)
    assert shot.shape == (900, 1280) and shot.std() > 20, f"blank-looking screenshot (pixel std {shot.std():.1f})"
    assert (shot < 100).mean() > 0.01  # text and figures, not just a background


def test_smoke_run_report_in_chromium(tmp_path_factory):
    _, result = report_of("smoke", tmp_path_factory)
    seen = visit(result.html_path)
    assert_clean(seen, result.html_path.read_text())
    assert "Run summary" in seen.body_text and "not run — run ctqc compare" in seen.body_text


def test_full_report_in_chromium(tmp_path_factory):
    _, result = report_of("full", tmp_path_factory)
    seen = visit(result.html_path)
    assert_clean(seen, result.html_path.read_text())
    assert "not run" not in seen.body_text.split("At a glance")[1].split("Run summary")[0]


def test_hostile_file_and_class_names_fire_nothing(tmp_path_factory):
    for name in ("xss", "xss_full"):
        _, result = report_of(name, tmp_path_factory)
        seen = visit(result.html_path)
        assert_clean(seen, result.html_path.read_text())
        assert XSS_CLASS in seen.body_text and XSS_FILE_ID in seen.body_text  # shown as text, not run as markup


def test_the_browser_checks_catch_a_hostile_page(tmp_path):
    """The harness itself: a remote image, a script with a dialog and a broken image are all seen."""
    page = tmp_path / "bad.html"
    page.write_text('<!DOCTYPE html><html><body><p>x</p><img src="http://127.0.0.1:9/x.png"><img src="data:image/png;base64,AAAA"><script>alert("hi")</script></body></html>')
    seen = visit(page)
    assert seen.dialogs == ["alert: hi"] and seen.script_elements == 1
    assert any(u.startswith("http://127.0.0.1:9/") for u in seen.requests)
    assert sum(i["w"] == 0 for i in seen.images) == 2
    with pytest.raises(AssertionError):
        assert_clean(seen, page.read_text())

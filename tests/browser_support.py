"""Debian's chromium under Playwright, as every browser test launches it.

Chromium is ``$TOWER_CHROMIUM`` (default /usr/bin/chromium); Playwright never
downloads a browser. Without one the tests skip, or fail under
``TOWER_REQUIRE_BROWSER=1``.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tests.conftest import unavailable

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@contextlib.contextmanager
def chromium() -> Iterator[Any]:
    """A headless chromium (a Playwright ``Browser``), closed on exit."""
    executable = os.environ.get("TOWER_CHROMIUM") or "/usr/bin/chromium"
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as exc:
        unavailable(f"playwright is not installed: {exc}", "TOWER_REQUIRE_BROWSER")
    if not Path(executable).exists():
        unavailable(f"no chromium at {executable}", "TOWER_REQUIRE_BROWSER")
    with sync_playwright() as playwright:
        try:
            launched = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        except Exception as exc:
            unavailable(f"chromium at {executable} does not start: {exc}", "TOWER_REQUIRE_BROWSER")
        try:
            yield launched
        finally:
            launched.close()

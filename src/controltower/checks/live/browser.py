"""The page in a real browser: Chromium loads the home page and reports what its CSP blocked.

Header checks grade the policy's text; only a browser can tell that the policy
blocks the page's own scripts (a nonce policy with ``'strict-dynamic'`` on a
prerendered page leaves every inline bootstrap script without its nonce, so
the page never hydrates, while the headers earn an A+). Chromium reports each
blocked load as a ``securitypolicyviolation`` event (CSP Level 3, section 5.3
"Report a violation"); the check listens for them from before the first
script runs.

Chromium is found as the Lighthouse check finds it (``$CHROME_PATH``, ``$TOWER_CHROMIUM``,
then ``chromium``/``chromium-browser``/``google-chrome`` on PATH); Playwright (``pip install playwright``, no browser
download needed) drives it. Without either the check is skipped and says why.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from controltower.checks.base import Check, CheckContext, register
from controltower.checks.live.lighthouse import find_chromium
from controltower.checks.model import (
    Category,
    Fix,
    Gate,
    Outcome,
    Severity,
    failed,
    passed,
    skipped,
    warned,
)

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
LOAD_TIMEOUT = 30.0
SETTLE = 1.0  # seconds after the load event for late scripts to run (and be blocked)

# Installed before any script of the page: every violation is kept in window.__towerCsp.
LISTENER = """
window.__towerCsp = [];
document.addEventListener("securitypolicyviolation", (e) => {
  window.__towerCsp.push({
    directive: e.effectiveDirective || e.violatedDirective,
    blocked: e.blockedURI,
    source: e.sourceFile,
    line: e.lineNumber,
    disposition: e.disposition,
  });
});
"""


@dataclass(frozen=True)
class Violation:
    directive: str
    blocked: str
    source: str
    line: int
    disposition: str

    def own_script(self, origin: str) -> bool:
        """A script of the page itself: inline, eval, or from the page's own origin."""
        if not self.directive.startswith("script-src"):
            return False
        if self.blocked in ("inline", "eval", "wasm-eval", ""):
            return True
        parts = urlsplit(self.blocked)
        return f"{parts.scheme}://{parts.netloc}" == origin

    def describe(self) -> str:
        where = f" ({self.source}:{self.line})" if self.source else ""
        return f"{self.directive} blocked {self.blocked or 'inline'}{where}"


async def page_violations(url: str, executable: str) -> list[Violation]:
    """Load ``url`` in Chromium and return the CSP violations it reported."""
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            context = await browser.new_context()
            page = await context.new_page()
            await page.add_init_script(LISTENER)
            await page.goto(url, wait_until="load", timeout=LOAD_TIMEOUT * 1000)
            await page.wait_for_timeout(SETTLE * 1000)
            found: list[dict[str, Any]] = await page.evaluate("window.__towerCsp || []")
        finally:
            await browser.close()
    return [
        Violation(
            str(item.get("directive") or ""),
            str(item.get("blocked") or ""),
            str(item.get("source") or ""),
            int(item.get("line") or 0),
            str(item.get("disposition") or "enforce"),
        )
        for item in found
    ]


@register
class BrowserCsp(Check):
    """The home page, loaded in Chromium, runs its own scripts: its Content-Security-Policy
    blocks none of the page's inline or same-origin scripts (other blocked loads warn).
    Skipped when Chromium or Playwright is not installed."""

    id = "security.csp_browser"
    title = "The CSP lets the page's own scripts run in Chromium"
    category = Category.SECURITY
    gate = Gate.PRODUCTION
    severity = Severity.HIGH
    kind = "live"
    remedy = "Allow the page's own scripts: a nonce only on pages rendered per request, 'self' and the inline bootstrap scripts (or their hashes) on prerendered pages."

    async def run(self, ctx: CheckContext) -> Outcome:
        assert ctx.url is not None
        home = await ctx.get("/")
        policy = home.headers.get("content-security-policy")
        if not policy:
            return skipped("the home page sends no enforced Content-Security-Policy")
        if "html" not in home.headers.get("content-type", "") or "<script" not in home.text:
            return skipped("the home page is not an HTML page with scripts")
        executable = find_chromium(dict(os.environ))
        if executable is None:
            return skipped("no Chromium found (set TOWER_CHROMIUM or install chromium)")
        try:
            import playwright.async_api  # noqa: F401
        except ImportError:
            return skipped("Playwright is not installed (pip install playwright)")
        url = ctx.url.rstrip("/") + "/"
        parts = urlsplit(url)
        origin = f"{parts.scheme}://{parts.netloc}"
        try:
            violations = await page_violations(url, executable)
        except Exception as exc:  # a browser that cannot start or a page that never loads
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            return skipped(f"Chromium could not load {url}: {first}")
        fix = Fix(
            "Let the page's own scripts run",
            "next.config / middleware",
            "Prerendered pages: script-src 'self' 'unsafe-inline' (no nonce; or the scripts' "
            "hashes)\nPages rendered per request: script-src 'self' 'nonce-<per request>' "
            "'strict-dynamic'\n(`tower generate nextjs` picks by what the root layout uses)",
        )
        blocking = [v for v in violations if v.disposition == "enforce" and v.own_script(origin)]
        if blocking:
            return failed(
                f"the CSP blocked {len(blocking)} of the page's own scripts in Chromium: "
                + blocking[0].describe(),
                fix,
                details=[v.describe() for v in blocking[:50]],
                violations=len(violations),
            )
        if violations:
            return warned(
                f"Chromium reported {len(violations)} CSP violation(s), none of the page's own "
                "scripts: " + violations[0].describe(),
                fix,
                details=[v.describe() for v in violations[:50]],
                violations=len(violations),
            )
        return passed(f"{url} loaded in Chromium with no CSP violation", violations=0)

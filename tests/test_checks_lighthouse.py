"""performance.lighthouse: the real Lighthouse (12.2.3, pinned in tests/fixtures/webtools)
with Debian's Chromium against a fixture page served locally, held to [budgets.web]."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from controltower.checks import CheckContext, Status, run_checks, select
from controltower.checks.live.lighthouse import PageResult, over_budget, read_report
from controltower.spec import parse_spec
from controltower.spec.budgets import WebBudgetsSpec
from controltower.spec.loader import SpecError
from tests.conftest import unavailable

PAGE = Path(__file__).parent / "fixtures" / "webpage"
SPEC = '[service]\nname = "shop"\n[budgets.web]\npages = ["/"]\n'


def lighthouse_binary() -> str:
    explicit = os.environ.get("TOWER_LIGHTHOUSE", "")
    tools = os.environ.get("TOWER_WEBTOOLS", "")
    binary = explicit or (
        str(Path(tools) / "node_modules" / ".bin" / "lighthouse") if tools else ""
    )
    if not binary or not Path(binary).is_file():
        unavailable(
            "no Lighthouse: set TOWER_WEBTOOLS=$(bash scripts/webtools.sh | tail -1)",
            "TOWER_REQUIRE_BROWSER",
        )
    if not Path(os.environ.get("TOWER_CHROMIUM") or "/usr/bin/chromium").exists():
        unavailable("no chromium (bash scripts/chromium.sh)", "TOWER_REQUIRE_BROWSER")
    return binary


@contextlib.contextmanager
def served(folder: Path) -> Iterator[str]:
    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(folder))
    handler.log_message = lambda *args: None  # type: ignore[method-assign]
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


async def _check(url: str, spec_text: str, environ: dict[str, str]) -> Any:
    async with httpx.AsyncClient(timeout=10) as client:
        ctx = CheckContext(
            spec=parse_spec(spec_text, environ={}),
            root=PAGE,
            url=url,
            client=client,
            environ=environ,
        )
        return await run_checks(ctx, select(["performance.lighthouse"]))


class TestRealLighthouse:
    def test_impossible_budget_fails_gate_two(self) -> None:
        """One real Lighthouse run of a local page reports the score and LCP, CLS, TBT, FCP,
        Speed Index and bytes; an LCP budget of 1 ms and a score of 100 fail gate 2 (gate 1
        still passes); the same measurements within generous budgets break none."""
        binary = lighthouse_binary()
        environ = {"TOWER_LIGHTHOUSE": binary}
        if os.environ.get("TOWER_CHROMIUM"):
            environ["CHROME_PATH"] = os.environ["TOWER_CHROMIUM"]
        spec = SPEC + 'performance = 100\nlcp = "1ms"\ncls = 0.1\n'
        with served(PAGE) as url:
            run = asyncio.run(_check(url, spec, environ))
        finding = run.findings[0]
        assert finding.status is Status.FAIL, finding.message
        assert run.gates[1].passed and not run.gates[2].passed
        assert "/: LCP" in finding.message and "> 1 ms budget" in finding.message
        [page] = finding.data["pages"]
        assert page["version"] == "12.2.3" and page["error"] == ""
        assert 0 <= page["score"] <= 100
        assert set(page["metrics"]) == {"lcp", "fcp", "tbt", "speed_index", "cls", "total_bytes"}
        assert page["metrics"]["lcp"] > 0 and page["metrics"]["total_bytes"] > 300
        assert f"performance {page['score']}" in finding.details[0]
        measured = PageResult("/", page["score"], page["metrics"], page["version"])
        generous = WebBudgetsSpec(performance=0, lcp=60, cls=1.0, tbt=60, total_bytes=10**7)
        assert over_budget(measured, generous) == []


class TestNotRun:
    def test_missing_lighthouse_is_not_run(self) -> None:
        """Without Lighthouse the check says "not run" and why; it never passes."""
        run = asyncio.run(
            _check("http://127.0.0.1:9", SPEC, {"TOWER_LIGHTHOUSE": "/nonexistent/lighthouse"})
        )
        finding = run.findings[0]
        assert finding.status is Status.WARN
        assert finding.message.startswith("not run: Lighthouse")

    def test_missing_chromium_is_not_run(self, tmp_path: Path) -> None:
        """Without Chromium (nothing on PATH, no CHROME_PATH) the check says so."""
        fake = tmp_path / "lighthouse"
        fake.write_text("#!/bin/sh\nexit 1\n")
        environ = {"TOWER_LIGHTHOUSE": str(fake), "CHROME_PATH": "", "TOWER_CHROMIUM": ""}
        environ["PATH"] = str(tmp_path)
        run = asyncio.run(_check("http://127.0.0.1:9", SPEC, environ))
        assert (
            run.findings[0].message
            == "not run: Chromium (apt-get install chromium, or CHROME_PATH) not found"
        )

    def test_no_budgets_is_skipped(self) -> None:
        """Without [budgets.web] the check is skipped, not run against defaults."""
        run = asyncio.run(_check("http://127.0.0.1:9", '[service]\nname = "shop"\n', {}))
        assert run.findings[0].status is Status.SKIP


class TestReport:
    def test_runtime_error_breaks_every_budget(self) -> None:
        """A page Lighthouse could not load is a failure that quotes Lighthouse."""
        result = read_report(
            "/down",
            {"lighthouseVersion": "12.2.3", "runtimeError": {"code": "ERRORED_DOCUMENT_REQUEST",
             "message": "Lighthouse was unable to reliably load the page (Status code: 500)"}},
        )  # fmt: skip
        assert over_budget(result, WebBudgetsSpec(performance=50)) == [
            "/down: Lighthouse could not load it: Lighthouse was unable to reliably load the "
            "page (Status code: 500)"
        ]

    def test_budgets_compare_in_their_units(self) -> None:
        """Durations are seconds in tower.toml and milliseconds in Lighthouse; bytes are bytes."""
        result = PageResult("/", 88, {"lcp": 2600.0, "cls": 0.05, "total_bytes": 2_000_000})
        budgets = WebBudgetsSpec(performance=90, lcp=2.5, cls=0.1, total_bytes=1_000_000)
        assert over_budget(result, budgets) == [
            "/: performance 88 < 90 budget",
            "/: LCP 2600 ms > 2500 ms budget",
            "/: total bytes 1953.1 KiB > 976.6 KiB budget",
        ]

    def test_bad_budgets_name_the_line(self) -> None:
        """A page that is not a path and a score over 100 are refused with file:line."""
        with pytest.raises(SpecError) as caught:
            parse_spec(SPEC.replace('"/"', '"home"') + "performance = 190\n", source="tower.toml")
        text = str(caught.value)
        assert (
            "tower.toml:4: budgets.web.pages" in text
            and "tower.toml:5: budgets.web.performance" in text
        )

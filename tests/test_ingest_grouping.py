"""Grouping like Sentry's stack-trace grouping, for JavaScript and Python, and the legacy
config that keeps the ids of issues made before."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from controltower.ingest import issues
from controltower.ingest.event import ParsedEvent, parse_event
from controltower.ingest.grouping import (
    fingerprint_for,
    legacy_fingerprint_for,
    normalize_filename,
)
from controltower.ingest.projects import ensure_projects
from controltower.ingest.writer import write_batch
from controltower.spec.server import ProjectSpec
from controltower.store import Store

NOW = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)


def js_frame(filename: str, function: str | None, line: str = "", **extra: Any) -> dict[str, Any]:
    frame: dict[str, Any] = {"filename": filename, "abs_path": filename, "in_app": True}
    if function is not None:
        frame["function"] = function
    if line:
        frame["context_line"] = line
    return {**frame, **extra}


def js_event(kind: str, value: str, frames: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    exception: dict[str, Any] = {"type": kind, "value": value, "stacktrace": {"frames": frames}}
    if "mechanism" in extra:
        exception["mechanism"] = extra.pop("mechanism")
    return {"platform": "javascript", "exception": {"values": [exception]}, **extra}


def fingerprint(payload: dict[str, Any]) -> str:
    return parse_event(payload, project_id=1, received_at=NOW).fingerprint


ROUTE = "app:///_next/server/app/api/boom/route.js"


class TestFilenames:
    def test_hashes_query_strings_and_origins_are_stripped(self) -> None:
        """Content hashes, webpack chunk ids, query strings, fragments and the origin go."""
        assert (
            normalize_filename(
                "https://shop.example/_next/static/chunks/app/page-4585df5bdf10dbf4.js?v=2#top"
            )
            == "/_next/static/chunks/app/page-<hash>.js"
        )
        assert normalize_filename("/_next/static/chunks/652-76fd75c368540899.js") == (
            "/_next/static/chunks/<n>-<hash>.js"
        )
        assert normalize_filename("assets/index-Bx7k2Qd9.js") == "assets/index-<hash>.js"
        assert normalize_filename("main.3f9a1c2e.js") == "main.<hash>.js"

    def test_ordinary_names_stay(self) -> None:
        """Names without a hash are left alone."""
        for name in ("app/api/boom/route.ts", "checkout-button.tsx", "user-12345678.js"):
            assert normalize_filename(name) == name


class TestJavaScript:
    def test_anonymous_handlers_of_one_file_are_three_issues(self) -> None:
        """Three errors thrown from anonymous functions of one file (same type) are told apart
        by their source lines; line numbers alone would not be stable."""
        lines = ['throw new Error("inventory exhausted");', "throw new Error(`cart ${id}`);", ""]
        prints = {
            fingerprint(js_event("Error", "x", [js_frame(ROUTE, None, line, lineno=i + 10)]))
            for i, line in enumerate(lines)
        }
        assert len(prints) == 3

    def test_same_error_from_two_builds_is_one_issue(self) -> None:
        """Chunk hashes and numeric chunk ids differ between builds; the issue does not."""
        one = js_event(
            "Error",
            "unknown discount code BOGUS",
            [
                js_frame("https://shop.example/_next/static/chunks/652-76fd75c368540899.js", "a"),
                js_frame("https://shop.example/_next/static/chunks/app/page-4585df5bd.js", "o"),
            ],
        )
        two = js_event(
            "Error",
            "unknown discount code OTHER",
            [
                js_frame("https://shop.example/_next/static/chunks/117-0c3e9a1f88d2b4aa.js", "a"),
                js_frame("https://shop.example/_next/static/chunks/app/page-9e8d7c6b5.js?x", "o"),
            ],
        )
        assert fingerprint(one) == fingerprint(two)

    def test_a_named_function_ignores_the_context_line(self) -> None:
        """Where the function is known, the source line (minified or not) does not group."""
        one = js_event("TypeError", "x", [js_frame(ROUTE, "GET", "a();")])
        two = js_event("TypeError", "y", [js_frame(ROUTE, "GET", "b();")])
        assert fingerprint(one) == fingerprint(two)

    def test_long_context_lines_do_not_group(self) -> None:
        """A minified line (over 120 characters) is no stable key: the frame uses the file."""
        one = js_event("Error", "x", [js_frame(ROUTE, "?", "x" * 500)])
        two = js_event("Error", "x", [js_frame(ROUTE, "?", "y" * 500)])
        assert fingerprint(one) == fingerprint(two)

    def test_synthetic_exception_type_is_ignored(self) -> None:
        """A synthetic exception's type (made up by the SDK) does not split an issue."""
        frames = [js_frame(ROUTE, "handler")]
        one = js_event("Error", "a", frames, mechanism={"type": "onerror", "synthetic": True})
        two = js_event("Object", "b", frames, mechanism={"type": "onerror", "synthetic": True})
        assert fingerprint(one) == fingerprint(two)
        real = js_event("TypeError", "a", frames, mechanism={"type": "onerror"})
        assert fingerprint(real) != fingerprint(one)

    def test_in_app_frames_only(self) -> None:
        """Library frames do not group when the stack has in-app frames."""
        app = js_frame(ROUTE, "GET")
        one = js_event("Error", "x", [js_frame("node_modules/next/a.js", "run", in_app=False), app])
        two = js_event("Error", "x", [js_frame("node_modules/next/b.js", "go", in_app=False), app])
        assert fingerprint(one) == fingerprint(two)


class TestPython:
    def test_lambdas_are_told_apart_by_their_line(self) -> None:
        """Python's ``<lambda>`` is anonymous: its context line groups."""

        def event(line: str) -> dict[str, Any]:
            frame = {"module": "shop.views", "function": "<lambda>", "context_line": line}
            return {
                "platform": "python",
                "exception": {
                    "values": [
                        {
                            "type": "ValueError",
                            "value": "v",
                            "stacktrace": {"frames": [{**frame, "in_app": True}]},
                        }
                    ]
                },
            }

        assert fingerprint(event("raise_a()")) != fingerprint(event("raise_b()"))

    def test_exception_without_stack_groups_by_value(self) -> None:
        """No stack: type and value (numbers made alike) group, so two errors do not merge."""
        a = {"exception": {"values": [{"type": "Error", "value": "order 12 failed"}]}}
        b = {"exception": {"values": [{"type": "Error", "value": "order 99 failed"}]}}
        c = {"exception": {"values": [{"type": "Error", "value": "login failed"}]}}
        assert fingerprint(a) == fingerprint(b) != fingerprint(c)

    def test_custom_fingerprint_kept(self) -> None:
        """The SDK's fingerprint still wins over the stack."""
        a = js_event("Error", "x", [js_frame(ROUTE, "a")], fingerprint=["payments"])
        b = js_event("TypeError", "y", [js_frame(ROUTE, "b")], fingerprint=["payments"])
        assert fingerprint(a) == fingerprint(b)
        assert fingerprint_for([], "m", ["payments"]) == fingerprint(a)


def _project(store: Store) -> int:
    return ensure_projects(store, [ProjectSpec(name="web")])[0].id


class TestExistingIssues:
    def test_issues_made_by_the_legacy_config_keep_their_ids(self, store: Store) -> None:
        """An issue stored under the earlier config's fingerprint receives the same error
        sent now: no second issue, the count goes on."""
        pid = _project(store)
        payload = js_event("Error", "x", [js_frame(ROUTE, None, "boom();")])
        exceptions = payload["exception"]["values"]
        old = parse_event(payload, project_id=pid, received_at=NOW)
        legacy = ParsedEvent(
            **{**old.__dict__, "fingerprint": legacy_fingerprint_for(exceptions, "")}
        )
        assert legacy.fingerprint != old.fingerprint
        [issue_id] = write_batch(store, [legacy]).new_issues
        again = write_batch(store, [parse_event(payload, project_id=pid, received_at=NOW)])
        assert again.new_issues == []
        [listed] = issues.list_issues(store)
        assert listed["id"] == issue_id
        assert listed["count"] == 2

    def test_new_errors_get_new_issues(self, store: Store) -> None:
        """Errors that no issue has under either config make issues of their own."""
        pid = _project(store)
        events = [
            parse_event(
                js_event("Error", "x", [js_frame(ROUTE, None, f"throw fail{i}();")]),
                project_id=pid,
                received_at=NOW,
            )
            for i in range(3)
        ]
        assert len(write_batch(store, events).new_issues) == 3

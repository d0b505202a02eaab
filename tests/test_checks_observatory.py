"""The security-header grade follows the MDN HTTP Observatory's published algorithm."""

from __future__ import annotations

import pytest

from controltower.checks.live.observatory import (
    Response,
    Scan,
    at_least,
    grade,
    grade_for,
    parse_csp,
    sf_token,
)

EXAMPLE_HEADERS = {
    "strict-transport-security": "max-age=63072000; includeSubDomains; preload",
    "content-security-policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'"
    ),
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "strict-origin-when-cross-origin",
    "permissions-policy": "camera=(), microphone=(), geolocation=()",
    "cross-origin-resource-policy": "same-origin",
}
BASICS = {
    "strict-transport-security": "max-age=63072000",
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
}
HTML = "<!doctype html><html><head><title>t</title></head><body>hi</body></html>"
URL = "https://example.com/"


def site(
    headers: dict[str, str] | list[tuple[str, str]],
    *,
    body: str = HTML,
    redirect: bool = True,
    https: bool = True,
    cors: list[tuple[str, str]] | None = None,
) -> Scan:
    pairs = list(headers.items()) if isinstance(headers, dict) else list(headers)
    pairs.append(("content-type", "text/html; charset=utf-8"))
    if not https:
        auto = Response("http://example.com/", 200, pairs, body)
        return Scan(
            auto=auto,
            http=auto,
            http_route=[auto],
            https=None,
            cors=Response(auto.url, 200, cors or []),
        )
    auto = Response(URL, 200, pairs, body)
    route = (
        [Response("http://example.com/", 301, [("location", URL)]), auto]
        if redirect
        else [Response("http://example.com/", 200, pairs, body)]
    )
    return Scan(
        auto=auto, http=route[-1], http_route=route, https=auto, cors=Response(URL, 200, cors or [])
    )


SESSION = [*EXAMPLE_HEADERS.items(), ("set-cookie", "sessionid=abc; Path=/")]
GOOD_COOKIES = [
    *EXAMPLE_HEADERS.items(),
    ("set-cookie", "sessionid=abc; Path=/; Secure; HttpOnly; SameSite=Lax"),
]
UNIVERSAL_CORS = [
    ("access-control-allow-origin", "https://http-observatory.security.mozilla.org"),
    ("access-control-allow-credentials", "true"),
]

# (name, scan, score, grade): expected values worked out from the published modifiers
# (charts.js), the bonus rule (scanner/index.js) and the grade chart, and cross-checked by
# feeding the same responses to the released @mdn/mdn-http-observatory 1.4.8 analyzer.
TABLE = [
    ("nothing set", site({}), 30, "D"),
    ("nothing set, no redirect", site({}, redirect=False), 10, "F"),
    ("example app headers", site(EXAMPLE_HEADERS), 125, "A+"),
    (
        "example app headers without the http redirect",
        site(EXAMPLE_HEADERS, redirect=False),
        80,
        "B+",
    ),
    ("example app headers on a site without https", site(EXAMPLE_HEADERS, https=False), 60, "C+"),
    (
        "unsafe-inline scripts",
        site(
            {
                **BASICS,
                "content-security-policy": "default-src 'self'; script-src 'self' 'unsafe-inline'",
            }
        ),
        80,
        "B+",
    ),
    (
        "unsafe-eval scripts",
        site(
            {
                **BASICS,
                "content-security-policy": "default-src 'self'; script-src 'self' 'unsafe-eval'",
            }
        ),
        90,
        "A",
    ),
    (
        "nonce removes unsafe-inline",
        site(
            {
                **BASICS,
                "content-security-policy": "default-src 'self'; script-src 'nonce-abc' 'unsafe-inline'; object-src 'none'",
            }
        ),
        105,
        "A+",
    ),
    (
        "default-src 'none'",
        site(
            {
                **BASICS,
                "content-security-policy": "default-src 'none'",
                "referrer-policy": "no-referrer",
            }
        ),
        115,
        "A+",
    ),
    (
        "report-only CSP",
        site({**BASICS, "content-security-policy-report-only": "default-src 'self'"}),
        75,
        "B",
    ),
    (
        "duplicate CSP directive is invalid",
        site({**BASICS, "content-security-policy": "default-src 'self'; default-src 'none'"}),
        75,
        "B",
    ),
    (
        "strict-dynamic without a nonce is invalid",
        site(
            {**BASICS, "content-security-policy": "script-src 'strict-dynamic'; object-src 'none'"}
        ),
        75,
        "B",
    ),
    (
        "style-src unsafe-inline only",
        site(
            {
                **BASICS,
                "content-security-policy": "default-src 'self'; style-src 'self' 'unsafe-inline'",
            }
        ),
        100,
        "A+",
    ),
    (
        "http: image source on https",
        site({**BASICS, "content-security-policy": "default-src 'self'; img-src http:"}),
        90,
        "A",
    ),
    ("session cookie without Secure or HttpOnly", site(SESSION), 70, "B"),
    ("session cookie done right", site(GOOD_COOKIES), 130, "A+"),
    (
        "SameSite=None on an insecure cookie",
        site([*EXAMPLE_HEADERS.items(), ("set-cookie", "pref=1; SameSite=None")]),
        80,
        "B+",
    ),
    (
        "invalid SameSite",
        site([*EXAMPLE_HEADERS.items(), ("set-cookie", "pref=1; Secure; SameSite=Sometimes")]),
        80,
        "B+",
    ),
    (
        "CORS reflecting origin with credentials",
        site(EXAMPLE_HEADERS, cors=UNIVERSAL_CORS),
        50,
        "C",
    ),
    ("CORS public", site(EXAMPLE_HEADERS, cors=[("access-control-allow-origin", "*")]), 125, "A+"),
    (
        "short HSTS keeps the bonus at 90",
        site({**EXAMPLE_HEADERS, "strict-transport-security": "max-age=300"}),
        115,
        "A+",
    ),
    (
        "HSTS without max-age",
        site({**EXAMPLE_HEADERS, "strict-transport-security": "includeSubDomains"}),
        80,
        "B+",
    ),
    (
        "no frame protection",
        site(
            {
                "strict-transport-security": "max-age=63072000",
                "x-content-type-options": "nosniff",
                "content-security-policy": "default-src 'self'",
            }
        ),
        80,
        "B+",
    ),
    (
        "XFO ALLOW-FROM",
        site(
            {
                **BASICS,
                "x-frame-options": "ALLOW-FROM https://a.example",
                "content-security-policy": "default-src 'self'",
            }
        ),
        105,
        "A+",
    ),
    ("unsafe referrer", site({**EXAMPLE_HEADERS, "referrer-policy": "unsafe-url"}), 115, "A+"),
    (
        "invalid X-Content-Type-Options",
        site({**EXAMPLE_HEADERS, "x-content-type-options": "sniff"}),
        120,
        "A+",
    ),
    (
        "CORP invalid",
        site({**EXAMPLE_HEADERS, "cross-origin-resource-policy": "everyone"}),
        110,
        "A+",
    ),
    (
        "COOP and COEP",
        site(
            {
                **EXAMPLE_HEADERS,
                "cross-origin-opener-policy": "same-origin",
                "cross-origin-embedder-policy": "require-corp",
            }
        ),
        125,
        "A+",
    ),
    ("COOP invalid", site({**EXAMPLE_HEADERS, "cross-origin-opener-policy": "nobody"}), 125, "A+"),
    (
        "external script over https without SRI",
        site(
            EXAMPLE_HEADERS, body='<html><script src="https://cdn.other.net/x.js"></script></html>'
        ),
        120,
        "A+",
    ),
    (
        "external script over http without SRI",
        site(
            EXAMPLE_HEADERS, body='<html><script src="http://cdn.other.net/x.js"></script></html>'
        ),
        50,
        "C",
    ),
    (
        "external script with SRI",
        site(
            EXAMPLE_HEADERS,
            body='<html><script src="https://cdn.other.net/x.js" integrity="sha384-x"></script></html>',
        ),
        130,
        "A+",
    ),
    (
        "CSP in a meta tag",
        site(
            BASICS,
            body="<html><head><meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'self'; object-src 'none'\"></head></html>",
        ),
        105,
        "A+",
    ),
    (
        "everything wrong floors at 0",
        site([("set-cookie", "sessionid=1")], redirect=False, cors=UNIVERSAL_CORS),
        0,
        "F",
    ),
]


class TestGradeTable:
    @pytest.mark.parametrize(
        ("name", "scan", "score", "letter"), TABLE, ids=[row[0] for row in TABLE]
    )
    def test_score_and_grade(self, name: str, scan: Scan, score: int, letter: str) -> None:
        """Each header set gets the score and grade the published algorithm gives."""
        graded = grade(scan)
        assert (graded.score, graded.grade) == (score, letter), [
            t for t in graded.tests if t.modifier
        ]

    def test_example_app_results(self) -> None:
        """The example app's headers earn the expected result in every test."""
        graded = grade(site(EXAMPLE_HEADERS))
        assert graded.result("content-security-policy").result == "csp-implemented-with-no-unsafe"
        assert graded.result("x-frame-options").result == "x-frame-options-implemented-via-csp"
        assert graded.result("cross-origin-resource-policy").modifier == 10
        assert all(t.passed for t in graded.tests)
        assert [t.name for t in graded.extra] == [
            "cross-origin-opener-policy",
            "cross-origin-embedder-policy",
        ]

    def test_isolation_headers_reported_not_scored(self) -> None:
        """COOP and COEP are reported beside the grade; an invalid value does not change the score."""
        graded = grade(site({**EXAMPLE_HEADERS, "cross-origin-opener-policy": "same-origin"}))
        assert graded.extra[0].result == "coop-implemented-with-same-origin"
        assert graded.score == grade(site(EXAMPLE_HEADERS)).score


class TestGradeChart:
    @pytest.mark.parametrize(
        ("score", "letter"),
        [(145, "A+"), (100, "A+"), (99, "A"), (90, "A"), (89, "A-"), (85, "A-"), (84, "B+"), (80, "B+"),
         (79, "B"), (70, "B"), (65, "B-"), (60, "C+"), (55, "C"), (50, "C"), (45, "C-"), (40, "D+"),
         (35, "D"), (30, "D"), (25, "D-"), (24, "F"), (0, "F"), (-20, "F")],
    )  # fmt: skip
    def test_chart(self, score: int, letter: str) -> None:
        """Scores round down to a multiple of 5 and read the Observatory's chart."""
        assert grade_for(score) == letter

    def test_at_least(self) -> None:
        """Grades compare in chart order."""
        assert at_least("A+", "B") and at_least("B", "B") and not at_least("B-", "B")


class TestCspParser:
    def test_sources_lowercased_and_empty_src_is_none(self) -> None:
        """Directives and sources are case-insensitive; an empty source list means 'none'."""
        assert parse_csp(["Default-Src 'SELF'; img-src"]) == {
            "default-src": {"'self'"},
            "img-src": {"'none'"},
        }

    def test_two_policies_intersect(self) -> None:
        """With two policies, a source must appear in both to count."""
        csp = parse_csp(["script-src 'self' https://a.example", "script-src 'self'"])
        assert csp["script-src"] == {"'self'"}

    def test_report_uri_duplicates_allowed(self) -> None:
        """Duplicate report-uri is tolerated and flagged."""
        assert "_duplicates" in parse_csp(["default-src 'self'; report-uri /a; report-uri /b"])

    def test_structured_token(self) -> None:
        """COOP/COEP values are RFC 8941 tokens; lists and strings are not."""
        assert sf_token("same-origin") == "same-origin"
        assert sf_token('same-origin; report-to="x"') == "same-origin"
        assert sf_token("same-origin, same-origin") is None
        assert sf_token('"same-origin"') is None

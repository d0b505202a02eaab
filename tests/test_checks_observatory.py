"""The security-header grade follows the MDN HTTP Observatory's published algorithm."""

from __future__ import annotations

import json
import os
import random
import subprocess
from pathlib import Path

import pytest

from controltower.checks.live.observatory import (
    CORS_ORIGIN,
    DUPLICATES,
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
        "HSTS max-age that is not a number parses as NaN and passes",
        site({**EXAMPLE_HEADERS, "strict-transport-security": "max-age=abc"}),
        125,
        "A+",
    ),
    (
        "two HSTS headers are one invalid value",
        site([*EXAMPLE_HEADERS.items(), ("strict-transport-security", "max-age=300")]),
        80,
        "B+",
    ),
    (
        "two CSP headers are read as one policy",
        site(
            [
                *BASICS.items(),
                ("content-security-policy", "default-src 'self'"),
                ("content-security-policy", "default-src 'none'"),
            ]
        ),
        105,
        "A+",
    ),
    (
        "meta name=referrer counts, meta http-equiv Referrer-Policy does not",
        site(
            {**BASICS, "content-security-policy": "default-src 'self'"},
            body='<html><head><meta name="referrer" content="unsafe-url">'
            '<meta http-equiv="Referrer-Policy" content="no-referrer"></head></html>',
        ),
        100,
        "A+",
    ),
    (
        "page without content-type: no SRI penalty, meta CSP ignored",
        Scan(
            auto=Response(
                URL,
                200,
                list(BASICS.items()),
                '<html><head><meta http-equiv="Content-Security-Policy" content="default-src \'self\'">'
                '</head><script src="http://cdn.other.net/x.js"></script></html>',
            ),
            http=Response(URL),
            http_route=[Response("http://example.com/", 301, [("location", URL)]), Response(URL)],
            https=Response(URL, 200, list(BASICS.items())),
            cors=Response(URL),
        ),
        75,
        "B",
    ),
    (
        "cookie for another domain is refused and not graded",
        site([*EXAMPLE_HEADERS.items(), ("set-cookie", "sessionid=1; Domain=other.net")]),
        125,
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
        parsed = parse_csp(["default-src 'self'; report-uri /a; report-uri /b"])
        assert parsed[DUPLICATES] == {"report-uri"} and parsed["report-uri"] == {"/b"}

    def test_structured_token(self) -> None:
        """COOP/COEP values are RFC 8941 tokens; lists and strings are not."""
        assert sf_token("same-origin") == "same-origin"
        assert sf_token('same-origin; report-to="x"') == "same-origin"
        assert sf_token("same-origin, same-origin") is None
        assert sf_token('"same-origin"') is None


class TestPublicLists:
    def test_preloaded_host_gets_the_preload_results(self) -> None:
        """A preloaded host gets the HSTS preload result where an identical site off the list
        scores a missing header (-20); a site whose every redirect is preloaded gets that result."""
        from controltower.checks.live.publicsuffix import preloaded

        assert preloaded("github.com") and preloaded("docs.github.com") and preloaded("x.app")
        assert not preloaded("www.example.com") and not preloaded("127.0.0.1")

        def site(host: str) -> Scan:
            auto = Response(f"https://{host}/", 200, [("content-type", "text/html")], HTML)
            route = [Response(f"http://{host}/", 301), auto]
            return Scan(auto=auto, http=auto, http_route=route, https=auto)

        on, off = grade(site("github.com")), grade(site("www.example.com"))
        results = {t.name: t.result for t in on.tests}
        assert results["strict-transport-security"] == "hsts-preloaded"
        assert results["redirection"] == "redirection-all-redirects-preloaded"
        off_results = {t.name: t.result for t in off.tests}
        assert off_results["strict-transport-security"] == "hsts-not-implemented"
        assert on.score >= off.score + 20

    def test_registrable_domains_follow_the_public_suffix_list(self) -> None:
        """eTLD+1 under the Public Suffix List, offline; unknown TLDs by the * rule; no IPs."""
        from controltower.checks.live.publicsuffix import registrable_domain

        assert registrable_domain("a.b.example.co.uk") == "example.co.uk"
        assert registrable_domain("www.example.com.au") == "example.com.au"
        assert registrable_domain("shop.example.internal") == "example.internal"
        assert registrable_domain("co.uk") is None and registrable_domain("::1") is None


# -- cross-check against the released package ------------------------------------------

OBSERVATORY_PACKAGE = os.environ.get("TOWER_OBSERVATORY_PACKAGE", "")
HARNESS = Path(__file__).parent / "fixtures" / "observatory" / "crosscheck.mjs"
CSP_POOL = [
    "default-src 'self'", "default-src 'none'", "script-src 'self' 'unsafe-inline'",
    "script-src 'unsafe-eval'; object-src 'none'", "default-src 'self'; img-src http:",
    "default-src https:", "script-src 'nonce-x' 'strict-dynamic' https:; object-src 'none'",
    "script-src 'strict-dynamic'", "default-src 'self'; default-src 'none'",
    "default-src 'self'; report-uri /a; report-uri /b", "style-src 'unsafe-inline'; default-src 'self'",
    "frame-ancestors 'none'; default-src 'self'", "img", "default-src *", "default-src 'self' data:",
    "script-src http://cdn.x; default-src 'self'", "default-src 'self'; object-src *", "DEFAULT-SRC 'SELF'",
    "default-src 'self' 'sha256-abc' 'unsafe-inline'", "default-src; script-src 'self'",
    "upgrade-insecure-requests", "script-src https://a.example.com/js/ https://a.example.com/js/app.js; object-src 'none'",
    "default-src 'self' ftp://x; img-src ftp://y", "media-src http://m; default-src 'self'",
]  # fmt: skip
HSTS_POOL = [
    "max-age=63072000",
    "max-age=300",
    "max-age=abc",
    "includeSubDomains",
    "max-age=",
    "max-age=-5",
]
COOKIE_POOL = [
    "sessionid=1", "sessionid=1; Secure; HttpOnly", "sessionid=1; Secure; HttpOnly; SameSite=Lax",
    "csrftoken=1; Secure", "pref=1; SameSite=None", "pref=1; Secure; SameSite=Bogus", "login=1; Secure",
    "heroku-session-affinity=1", "x=1; SameSite", "__Host-s=1; Path=/", "__Secure-a=1",
    "sessionid=1; Domain=example.com; Secure; HttpOnly", "sessionid=1; Domain=other.net", "=nokey",
    "a=1; SameSite=Lax=x", "sess=1; Path=/x; Secure; HttpOnly; SameSite=Strict",
]  # fmt: skip
BODY_POOL = [
    HTML, "", '<html><script src="/a.js"></script></html>',
    '<html><script src="https://cdn.other.net/a.js"></script></html>',
    '<html><script src="http://cdn.other.net/a.js"></script></html>',
    '<html><script src="https://cdn.other.net/a.js" integrity="sha384-x"></script></html>',
    '<html><script src="//cdn.other.net/a.js"></script></html>',
    '<html><script src="https://static.example.com/a.js"></script></html>',
    "<html><head><meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'self'\"></head></html>",
    '<html><head><meta name="referrer" content="unsafe-url"></head></html>',
    '<html><head><meta http-equiv="Referrer-Policy" content="no-referrer"></head></html>',
    '<html><head><base href="https://cdn.other.net/"></head><script src="a.js"></script></html>',
]  # fmt: skip


def random_scan(rng: random.Random, host: str = "www.example.com") -> Scan:
    """A random site drawn from header values that exercise every branch of the analyzer."""
    headers: list[tuple[str, str]] = []
    for name, pool, p in [
        ("content-security-policy", CSP_POOL, 0.6),
        ("strict-transport-security", HSTS_POOL, 0.6),
        ("x-frame-options", ["DENY", "SAMEORIGIN", "ALLOW-FROM https://a", "nope"], 0.5),
        ("x-content-type-options", ["nosniff", "sniff", "NOSNIFF"], 0.6),
        ("referrer-policy", ["no-referrer", "unsafe-url", "bogus", "origin, strict-origin"], 0.4),
        ("cross-origin-resource-policy", ["same-origin", "same-site", "cross-origin", "x"], 0.4),
        ("content-security-policy-report-only", ["default-src 'self'"], 0.15),
        ("content-security-policy", CSP_POOL, 0.1),
    ]:
        if rng.random() < p:
            headers.append((name, rng.choice(pool)))
    headers += [("set-cookie", rng.choice(COOKIE_POOL)) for _ in range(rng.choice([0, 0, 1, 2]))]
    content_type = rng.choice(["text/html; charset=utf-8", "text/html ;x", "application/json", ""])
    if content_type:
        headers.append(("content-type", content_type))
    body = rng.choice(BODY_POOL)
    if rng.random() < 0.2:
        auto = Response(f"http://{host}/", 200, headers, body)
        first = Response(f"http://{host}/", 302, [("set-cookie", rng.choice(COOKIE_POOL))])
        scan = Scan(auto=auto, http=auto, http_route=[first, auto], session=[first, auto])
    else:
        auto = Response(f"https://{host}/", 200, headers, body, rng.random() < 0.95)
        kind = rng.choice(["redirect", "none", "offhost", "http first"])
        route = {
            "redirect": [Response(f"http://{host}/", 301), auto],
            "none": [Response(f"http://{host}/", 200, headers, body)],
            "offhost": [Response(f"http://{host}/", 301), Response("https://other.example.com/")],
            "http first": [
                Response(f"http://{host}/", 301),
                Response(f"http://{host}/x", 301),
                auto,
            ],
        }[kind]
        scan = Scan(auto=auto, http=route[-1], http_route=route, https=auto)
    cors = rng.choice(
        [[], [], [("access-control-allow-origin", "*")], [("access-control-allow-origin", CORS_ORIGIN), ("access-control-allow-credentials", "true")]]
    )  # fmt: skip
    scan.cors = Response(auto.url, 200, cors)
    return scan


def as_case(scan: Scan) -> dict[str, object]:
    def response(r: Response | None) -> dict[str, object] | None:
        if r is None:
            return None
        return {
            "url": r.url,
            "status": r.status,
            "headers": r.headers,
            "body": r.body,
            "verified": r.verified,
        }

    route = scan.http_route or ([scan.http] if scan.http else [])
    return {
        "hostname": scan.hostname,
        "sessionUrl": scan.session_url,
        "auto": response(scan.auto),
        "http": response(scan.http),
        "https": response(scan.https),
        "httpRedirects": [{"url": r.url, "status": r.status} for r in route],
        "cors": response(scan.cors),
        "corsOrigin": scan.cors_origin,
        "cookieResponses": [
            {"url": r.url, "setCookies": r.all("set-cookie")} for r in scan.session or []
        ],
    }


@pytest.mark.skipif(
    not OBSERVATORY_PACKAGE,
    reason="set TOWER_OBSERVATORY_PACKAGE (tests/fixtures/observatory/README.md)",
)
class TestReleasedObservatory:
    def grade_with_package(self, scans: list[Scan], tmp_path: Path) -> list[dict[str, object]]:
        (tmp_path / "node_modules").symlink_to(Path(OBSERVATORY_PACKAGE) / "node_modules")
        script = tmp_path / "crosscheck.mjs"
        script.write_text(HARNESS.read_text())
        done = subprocess.run(
            ["node", str(script)],
            input=json.dumps([as_case(s) for s in scans]),
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        results: list[dict[str, object]] = json.loads(done.stdout)
        return results

    def test_table_matches_the_package(self, tmp_path: Path) -> None:
        """Every row of the grade table gets the same results, score and grade from the package."""
        results = self.grade_with_package([row[1] for row in TABLE], tmp_path)
        for (name, scan, score, letter), theirs in zip(TABLE, results, strict=True):
            ours = grade(scan)
            assert {t.name: t.result for t in ours.tests} == theirs["tests"], name
            assert (score, letter) == (theirs["score"], theirs["grade"]) == (ours.score, ours.grade)

    def test_preloaded_hosts_match_the_package(self, tmp_path: Path) -> None:
        """Hosts on the HSTS preload list (whole, through a parent, through a preloaded gTLD)
        and hosts off it, under public suffixes of one and two labels, get the same results,
        score and grade from the package graded with the same list."""
        rng = random.Random(20261203)
        hosts = [
            "github.com", "docs.github.com", "accounts.google.com", "www.paypal.com", "shop.app",
            "www.example.com", "www.example.co.uk", "cdn.example.co.uk", "foo.internal",
        ]  # fmt: skip
        scans = [random_scan(rng, host) for host in hosts for _ in range(40)]
        results = self.grade_with_package(scans, tmp_path)
        preloaded_seen = 0
        for scan, theirs in zip(scans, results, strict=True):
            ours = grade(scan)
            assert {t.name: t.result for t in ours.tests} == theirs["tests"], scan.hostname
            assert (ours.score, ours.grade) == (theirs["score"], theirs["grade"]), scan.hostname
            preloaded_seen += theirs["tests"]["strict-transport-security"] == "hsts-preloaded"
        assert preloaded_seen > 100

    def test_random_sites_match_the_package(self, tmp_path: Path) -> None:
        """Two thousand random header sets get the same result in every test as the package gives."""
        rng = random.Random(20261201)
        scans = [random_scan(rng) for _ in range(2000)]
        results = self.grade_with_package(scans, tmp_path)
        mismatches = []
        for scan, theirs in zip(scans, results, strict=True):
            ours = grade(scan)
            if {t.name: t.result for t in ours.tests} != theirs["tests"] or ours.score != theirs[
                "score"
            ]:
                mismatches.append((scan.auto.headers, scan.auto.body, theirs))
        assert mismatches == []

"""Security headers graded the way the MDN HTTP Observatory grades them.

A faithful port of the published algorithm (the released
@mdn/mdn-http-observatory 1.4.8: src/analyzer/tests/*.js, src/grader/charts.js,
src/scanner/index.js), over its ten tests: CSP, cookies, CORS, redirection,
Referrer-Policy, HSTS, SRI, X-Content-Type-Options, X-Frame-Options and CORP.
Cross-Origin-Opener/Embedder-Policy (scored only by unreleased versions) are
reported beside the grade, not in it. Each test
picks one result, each result has a modifier; the score starts at 100, takes
every negative modifier, and takes the positive ones (bonus) only when the
penalty-only score is at least 90. The grade is read from the chart in steps
of 5. Sites on the HSTS preload list get the preload results there; here no
host is treated as preloaded.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from html.parser import HTMLParser
from urllib.parse import urlsplit

CORS_ORIGIN = "https://http-observatory.security.mozilla.org"
SIX_MONTHS = 15_552_000
EXTRA_CREDIT_MINIMUM = 90
HTML_TYPES = {"text/html", "application/xhtml+xml"}

MODIFIERS: dict[str, int] = {
    "csp-implemented-with-no-unsafe-default-src-none": 10,
    "csp-implemented-with-no-unsafe": 5,
    "csp-implemented-with-unsafe-inline-in-style-src-only": 0,
    "csp-implemented-with-insecure-scheme-in-passive-content-only": -10,
    "csp-implemented-with-unsafe-eval": -10,
    "csp-implemented-with-unsafe-inline": -20,
    "csp-implemented-with-insecure-scheme": -20,
    "csp-header-invalid": -25,
    "csp-not-implemented": -25,
    "csp-not-implemented-but-reporting-enabled": -25,
    "csp-implemented-but-duplicate-directives": 0,
    "cookies-secure-with-httponly-sessions-and-samesite": 5,
    "cookies-secure-with-httponly-sessions": 0,
    "cookies-not-found": 0,
    "cookies-without-secure-flag-but-protected-by-hsts": -5,
    "cookies-session-without-secure-flag-but-protected-by-hsts": -10,
    "cookies-without-secure-flag": -20,
    "cookies-samesite-flag-invalid": -20,
    "cookies-anticsrf-without-samesite-flag": -20,
    "cookies-session-without-httponly-flag": -30,
    "cookies-session-without-secure-flag": -40,
    "cross-origin-resource-sharing-not-implemented": 0,
    "cross-origin-resource-sharing-implemented-with-public-access": 0,
    "cross-origin-resource-sharing-implemented-with-restricted-access": 0,
    "cross-origin-resource-sharing-implemented-with-universal-access": -50,
    "redirection-all-redirects-preloaded": 0,
    "redirection-to-https": 0,
    "redirection-not-needed-no-http": 0,
    "redirection-off-host-from-http": -5,
    "redirection-not-to-https-on-initial-redirection": -10,
    "redirection-not-to-https": -20,
    "redirection-missing": -20,
    "redirection-invalid-cert": -20,
    "referrer-policy-private": 5,
    "referrer-policy-not-implemented": 0,
    "referrer-policy-unsafe": -5,
    "referrer-policy-header-invalid": -5,
    "hsts-preloaded": 5,
    "hsts-implemented-max-age-at-least-six-months": 0,
    "hsts-implemented-max-age-less-than-six-months": -10,
    "hsts-not-implemented": -20,
    "hsts-header-invalid": -20,
    "hsts-not-implemented-no-https": -20,
    "hsts-invalid-cert": -20,
    "sri-implemented-and-all-scripts-loaded-securely": 5,
    "sri-implemented-and-external-scripts-loaded-securely": 5,
    "sri-not-implemented-response-not-html": 0,
    "sri-not-implemented-but-no-scripts-loaded": 0,
    "sri-not-implemented-but-all-scripts-loaded-from-secure-origin": 0,
    "sri-not-implemented-but-external-scripts-loaded-securely": -5,
    "sri-implemented-but-external-scripts-not-loaded-securely": -20,
    "sri-not-implemented-and-external-scripts-not-loaded-securely": -50,
    "x-content-type-options-nosniff": 0,
    "x-content-type-options-not-implemented": -5,
    "x-content-type-options-header-invalid": -5,
    "x-frame-options-implemented-via-csp": 5,
    "x-frame-options-sameorigin-or-deny": 0,
    "x-frame-options-allow-from-origin": 0,
    "x-frame-options-not-implemented": -20,
    "x-frame-options-header-invalid": -20,
    "corp-header-invalid": -5,
    "corp-implemented-with-cross-origin": 0,
    "corp-implemented-with-same-origin": 10,
    "corp-implemented-with-same-site": 10,
    "corp-not-implemented": 0,
    "coep-implemented-with-require-corp": 10,
    "coep-implemented-with-credentialless": 10,
    "coep-implemented-with-unsafe-none": 0,
    "coep-not-implemented": 0,
    "coep-header-invalid": -5,
    "coop-implemented-with-same-origin": 10,
    "coop-implemented-with-same-origin-allow-popups": 10,
    "coop-implemented-with-noopener-allow-popups": 10,
    "coop-implemented-with-unsafe-none": 0,
    "coop-not-implemented": 0,
    "coop-header-invalid": -5,
    "html-not-parseable": -20,
}

GRADES = [
    (100, "A+"), (90, "A"), (85, "A-"), (80, "B+"), (70, "B"), (65, "B-"), (60, "C+"),
    (50, "C"), (45, "C-"), (40, "D+"), (30, "D"), (25, "D-"), (0, "F"),
]  # fmt: skip
GRADE_ORDER = ["A+", "A", "A-", "B+", "B", "B-", "C+", "C", "C-", "D+", "D", "D-", "F"]


@dataclass
class Response:
    """One HTTP response; ``headers`` keeps repeats (set-cookie) as separate pairs."""

    url: str
    status: int = 200
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: str = ""
    verified: bool = True

    def all(self, name: str) -> list[str]:
        return [v for k, v in self.headers if k.lower() == name.lower()]

    def get(self, name: str) -> str | None:
        """Repeated headers joined with ", ", as HTTP clients combine them."""
        values = self.all(name)
        return ", ".join(values) if values else None

    @property
    def mime(self) -> str:
        return (self.get("content-type") or "").split(";", 1)[0].strip().lower()


@dataclass
class Scan:
    """What the Observatory retrieves: the site (``auto``), http and https, the CORS preflight."""

    auto: Response
    http: Response | None = None
    http_route: list[Response] = field(default_factory=list)
    https: Response | None = None
    cors: Response | None = None
    cors_origin: str = CORS_ORIGIN


@dataclass(frozen=True)
class TestResult:
    name: str
    result: str
    passed: bool
    modifier: int


@dataclass(frozen=True)
class Grade:
    score: int
    grade: str
    tests: tuple[TestResult, ...]
    extra: tuple[TestResult, ...] = ()

    def result(self, name: str) -> TestResult:
        return next(t for t in self.tests if t.name == name)


def grade_for(score: int) -> str:
    score = max(score, 0)
    key = min(score - score % 5, 100)
    return next(g for s, g in GRADES if key >= s)


def at_least(grade: str, minimum: str) -> bool:
    return GRADE_ORDER.index(grade) <= GRADE_ORDER.index(minimum)


class _Html(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.scripts: list[dict[str, str | None]] = []
        self.equiv: dict[str, list[str]] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = {k.lower(): v for k, v in attrs}
        if tag == "script":
            self.scripts.append(found)
        elif tag == "meta" and found.get("http-equiv") and found.get("content") is not None:
            self.equiv.setdefault(str(found["http-equiv"]).lower(), []).append(
                str(found["content"])
            )


def _html(response: Response) -> _Html:
    parser = _Html()
    if response.mime in HTML_TYPES or not response.mime:
        parser.feed(response.body)
    return parser


# -- CSP -----------------------------------------------------------------

BROAD = {"ftp:", "http:", "https:", "*", "http://*", "http://*.*", "https://*", "https://*.*"}
UNSAFE_INLINE = {"'unsafe-inline'", "data:"}
NONCES = ("'sha256-", "'sha384-", "'sha512-", "'nonce-")
ALLOWED_DUPLICATES = {"report-uri", "report-to"}
DUPLICATES = "_duplicates"


class CspInvalid(ValueError):
    pass


def _path_part_match(a: str, b: str) -> bool:
    if not a:
        return True
    if a == "/" and not b:
        return True
    exact = not a.endswith("/")
    pa, pb = a.split("/"), b.split("/")
    if len(pa) > len(pb) or (exact and len(pa) != len(pb)):
        return False
    if not exact:
        pa.pop()
    return all(x == pb[i] for i, x in enumerate(pa))


def parse_csp(policies: list[str]) -> dict[str, set[str]]:
    """The Observatory's CSP parser: several policies intersect; duplicates are invalid."""
    clean = [re.sub(r"[\r\n]", "", p).strip() for p in policies]
    if not clean:
        return {}
    for policy in clean:
        if len(policy) < len("img-src") - 1:
            raise CspInvalid(policy)
    csp: dict[str, list[list[object]]] = {}
    duplicates: set[str] = set()
    for index, policy in enumerate(clean):
        seen: set[str] = set()
        for entry in policy.split(";"):
            parts = entry.strip().split()
            if not parts:
                continue
            directive = parts[0].lower()
            if directive in seen:
                if directive in ALLOWED_DUPLICATES:
                    duplicates.add(directive)
                else:
                    raise CspInvalid(f"duplicate directive {directive}")
            seen.add(directive)
            keep = index == 0
            values: list[list[object]] = [[v.strip().lower(), index, keep] for v in parts[1:]]
            if not values and directive.endswith("-src"):
                values = [["'none'", index, keep]]
            combined = values if index == 0 else [*csp.get(directive, []), *values]
            combined.sort(key=lambda s: str(s[0]))
            for i in range(1, len(combined)):
                source, previous = combined[i], combined[i - 1]
                if source[1] == previous[1] and str(source[0]).startswith(str(previous[0])):
                    source[2] = False
                if source[1] != previous[1] and _path_part_match(str(previous[0]), str(source[0])):
                    source[2] = True
            csp[directive] = [s for s in combined if s[2]]
            if index == 0 and len(policies) > 1:
                for s in csp[directive]:
                    s[2] = False
    final = {d: ({str(s[0]) for s in sources} or {"'none'"}) for d, sources in csp.items()}
    if duplicates:
        final[DUPLICATES] = duplicates
    return final


def _split_policies(values: Iterable[str]) -> list[str]:
    return [p.strip() for v in values for p in v.split(",")]


def csp_test(scan: Scan) -> tuple[str, dict[str, set[str]] | None]:
    response = scan.auto
    header = _split_policies(
        response.all("content-security-policy")[:1]
        and [response.get("content-security-policy") or ""]
    )
    meta = _split_policies(_html(response).equiv.get("content-security-policy", []))
    try:
        csp = parse_csp(header + meta)
    except CspInvalid:
        return "csp-header-invalid", None
    try:
        header_only = parse_csp(header)
    except CspInvalid:
        header_only = {}
    try:
        meta_only = parse_csp(meta)
        for directive in ("frame-ancestors", "report-uri", "sandbox"):
            meta_only.pop(directive, None)
    except CspInvalid:
        meta_only = {}
    if len(header_only) + len(meta_only) == 0:
        if response.get("content-security-policy-report-only"):
            return "csp-not-implemented-but-reporting-enabled", None
        return "csp-not-implemented", None

    result: str | None = None
    sets = {d: set(v) for d, v in csp.items()}  # shared objects, as the original aliases them
    script_src = sets.get("script-src") or sets.get("default-src") or {"*"}
    style_src = sets.get("style-src") or sets.get("default-src") or {"*"}
    object_src = sets.get("object-src") or sets.get("default-src") or {"*"}
    for sources in (script_src, style_src):
        if any(s.startswith(NONCES) for s in sources):
            sources.discard("'unsafe-inline'")
    if any(s.startswith(NONCES) for s in script_src) and "'strict-dynamic'" in script_src:
        for source in list(script_src):
            if any(source.startswith(b) for b in BROAD) or source in ("'self'", "'unsafe-inline'"):
                script_src.discard(source)
    elif "'strict-dynamic'" in script_src:
        result = "csp-header-invalid"
    https = urlsplit(response.url).scheme == "https"
    active = [
        s for d, v in sets.items() if d not in ("img-src", "media-src", "script-src") for s in v
    ]
    active += list(script_src)
    passive = [
        s
        for d in ("img-src", "media-src")
        for s in (sets.get(d) or sets.get("default-src") or set())
    ]

    def first(candidate: str) -> None:
        nonlocal result
        if result is None:
            result = candidate

    if script_src & (BROAD | UNSAFE_INLINE) or object_src & BROAD:
        first("csp-implemented-with-unsafe-inline")
    if https and any(s.startswith(("http:", "ftp:")) for s in active):
        first("csp-implemented-with-insecure-scheme")
    if "'unsafe-eval'" in script_src | style_src:
        first("csp-implemented-with-unsafe-eval")
    if https and any(s.startswith(("http:", "ftp:")) for s in passive):
        first("csp-implemented-with-insecure-scheme-in-passive-content-only")
    if style_src & (BROAD | UNSAFE_INLINE):
        first("csp-implemented-with-unsafe-inline-in-style-src-only")
    if sets.get("default-src") == {"'none'"}:
        first("csp-implemented-with-no-unsafe-default-src-none")
    else:
        first("csp-implemented-with-no-unsafe")
    passing = {
        "csp-implemented-with-no-unsafe",
        "csp-implemented-with-no-unsafe-default-src-none",
        "csp-implemented-with-unsafe-inline-in-style-src-only",
        "csp-implemented-with-insecure-scheme-in-passive-content-only",
    }
    if result in passing and DUPLICATES in csp:
        result = "csp-implemented-but-duplicate-directives"
    return result or "csp-implemented-with-no-unsafe", {
        d: v for d, v in sets.items() if d != DUPLICATES
    }


# -- the other tests -----------------------------------------------------------


def hsts_test(scan: Scan) -> str:
    response = scan.https
    if response is None:
        return "hsts-not-implemented-no-https"
    if not response.verified:
        return "hsts-invalid-cert"
    header = response.get("strict-transport-security")
    if not header:
        return "hsts-not-implemented"
    data = header[:1024]
    if "," in data:
        return "hsts-header-invalid"
    max_age: int | None = None
    for parameter in (p.strip().lower() for p in data.split(";")):
        if parameter.startswith("max-age="):
            match = re.match(r"\s*[+-]?\d+", parameter[8:128])
            max_age = int(match.group(0)) if match else None
            if max_age is None:
                return "hsts-header-invalid"
    if max_age is None:
        return "hsts-header-invalid"
    return (
        "hsts-implemented-max-age-less-than-six-months"
        if max_age < SIX_MONTHS
        else "hsts-implemented-max-age-at-least-six-months"
    )


@dataclass
class _Cookie:
    name: str
    secure: bool
    http_only: bool
    same_site: str | None


def _cookies(header: str) -> _Cookie | None:
    parts = [p.strip() for p in header.split(";")]
    name, sep, _ = parts[0].partition("=")
    if not sep or not name.strip():
        return None
    attrs = {
        p.partition("=")[0].strip().lower(): p.partition("=")[2].strip() for p in parts[1:] if p
    }
    same = attrs.get("samesite")
    same_site = same.lower() if same and same.lower() in ("strict", "lax", "none") else None
    return _Cookie(name.strip(), "secure" in attrs, "httponly" in attrs, same_site)


def _invalid_samesite(raw: str) -> bool:
    for part in raw.strip().split(";"):
        key, _, value = part.strip().partition("=")
        if key.strip().lower() == "samesite" and (
            not value or value.strip().lower() not in ("lax", "strict", "none")
        ):
            return True
    return False


COOKIE_ORDER = [
    "cookies-without-secure-flag-but-protected-by-hsts",
    "cookies-without-secure-flag",
    "cookies-session-without-secure-flag-but-protected-by-hsts",
    "cookies-samesite-flag-invalid",
    "cookies-anticsrf-without-samesite-flag",
    "cookies-session-without-httponly-flag",
    "cookies-session-without-secure-flag",
]


def cookies_test(scan: Scan) -> str:
    result: str | None = None

    def worse(candidate: str) -> None:
        nonlocal result
        if result is None or COOKIE_ORDER.index(candidate) > COOKIE_ORDER.index(result):
            result = candidate

    hsts = hsts_test(scan) in ("hsts-implemented-max-age-at-least-six-months", "hsts-preloaded")
    for raw in scan.auto.all("set-cookie"):
        if _invalid_samesite(raw):
            worse("cookies-samesite-flag-invalid")
    jar: dict[str, _Cookie] = {}
    for response in [*scan.http_route, scan.auto]:
        for raw in response.all("set-cookie"):
            cookie = _cookies(raw)
            if cookie and cookie.name != "heroku-session-affinity":
                jar[cookie.name] = cookie
    if not jar:
        return "cookies-not-found"
    missing_same_site = False
    for cookie in jar.values():
        session = any(i in cookie.name.lower() for i in ("login", "sess"))
        anticsrf = "csrf" in cookie.name.lower()
        if not cookie.secure and cookie.same_site == "none":
            worse("cookies-samesite-flag-invalid")
        if not cookie.secure:
            worse(
                "cookies-without-secure-flag-but-protected-by-hsts"
                if hsts
                else "cookies-without-secure-flag"
            )
        if anticsrf and not cookie.same_site:
            worse("cookies-anticsrf-without-samesite-flag")
        if session and not cookie.secure:
            worse(
                "cookies-session-without-secure-flag-but-protected-by-hsts"
                if hsts
                else "cookies-session-without-secure-flag"
            )
        if session and not cookie.http_only:
            worse("cookies-session-without-httponly-flag")
        missing_same_site = missing_same_site or not cookie.same_site
    if result is None:
        return (
            "cookies-secure-with-httponly-sessions"
            if missing_same_site
            else "cookies-secure-with-httponly-sessions-and-samesite"
        )
    return result


def cors_test(scan: Scan) -> str:
    response = scan.cors
    acao = (
        response.all("access-control-allow-origin")[0]
        if response and response.all("access-control-allow-origin")
        else None
    )
    if response is None or not acao:
        return "cross-origin-resource-sharing-not-implemented"
    credentials = response.all("access-control-allow-credentials")
    if acao[:256].strip().lower() == "*":
        return "cross-origin-resource-sharing-implemented-with-public-access"
    if acao == scan.cors_origin and credentials and credentials[0].lower().strip() == "true":
        return "cross-origin-resource-sharing-implemented-with-universal-access"
    return "cross-origin-resource-sharing-implemented-with-restricted-access"


def redirection_test(scan: Scan) -> str:
    if scan.http is None:
        return "redirection-not-needed-no-http"
    if not scan.http.verified:
        return "redirection-invalid-cert"
    route = scan.http_route or [scan.http]
    if len(route) == 1:
        return "redirection-missing"
    if urlsplit(route[-1].url).scheme != "https":
        return "redirection-not-to-https"
    if urlsplit(route[1].url).scheme == "http":
        return "redirection-not-to-https-on-initial-redirection"
    first, second = urlsplit(route[0].url), urlsplit(route[1].url)
    if first.scheme == "http" and second.scheme == "https" and first.hostname != second.hostname:
        return "redirection-off-host-from-http"
    return "redirection-to-https"


def referrer_test(scan: Scan) -> str:
    good = ["no-referrer", "same-origin", "strict-origin", "strict-origin-when-cross-origin"]
    bad = ["origin", "origin-when-cross-origin", "unsafe-url", "no-referrer-when-downgrade"]
    values = scan.auto.all("referrer-policy")
    http = [scan.auto.get("referrer-policy") or ""] if values else []
    equiv = _html(scan.auto).equiv.get("referrer-policy", [])
    if not http and not equiv:
        return "referrer-policy-not-implemented"
    data = ", ".join([*http, *equiv])
    valid = [e.strip().lower() for e in data.split(",") if e.strip().lower() in good + bad]
    policy = valid[-1] if valid else ""
    if policy in good:
        return "referrer-policy-private"
    if policy in bad:
        return "referrer-policy-unsafe"
    return "referrer-policy-header-invalid"


def _second_level(host: str) -> str:
    parts = host.lower().rstrip(".").split(".")
    return ".".join(parts[-2:]) if len(parts) >= 2 else host.lower()


SRI_ORDER = [
    "sri-implemented-and-all-scripts-loaded-securely",
    "sri-implemented-and-external-scripts-loaded-securely",
    "sri-implemented-but-external-scripts-not-loaded-securely",
    "sri-not-implemented-but-external-scripts-loaded-securely",
    "sri-not-implemented-and-external-scripts-not-loaded-securely",
    "sri-not-implemented-response-not-html",
]


def sri_test(scan: Scan) -> str:
    response = scan.auto
    if response.mime and response.mime not in HTML_TYPES:
        return "sri-not-implemented-response-not-html"
    try:
        scripts = _html(response).scripts
    except Exception:
        return "html-not-parseable"
    result: str | None = None

    def worse(candidate: str) -> None:
        nonlocal result
        if result is None or SRI_ORDER.index(candidate) > SRI_ORDER.index(result):
            result = candidate

    foreign = False
    site = _second_level(urlsplit(response.url).hostname or "")
    page_https = urlsplit(response.url).scheme == "https"
    for script in scripts:
        src = script.get("src")
        if not src:
            continue
        integrity = script.get("integrity") or None
        relative_protocol = bool(re.match(r"^//[^/]", src))
        relative_origin = False
        if relative_protocol:
            same = True
        elif re.match(r"^https?://", src):
            same = _second_level(urlsplit(src).hostname or "") == site
        else:
            relative_origin, same = True, True
        secure_origin = relative_origin or (same and not relative_protocol)
        if not secure_origin:
            foreign = True
        scheme = urlsplit(src).scheme if not relative_protocol and not relative_origin else None
        secure_scheme = scheme == "https" or (relative_origin and page_https)
        if not secure_origin:
            if integrity and not secure_scheme:
                worse("sri-implemented-but-external-scripts-not-loaded-securely")
            elif not integrity and secure_scheme:
                worse("sri-not-implemented-but-external-scripts-loaded-securely")
            elif not integrity:
                worse("sri-not-implemented-and-external-scripts-not-loaded-securely")
        elif integrity and secure_scheme and result is None:
            result = "sri-implemented-and-all-scripts-loaded-securely"
    if not scripts:
        return "sri-not-implemented-but-no-scripts-loaded"
    if result is None:
        return (
            "sri-implemented-and-external-scripts-loaded-securely"
            if foreign
            else "sri-not-implemented-but-all-scripts-loaded-from-secure-origin"
        )
    return result


def xcto_test(scan: Scan) -> str:
    values = scan.auto.all("x-content-type-options")
    if not values:
        return "x-content-type-options-not-implemented"
    header = scan.auto.get("x-content-type-options") or ""
    return (
        "x-content-type-options-nosniff"
        if header[:256].strip().lower() == "nosniff"
        else "x-content-type-options-header-invalid"
    )


def xfo_test(scan: Scan, csp: dict[str, set[str]] | None) -> str:
    header = scan.auto.get("x-frame-options")
    if header:
        value = header[:1024].strip().lower()
        if value in ("deny", "sameorigin"):
            result = "x-frame-options-sameorigin-or-deny"
        elif value.startswith("allow-from"):
            result = "x-frame-options-allow-from-origin"
        else:
            result = "x-frame-options-header-invalid"
    else:
        result = "x-frame-options-not-implemented"
    if csp and csp.get("frame-ancestors"):
        result = "x-frame-options-implemented-via-csp"
    return result


def corp_test(scan: Scan) -> str:
    header = scan.auto.get("cross-origin-resource-policy")
    equiv = _html(scan.auto).equiv.get("cross-origin-resource-policy", [])
    value = (
        header[:256].strip().lower()
        if header
        else (equiv[-1][:256].strip().lower() if equiv else "")
    )
    if not value:
        return "corp-not-implemented"
    return {
        "same-site": "corp-implemented-with-same-site",
        "same-origin": "corp-implemented-with-same-origin",
        "cross-origin": "corp-implemented-with-cross-origin",
    }.get(value, "corp-header-invalid")


_TOKEN = re.compile(r"^[A-Za-z*][!#$%&'*+\-.^_`|~0-9A-Za-z:/]*")
_PARAMS = re.compile(
    r'^(;\s*[a-z*][a-z0-9_.*-]*(=([A-Za-z*][!#$%&\'*+\-.^_`|~0-9A-Za-z:/]*|"[^"]*"|-?\d+(\.\d+)?|\?[01]))?)*$'
)


def sf_token(value: str) -> str | None:
    """The bare token of an RFC 8941 item, or None if the value is not one."""
    value = value.strip(" ")
    match = _TOKEN.match(value)
    if not match:
        return None
    return match.group(0) if _PARAMS.match(value[match.end() :]) else None


def _policy_test(scan: Scan, header: str, kind: str, values: dict[str, str]) -> str:
    raw = scan.auto.all(header)
    if not raw:
        return f"{kind}-not-implemented"
    if len(raw) > 1:
        return f"{kind}-header-invalid"
    token = sf_token(raw[0][:1024].strip())
    return values.get(token or "", f"{kind}-header-invalid")


def coop_test(scan: Scan) -> str:
    return _policy_test(
        scan,
        "cross-origin-opener-policy",
        "coop",
        {
            "same-origin": "coop-implemented-with-same-origin",
            "same-origin-allow-popups": "coop-implemented-with-same-origin-allow-popups",
            "noopener-allow-popups": "coop-implemented-with-noopener-allow-popups",
            "unsafe-none": "coop-implemented-with-unsafe-none",
        },
    )


def coep_test(scan: Scan) -> str:
    return _policy_test(
        scan,
        "cross-origin-embedder-policy",
        "coep",
        {
            "require-corp": "coep-implemented-with-require-corp",
            "credentialless": "coep-implemented-with-credentialless",
            "unsafe-none": "coep-implemented-with-unsafe-none",
        },
    )


PASSING = {
    "content-security-policy": {
        "csp-implemented-with-no-unsafe",
        "csp-implemented-with-no-unsafe-default-src-none",
        "csp-implemented-with-unsafe-inline-in-style-src-only",
        "csp-implemented-with-insecure-scheme-in-passive-content-only",
        "csp-implemented-but-duplicate-directives",
    },
    "cookies": {
        "cookies-not-found",
        "cookies-secure-with-httponly-sessions-and-samesite",
        "cookies-secure-with-httponly-sessions",
    },
    "cross-origin-resource-sharing": {
        "cross-origin-resource-sharing-not-implemented",
        "cross-origin-resource-sharing-implemented-with-public-access",
        "cross-origin-resource-sharing-implemented-with-restricted-access",
    },
    "redirection": {
        "redirection-to-https",
        "redirection-not-needed-no-http",
        "redirection-all-redirects-preloaded",
    },
    "referrer-policy": {"referrer-policy-private", "referrer-policy-not-implemented"},
    "strict-transport-security": {"hsts-implemented-max-age-at-least-six-months", "hsts-preloaded"},
    "subresource-integrity": {
        "sri-implemented-and-all-scripts-loaded-securely",
        "sri-implemented-and-external-scripts-loaded-securely",
        "sri-not-implemented-response-not-html",
        "sri-not-implemented-but-all-scripts-loaded-from-secure-origin",
        "sri-not-implemented-but-no-scripts-loaded",
    },
    "x-content-type-options": {"x-content-type-options-nosniff"},
    "x-frame-options": {
        "x-frame-options-sameorigin-or-deny",
        "x-frame-options-allow-from-origin",
        "x-frame-options-implemented-via-csp",
    },
    "cross-origin-resource-policy": {
        "corp-not-implemented",
        "corp-implemented-with-same-site",
        "corp-implemented-with-same-origin",
        "corp-implemented-with-cross-origin",
    },
    "cross-origin-opener-policy": {
        "coop-not-implemented",
        "coop-implemented-with-same-origin",
        "coop-implemented-with-same-origin-allow-popups",
        "coop-implemented-with-noopener-allow-popups",
        "coop-implemented-with-unsafe-none",
    },
    "cross-origin-embedder-policy": {
        "coep-not-implemented",
        "coep-implemented-with-require-corp",
        "coep-implemented-with-credentialless",
        "coep-implemented-with-unsafe-none",
    },
}


def grade(scan: Scan) -> Grade:
    """Score and grade ``scan`` with the Observatory's algorithm."""
    csp_result, csp = csp_test(scan)
    results = {
        "content-security-policy": csp_result,
        "cookies": cookies_test(scan),
        "cross-origin-resource-sharing": cors_test(scan),
        "redirection": redirection_test(scan),
        "referrer-policy": referrer_test(scan),
        "strict-transport-security": hsts_test(scan),
        "subresource-integrity": sri_test(scan),
        "x-content-type-options": xcto_test(scan),
        "x-frame-options": xfo_test(scan, csp),
        "cross-origin-resource-policy": corp_test(scan),
    }
    tests = tuple(
        TestResult(name, result, result in PASSING[name], MODIFIERS[result])
        for name, result in results.items()
    )
    with_bonus = 100 + sum(t.modifier for t in tests)
    penalties_only = 100 + sum(t.modifier for t in tests if t.modifier < 0)
    score = with_bonus if penalties_only >= EXTRA_CREDIT_MINIMUM else penalties_only
    score = max(score, 0)
    extra = tuple(
        TestResult(name, result, result in PASSING[name], 0)
        for name, result in (
            ("cross-origin-opener-policy", coop_test(scan)),
            ("cross-origin-embedder-policy", coep_test(scan)),
        )
    )
    return Grade(score, grade_for(score), tests, extra)

"""Security headers graded the way the MDN HTTP Observatory grades them.

A port of the released algorithm (@mdn/mdn-http-observatory 1.4.8:
``src/analyzer/tests/*.js``, ``src/analyzer/cspParser.js``, ``src/grader/charts.js``,
``src/scanner/index.js``) over its ten tests: CSP, cookies, CORS, redirection,
Referrer-Policy, HSTS, SRI, X-Content-Type-Options, X-Frame-Options and CORP.

Each test picks one result and each result has a modifier. The score starts at
100 and takes every negative modifier; the positive ones (bonus) count only when
the penalty-only score is at least 90. The grade is read from the chart in steps
of 5. The port keeps the analyzer's quirks, because the point is to give the
score the Observatory gives:

- repeated headers reach the analyzer the way Node presents them: ``set-cookie``
  as a list, a few single-valued headers (``content-type``, ``location``,
  ``server``, ...) keep their first value, every other one is joined with ``", "``;
  so two CSP headers are read as one policy;
- only ``<meta http-equiv="content-security-policy">`` and ``<meta name="referrer">``
  count from the page, and only when ``content-type`` is exactly an HTML type;
- an HSTS ``max-age`` that is not a number parses as NaN, which is not below six
  months, so it passes;
- cookies are those the scanning session stored (its own redirect chain), parsed
  with RFC 6265 rules as tough-cookie parses them;
- CSP sources are ordered with the ``en`` collation of ``Intl.Collator``.

Hosts on Chromium's HSTS preload list get the preload results (the
``hstspreload`` package), and registrable domains (for SRI) follow the Public
Suffix List (``tldextract``'s bundled copy, offline): see publicsuffix.py. Cross-Origin-Opener/Embedder-Policy,
scored only by unreleased versions, are reported beside the grade, not in it.
"""

from __future__ import annotations

import ipaddress
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from html.parser import HTMLParser
from urllib.parse import urljoin, urlsplit

from controltower.checks.live.publicsuffix import preloaded, registrable_domain

CORS_ORIGIN = "https://http-observatory.security.mozilla.org"
SIX_MONTHS = 15_552_000
EXTRA_CREDIT_MINIMUM = 90
HTML_TYPES = {"text/html", "application/xhtml+xml"}
# Node's http module keeps the first of these when a response repeats them.
SINGLE_VALUED = {
    "age", "authorization", "content-length", "content-type", "etag", "expires", "from",
    "host", "if-modified-since", "if-unmodified-since", "last-modified", "location",
    "max-forwards", "proxy-authorization", "referer", "retry-after", "server", "user-agent",
}  # fmt: skip

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
        """Every value of ``name``, one per header line."""
        return [v for k, v in self.headers if k.lower() == name.lower()]

    def values(self, name: str) -> list[str]:
        """The header as Node presents it: set-cookie a list, others one combined value."""
        found = self.all(name)
        if not found:
            return []
        key = name.lower()
        if key == "set-cookie":
            return found
        if key in SINGLE_VALUED:
            return found[:1]
        return [", ".join(found)]

    def get(self, name: str) -> str | None:
        """The first value as Node presents it, or None."""
        found = self.values(name)
        return found[0] if found else None

    @property
    def mime(self) -> str:
        """The media type exactly as the analyzer reads it: no trimming, no lowercasing."""
        return (self.get("content-type") or "").split(";")[0]


@dataclass
class Scan:
    """What the Observatory retrieves.

    ``auto`` is the page graded (the final HTTPS response when HTTPS answers, else
    the final HTTP one); ``http_route`` is the chain from ``http://host/``, ``http``
    its final response; ``https`` the final HTTPS response; ``cors`` the answer to
    a CORS preflight; ``session`` the chain the grading session followed to
    ``auto`` (its cookies are the ones graded); ``session_url`` where that session
    started; ``hostname`` the host scanned.
    """

    auto: Response
    http: Response | None = None
    http_route: list[Response] = field(default_factory=list)
    https: Response | None = None
    cors: Response | None = None
    cors_origin: str = CORS_ORIGIN
    session: list[Response] | None = None
    session_url: str = ""
    hostname: str = ""

    def __post_init__(self) -> None:
        if self.session is None:
            self.session = [self.auto]
        if not self.session_url:
            self.session_url = (self.session or [self.auto])[0].url
        if not self.hostname:
            self.hostname = urlsplit(self.auto.url).hostname or ""


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


def _worse(candidate: str, current: str | None, order: list[str]) -> str:
    """``onlyIfWorse``: keep the result that sits later in ``order``."""
    if current is None or order.index(candidate) > order.index(current):
        return candidate
    return current


def _parse_int(text: str) -> float:
    """JavaScript's ``parseInt(text, 10)``: leading digits after optional space and sign, else NaN."""
    match = re.match(r"[\s\ufeff]*([+-]?)(\d+)", text)
    if not match:
        return math.nan
    value = int(match.group(2))
    return float(-value if match.group(1) == "-" else value)


# -- the page --------------------------------------------------------------------


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.scripts: list[dict[str, str | None]] = []
        self.metas: list[dict[str, str | None]] = []
        self.base: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found: dict[str, str | None] = {}
        for key, value in attrs:
            found.setdefault(key.lower(), value if value is not None else "")
        if tag == "script":
            self.scripts.append(found)
        elif tag == "meta":
            self.metas.append(found)
        elif tag == "base" and self.base is None and found.get("href"):
            self.base = found["href"]

    handle_startendtag = handle_starttag


def _page(body: str) -> _Page:
    parser = _Page()
    parser.feed(body)
    parser.close()
    return parser


def http_equiv(scan: Scan) -> dict[str, list[str]]:
    """``parseHttpEquivHeaders``: CSP from http-equiv metas, Referrer-Policy from ``<meta name=referrer>``."""
    response = scan.auto
    if response.mime not in HTML_TYPES or not response.body:
        return {}
    found: dict[str, list[str]] = {"content-security-policy": []}
    for meta in _page(response.body).metas:
        if "http-equiv" in meta and "content" in meta:
            if (meta["http-equiv"] or "").lower().strip() == "content-security-policy" and meta[
                "content"
            ]:
                found["content-security-policy"].append(meta["content"])
        elif (meta.get("name") or "").lower().strip() == "referrer" and meta.get("content"):
            found["referrer-policy"] = [str(meta["content"])]
    return found


# -- CSP -------------------------------------------------------------------------

BROAD = {"ftp:", "http:", "https:", "*", "http://*", "http://*.*", "https://*", "https://*.*"}
UNSAFE_INLINE = {"'unsafe-inline'", "data:"}
BROAD_OR_INLINE = BROAD | UNSAFE_INLINE
PASSIVE = ("img-src", "media-src")
NONCES = ("'sha256-", "'sha384-", "'sha512-", "'nonce-")
ALLOWED_DUPLICATES = {"report-uri", "report-to"}
DISALLOWED_IN_META = ("frame-ancestors", "report-uri", "sandbox")
DUPLICATES = "_observatory_duplicate_key_warnings"
SHORTEST_POLICY = len("img-src") - 1

# Primary weights of printable ASCII in the root collation (Intl.Collator("en")),
# which orders punctuation, then digits, then letters.
_COLLATION = {
    c: i
    for i, c in enumerate(" _-,;:!?.'\"()[]{}@*/\\&#%`^+<=>|~$0123456789abcdefghijklmnopqrstuvwxyz")
}


def _collation_key(text: str) -> tuple[int, ...]:
    return tuple(_COLLATION.get(c.lower(), 1000 + ord(c)) for c in text)


class CspInvalid(ValueError):
    pass


@dataclass
class _Source:
    source: str
    index: int
    keep: bool


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
    """The Observatory's CSP parser: several policies intersect; a repeated directive is invalid."""
    clean = [re.sub(r"[\r\n]", "", p).strip() for p in policies]
    if not clean:
        return {}
    for policy in clean:
        if len(policy) < SHORTEST_POLICY:
            raise CspInvalid(policy)
    csp: dict[str, list[_Source]] = {}
    duplicates: set[str] = set()
    for index, policy in enumerate(clean):
        seen: set[str] = set()
        for entry in policy.split(";"):
            parts = entry.strip().split()
            if not parts:
                continue
            directive = parts[0].lower()
            if directive in seen:
                if directive not in ALLOWED_DUPLICATES:
                    raise CspInvalid(f"duplicate directive {directive}")
                duplicates.add(directive)
            else:
                seen.add(directive)
            keep = index == 0
            values = [_Source(v.strip().lower(), index, keep) for v in parts[1:]]
            if not values and directive.endswith("-src"):
                values = [_Source("'none'", index, keep)]
            combined = values if index == 0 else [*csp.get(directive, []), *values]
            combined.sort(key=lambda s: _collation_key(s.source))
            for i in range(1, len(combined)):
                source, previous = combined[i], combined[i - 1]
                if source.index == previous.index and source.source.startswith(previous.source):
                    source.keep = False
                if source.index != previous.index and _path_part_match(
                    previous.source, source.source
                ):
                    source.keep = True
            csp[directive] = [s for s in combined if s.keep]
            if index == 0 and len(clean) > 1:
                for s in csp[directive]:
                    s.keep = False
    final = {d: ({s.source for s in sources} or {"'none'"}) for d, sources in csp.items()}
    if duplicates:
        final[DUPLICATES] = duplicates
    return final


def _parse_csp_meta(policies: list[str]) -> dict[str, set[str]]:
    parsed = parse_csp(policies)
    for directive in DISALLOWED_IN_META:
        parsed.pop(directive, None)
    return parsed


def csp_test(scan: Scan) -> tuple[str, dict[str, set[str]] | None]:
    """The CSP result, and the parsed policy when the test got as far as reading it."""
    response = scan.auto
    header = response.values("content-security-policy")
    meta = http_equiv(scan).get("content-security-policy", [])
    try:
        csp = parse_csp([*header, *meta])
    except CspInvalid:
        return "csp-header-invalid", None
    try:
        header_only = parse_csp(header)
    except CspInvalid:
        header_only = {}
    try:
        meta_only = _parse_csp_meta(meta)
    except CspInvalid:
        meta_only = {}
    if len(header_only) + len(meta_only) == 0:
        if response.get("content-security-policy-report-only"):
            return "csp-not-implemented-but-reporting-enabled", None
        return "csp-not-implemented", None

    result: str | None = None

    def first(candidate: str) -> None:
        nonlocal result
        if result is None:
            result = candidate

    # The analyzer reads these sets straight out of the parsed policy and edits them
    # in place, so script-src falling back to default-src changes default-src too.
    script_src = csp.get("script-src") or csp.get("default-src") or {"*"}
    style_src = csp.get("style-src") or csp.get("default-src") or {"*"}
    object_src = csp.get("object-src") or csp.get("default-src") or {"*"}
    for sources in (script_src, style_src):
        if any(s.startswith(NONCES) for s in sources):
            sources.discard("'unsafe-inline'")
    if any(s.startswith(NONCES) for s in script_src) and "'strict-dynamic'" in script_src:
        for source in list(script_src):
            if any(source.startswith(b) for b in BROAD) or source in ("'self'", "'unsafe-inline'"):
                script_src.discard(source)
    elif "'strict-dynamic'" in script_src:
        first("csp-header-invalid")
    https = urlsplit(scan.session_url).scheme == "https"
    active = [s for d, v in csp.items() if d not in PASSIVE and d != "script-src" for s in v]
    active += list(script_src)
    passive = [s for d in PASSIVE for s in (csp.get(d) or csp.get("default-src") or set())]

    if script_src & BROAD_OR_INLINE or object_src & BROAD:
        first("csp-implemented-with-unsafe-inline")
    if https and any(s.startswith(("http:", "ftp:")) for s in active):
        first("csp-implemented-with-insecure-scheme")
    if "'unsafe-eval'" in script_src | style_src:
        first("csp-implemented-with-unsafe-eval")
    if https and any(s.startswith(("http:", "ftp:")) for s in passive):
        first("csp-implemented-with-insecure-scheme-in-passive-content-only")
    if style_src & BROAD_OR_INLINE:
        first("csp-implemented-with-unsafe-inline-in-style-src-only")
    default_src = csp.get("default-src")
    if default_src is not None and "'none'" in default_src and len(default_src) == 1:
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
    return str(result), {d: v for d, v in csp.items() if d != DUPLICATES}


# -- HSTS, redirection, referrer -------------------------------------------------------


def hsts_test(scan: Scan) -> str:
    result = _hsts_header(scan)
    # A preloaded host overrides most anything else, whenever there was an https response.
    if scan.https is not None and preloaded(scan.hostname):
        return "hsts-preloaded"
    return result


def _hsts_header(scan: Scan) -> str:
    response = scan.https
    if response is None:
        return "hsts-not-implemented-no-https"
    if not response.verified:
        return "hsts-invalid-cert"
    values = response.values("strict-transport-security")
    if not values:
        return "hsts-not-implemented"
    data = values[0][:1024]
    if "," in data:
        return "hsts-header-invalid"
    max_age: float | None = None
    for parameter in (p.strip().lower() for p in data.split(";")):
        if parameter.startswith("max-age="):
            max_age = _parse_int(parameter[8:128])
    if max_age is None:
        return "hsts-header-invalid"
    # NaN (max-age=abc) is not below six months: the analyzer lets it pass.
    if max_age < SIX_MONTHS:
        return "hsts-implemented-max-age-less-than-six-months"
    return "hsts-implemented-max-age-at-least-six-months"


def redirection_test(scan: Scan) -> str:
    response = scan.http
    if response is None:
        return "redirection-not-needed-no-http"
    if not response.verified:
        return "redirection-invalid-cert"
    route = scan.http_route or [response]
    if all(preloaded(urlsplit(r.url).hostname or "") for r in route):
        return "redirection-all-redirects-preloaded"
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


REFERRER_GOOD = ["no-referrer", "same-origin", "strict-origin", "strict-origin-when-cross-origin"]
REFERRER_BAD = ["origin", "origin-when-cross-origin", "unsafe-url", "no-referrer-when-downgrade"]


def referrer_test(scan: Scan) -> str:
    http = scan.auto.values("referrer-policy")
    equiv = http_equiv(scan).get("referrer-policy", [])
    if not http and not equiv:
        return "referrer-policy-not-implemented"
    data = ", ".join([*http, *equiv])
    valid = [
        e.lower().strip()
        for e in data.split(",")
        if e.lower().strip() in REFERRER_GOOD + REFERRER_BAD
    ]
    policy = valid[-1] if valid else ""
    if policy in REFERRER_GOOD:
        return "referrer-policy-private"
    if policy in REFERRER_BAD:
        return "referrer-policy-unsafe"
    return "referrer-policy-header-invalid"


# -- cookies ------------------------------------------------------------------------


@dataclass
class Cookie:
    name: str
    domain: str
    path: str
    secure: bool = False
    http_only: bool = False
    same_site: str | None = None


def _default_path(path: str) -> str:
    if not path.startswith("/") or path.count("/") <= 1:
        return "/"
    return path[: path.rfind("/")]


def _domain_match(host: str, domain: str) -> bool:
    if host == domain:
        return True
    try:
        ipaddress.ip_address(host.strip("[]"))
        return False
    except ValueError:
        return host.endswith("." + domain)


def parse_cookie(raw: str, url: str) -> Cookie | None:
    """Parse a Set-Cookie value received from ``url`` as tough-cookie stores it, or None if refused."""
    text = raw.strip()
    pair, _, attributes = text.partition(";")
    for terminator in ("\n", "\r", "\0"):
        pair = pair.split(terminator, 1)[0]
    equals = pair.find("=")
    if equals <= 0:
        return None
    name, value = pair[:equals].strip(), pair[equals + 1 :].strip()
    if re.search(r"[\x00-\x1f]", name + value):
        return None
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    cookie = Cookie(name, host, "")
    domain: str | None = None
    path: str | None = None
    for av in attributes.split(";"):
        av = av.strip()
        if not av:
            continue
        key, sep, val = av.partition("=")
        key, val = key.strip().lower(), val.strip() if sep else ""
        if key == "domain" and val:
            stripped = val.lstrip(".")
            if stripped:
                domain = stripped.lower()
        elif key == "path":
            path = val if val.startswith("/") else None
        elif key == "secure":
            cookie.secure = True
        elif key == "httponly":
            cookie.http_only = True
        elif key == "samesite":
            lowered = val.lower() if sep else ""
            cookie.same_site = lowered if lowered in ("strict", "lax", "none") else None
    if domain is not None:
        if registrable_domain(domain) is None and not _is_ip(domain):
            return None  # a public suffix
        if not _domain_match(host, domain):
            return None
        cookie.domain = domain
    cookie.path = path or _default_path(parts.path or "/")
    if cookie.name.startswith("__Secure-") and not cookie.secure:
        return None
    if cookie.name.startswith("__Host-") and (
        not cookie.secure or domain is not None or cookie.path != "/"
    ):
        return None
    return cookie


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
        return True
    except ValueError:
        return False


def cookie_jar(scan: Scan) -> list[Cookie]:
    """The cookies the scanning session stored, by (domain, path, name), later ones replacing earlier."""
    jar: dict[tuple[str, str, str], Cookie] = {}
    for response in scan.session or [scan.auto]:
        for raw in response.values("set-cookie"):
            cookie = parse_cookie(raw, response.url)
            if cookie is not None:
                jar[(cookie.domain, cookie.path, cookie.name)] = cookie
    return list(jar.values())


def _invalid_samesite(raw: str) -> bool:
    for part in raw.strip().split(";"):
        pieces = part.strip().split("=")
        key, value = pieces[0], pieces[1] if len(pieces) > 1 else ""
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
    hsts = hsts_test(scan) in ("hsts-implemented-max-age-at-least-six-months", "hsts-preloaded")
    for raw in scan.auto.values("set-cookie"):
        if _invalid_samesite(raw):
            result = _worse("cookies-samesite-flag-invalid", result, COOKIE_ORDER)
    jar = [c for c in cookie_jar(scan) if c.name and c.name != "heroku-session-affinity"]
    if not jar:
        return "cookies-not-found"
    missing_same_site = False
    for cookie in jar:
        lowered = cookie.name.lower()
        session = "login" in lowered or "sess" in lowered
        anticsrf = "csrf" in lowered
        if not cookie.secure and cookie.same_site == "none":
            result = _worse("cookies-samesite-flag-invalid", result, COOKIE_ORDER)
        if not cookie.secure:
            result = _worse(
                "cookies-without-secure-flag-but-protected-by-hsts"
                if hsts
                else "cookies-without-secure-flag",
                result,
                COOKIE_ORDER,
            )
        if anticsrf and not cookie.same_site:
            result = _worse("cookies-anticsrf-without-samesite-flag", result, COOKIE_ORDER)
        if session and not cookie.secure:
            result = _worse(
                "cookies-session-without-secure-flag-but-protected-by-hsts"
                if hsts
                else "cookies-session-without-secure-flag",
                result,
                COOKIE_ORDER,
            )
        if session and not cookie.http_only:
            result = _worse("cookies-session-without-httponly-flag", result, COOKIE_ORDER)
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
    acao = response.get("access-control-allow-origin") if response else None
    if response is None or not acao:
        return "cross-origin-resource-sharing-not-implemented"
    credentials = response.get("access-control-allow-credentials")
    if acao[:256].strip().lower() == "*":
        return "cross-origin-resource-sharing-implemented-with-public-access"
    if acao == scan.cors_origin and credentials and credentials.lower().strip() == "true":
        return "cross-origin-resource-sharing-implemented-with-universal-access"
    return "cross-origin-resource-sharing-implemented-with-restricted-access"


# -- SRI, XCTO, XFO, CORP ----------------------------------------------------------

SRI_ORDER = [
    "sri-implemented-and-all-scripts-loaded-securely",
    "sri-implemented-and-external-scripts-loaded-securely",
    "sri-implemented-but-external-scripts-not-loaded-securely",
    "sri-not-implemented-but-external-scripts-loaded-securely",
    "sri-not-implemented-and-external-scripts-not-loaded-securely",
    "sri-not-implemented-response-not-html",
]


def _script_src(raw: str, base: str | None) -> str:
    """``script.src`` in a document parsed without a URL: resolved against a ``<base>`` only."""
    stripped = raw.strip(" \t\n\r\f")
    if re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*:", stripped):
        return stripped
    if base and re.match(r"^https?://", base.strip(), re.IGNORECASE):
        return urljoin(base.strip(), stripped)
    return raw


def sri_test(scan: Scan) -> str:
    response = scan.auto
    if response.mime not in HTML_TYPES:
        return "sri-not-implemented-response-not-html"
    page = _page(response.body)
    result: str | None = None
    foreign = False
    site = registrable_domain(scan.hostname)
    session_https = urlsplit(scan.session_url).scheme == "https"
    for script in page.scripts:
        raw = script.get("src")
        if not raw:
            continue
        src = _script_src(raw, page.base)
        if not src:
            continue
        integrity = script.get("integrity") or None
        relative_origin = relative_protocol = False
        if re.match(r"^//[^/]", src):
            relative_protocol, same = True, True
        elif re.match(r"^https?://", src, re.IGNORECASE):
            same = registrable_domain(urlsplit(src).hostname or "") == site
        else:
            relative_origin, same = True, True
        secure_origin = relative_origin or (same and not relative_protocol)
        if not secure_origin:
            foreign = True
        scheme = (
            urlsplit(src).scheme.lower() if not relative_protocol and not relative_origin else None
        )
        secure_scheme = scheme == "https" or (relative_origin and session_https)
        if not secure_origin:
            if integrity and not secure_scheme:
                result = _worse(
                    "sri-implemented-but-external-scripts-not-loaded-securely", result, SRI_ORDER
                )
            elif not integrity and secure_scheme:
                result = _worse(
                    "sri-not-implemented-but-external-scripts-loaded-securely", result, SRI_ORDER
                )
            elif not integrity:
                result = _worse(
                    "sri-not-implemented-and-external-scripts-not-loaded-securely",
                    result,
                    SRI_ORDER,
                )
        elif integrity and secure_scheme and result is None:
            result = "sri-implemented-and-all-scripts-loaded-securely"
    if not page.scripts:
        return "sri-not-implemented-but-no-scripts-loaded"
    if result is None:
        return (
            "sri-implemented-and-external-scripts-loaded-securely"
            if foreign
            else "sri-not-implemented-but-all-scripts-loaded-from-secure-origin"
        )
    return result


def xcto_test(scan: Scan) -> str:
    header = scan.auto.get("x-content-type-options")
    if not header:
        return "x-content-type-options-not-implemented"
    if header[:256].strip().lower() == "nosniff":
        return "x-content-type-options-nosniff"
    return "x-content-type-options-header-invalid"


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
    if not header:
        return "corp-not-implemented"
    return {
        "same-site": "corp-implemented-with-same-site",
        "same-origin": "corp-implemented-with-same-origin",
        "cross-origin": "corp-implemented-with-cross-origin",
    }.get(header[:256].strip().lower(), "corp-header-invalid")


# -- COOP and COEP (reported, not scored) ----------------------------------------------

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


def _score(tests: Iterable[TestResult]) -> int:
    tests = list(tests)
    with_bonus = 100 + sum(t.modifier for t in tests)
    penalties_only = 100 + sum(t.modifier for t in tests if t.modifier < 0)
    return max(with_bonus if penalties_only >= EXTRA_CREDIT_MINIMUM else penalties_only, 0)


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
    score = _score(tests)
    extra = tuple(
        TestResult(name, result, result in PASSING[name], 0)
        for name, result in (
            ("cross-origin-opener-policy", coop_test(scan)),
            ("cross-origin-embedder-policy", coep_test(scan)),
        )
    )
    return Grade(score, grade_for(score), tests, extra)

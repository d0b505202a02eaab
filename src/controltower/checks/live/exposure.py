"""Metrics, leaks, compression and caching of the running service."""

from __future__ import annotations

import re
from html.parser import HTMLParser

from prometheus_client.parser import text_string_to_metric_families

from controltower.checks.base import Check, CheckContext, register
from controltower.checks.live import exposition
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

STACK_TRACE = re.compile(
    r"Traceback \(most recent call last\)|^\s+at [\w.<>$]+ \(.*:\d+:\d+\)|File \"[^\"]+\", line \d+|"
    r"node_modules/|Exception in thread|\.(py|js|ts|rb|php):\d+",
    re.MULTILINE,
)


class _Assets(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.assets: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "script" and found.get("src"):
            self.assets.append(str(found["src"]))
        if tag == "link" and found.get("href") and "stylesheet" in (found.get("rel") or ""):
            self.assets.append(str(found["href"]))


async def assets(ctx: CheckContext) -> list[str]:
    home = await ctx.get("/")
    parser = _Assets()
    if "html" in home.headers.get("content-type", ""):
        parser.feed(home.text)
    base = (ctx.url or "").rstrip("/")
    return [a for a in parser.assets if a.startswith("/") and not a.startswith("//")] + [
        a[len(base) :] for a in parser.assets if base and a.startswith(base)
    ]


@register
class Metrics(Check):
    """``[health] metrics`` (default /metrics) answers 200 with text that parses as Prometheus
    exposition and holds at least one metric family."""

    id = "observability.metrics"
    title = "The metrics path serves valid Prometheus exposition"
    category = Category.OBSERVABILITY
    gate = Gate.PRODUCTION
    severity = Severity.MEDIUM
    kind = "live"
    remedy = "Expose Prometheus metrics at /metrics (prom-client for Node, prometheus_client or appkit for Python)."

    async def run(self, ctx: CheckContext) -> Outcome:
        path = ctx.spec.health.metrics  # the path the generated route serves
        response = await ctx.get(path)
        fix = Fix(
            f"Expose Prometheus metrics at {path} ([health] metrics; "
            + (
                "prometheus_client or appkit"
                if ctx.spec.service.stack.value.startswith("python")
                else "prom-client, or the route `tower generate nextjs` writes"
                if ctx.spec.service.stack.value in ("nextjs", "node")
                else "prom-client for Node, prometheus_client or appkit for Python"
            )
            + ")",
            "",
            f"GET {path} -> 200, Content-Type: text/plain; version=0.0.4\n"
            "# HELP http_requests_total Requests served.\n"
            "# TYPE http_requests_total counter\n"
            'http_requests_total{method="GET",status="200"} 1027',
        )
        if response.status_code != 200:
            return failed(f"{path} answered {response.status_code}", fix)
        found = exposition.problems(response.text, response.headers.get("content-type", ""))
        if found:
            return failed(
                f"{path} is not valid Prometheus exposition: {found[0]}"
                + (f" (+{len(found) - 1} more)" if len(found) > 1 else ""),
                fix,
                details=found[:50],
            )
        families = list(text_string_to_metric_families(response.text))
        return passed(f"{len(families)} metric families", families=len(families))


@register
class PoweredBy(Check):
    """The home page sends no X-Powered-By header."""

    id = "leaks.powered_by"
    title = "No X-Powered-By header"
    category = Category.SECURITY
    gate = Gate.PRODUCTION
    severity = Severity.LOW
    kind = "live"
    remedy = (
        "Turn it off: poweredByHeader: false in Next.js, app.disable('x-powered-by') in Express."
    )

    async def run(self, ctx: CheckContext) -> Outcome:
        value = (await ctx.get("/")).headers.get("x-powered-by")
        if value:
            return failed(
                f"X-Powered-By: {value}",
                Fix("Stop sending it", "next.config.js", "poweredByHeader: false,"),
            )
        return passed("no X-Powered-By")


@register
class ServerVersion(Check):
    """The Server header does not carry a version number."""

    id = "leaks.server_version"
    title = "The Server header does not give a version"
    category = Category.SECURITY
    gate = Gate.PRODUCTION
    severity = Severity.LOW
    kind = "live"
    remedy = "Hide the version (uvicorn --no-server-header, nginx server_tokens off)."

    async def run(self, ctx: CheckContext) -> Outcome:
        value = (await ctx.get("/")).headers.get("server", "")
        if re.search(r"\d+\.\d+", value):
            return failed(
                f"Server: {value}",
                Fix(
                    "Hide the version (uvicorn --no-server-header; nginx server_tokens off;)",
                    "",
                    "server_tokens off;",
                ),
            )
        return passed(f"Server: {value}" if value else "no Server header")


@register
class SourceMapsLeak(Check):
    """The .map files of the first five same-origin scripts on the home page are not served."""

    id = "leaks.source_maps"
    title = "Source maps of browser scripts are not served"
    category = Category.SECURITY
    gate = Gate.PRODUCTION
    severity = Severity.MEDIUM
    kind = "live"
    remedy = "Do not ship browser source maps (productionBrowserSourceMaps: false); upload them to the error tracker instead."

    async def run(self, ctx: CheckContext) -> Outcome:
        scripts = [a for a in await assets(ctx) if a.split("?")[0].endswith(".js")][:5]
        if not scripts:
            return passed("no same-origin scripts on /")
        exposed = [
            f"{s}.map"
            for s in scripts
            if (await ctx.get(s.split("?")[0] + ".map")).status_code == 200
        ]
        if exposed:
            return failed(
                f"source maps served: {', '.join(exposed)}",
                Fix(
                    "Do not ship browser source maps; upload them to the error tracker",
                    "next.config.js",
                    "productionBrowserSourceMaps: false,",
                ),
                details=exposed,
            )
        return passed(f"no maps for {len(scripts)} scripts")


@register
class ExposedFiles(Check):
    """/.env and /.git/config are not served (a 200 with KEY= lines or a [core] section)."""

    id = "leaks.files"
    title = "/.env and /.git/config are not served"
    category = Category.SECURITY
    gate = Gate.CORE
    severity = Severity.CRITICAL
    kind = "live"
    remedy = "Keep .env* and .git out of the image and the static root (.dockerignore) and rotate every secret that was served."

    async def run(self, ctx: CheckContext) -> Outcome:
        exposed = []
        env = await ctx.get("/.env")
        if env.status_code == 200 and re.search(r"(?m)^[A-Z_][A-Z0-9_]*=", env.text):
            exposed.append("/.env")
        git = await ctx.get("/.git/config")
        if git.status_code == 200 and "[core]" in git.text:
            exposed.append("/.git/config")
        if exposed:
            return failed(
                f"served to anyone: {', '.join(exposed)}; rotate every secret in them",
                Fix(
                    "Keep them out of the image and the static root", ".dockerignore", ".env*\n.git"
                ),
                details=exposed,
            )
        return passed("neither is served")


@register
class StackTraces(Check):
    """Error pages for a missing page and a malformed API request show no stack trace or
    source paths."""

    id = "leaks.stack_traces"
    title = "Error pages do not show stack traces"
    category = Category.SECURITY
    gate = Gate.PRODUCTION
    severity = Severity.MEDIUM
    kind = "live"
    remedy = "Turn off debug mode in production and render generic error pages."

    async def run(self, ctx: CheckContext) -> Outcome:
        probes = ["/tower-check-does-not-exist", "/api/tower-check-does-not-exist?id=%00%27"]
        for path in probes:
            response = await ctx.get(path)
            if response.status_code >= 400 and STACK_TRACE.search(response.text[:20000]):
                return failed(
                    f"{path} answered {response.status_code} with a stack trace",
                    Fix(
                        "Turn off debug mode in production and render generic error pages",
                        "",
                        "DEBUG=false",
                    ),
                )
        return passed("error pages show no stack traces")


@register
class Compression(Check):
    """Responses of 1.4 kB or more (home page and its first assets) are compressed when the
    client accepts gzip or br."""

    id = "performance.compression"
    title = "HTML and static assets are compressed"
    category = Category.PERFORMANCE
    gate = Gate.DEPLOY
    severity = Severity.MEDIUM
    kind = "live"
    remedy = "Compress text responses (Fly: [http_service.http_options] compress = true)."

    async def run(self, ctx: CheckContext) -> Outcome:
        paths = ["/", *(await assets(ctx))[:3]]
        checked, uncompressed = 0, []
        for path in paths:
            response = await ctx.get(path, headers={"accept-encoding": "gzip, br"})
            if response.status_code != 200 or len(response.content) < 1400:
                continue
            checked += 1
            if not response.headers.get("content-encoding"):
                uncompressed.append(path)
        if not checked:
            return skipped("no response large enough (1.4 kB) to need compression")
        if uncompressed:
            return failed(
                f"not compressed: {', '.join(uncompressed)}",
                Fix(
                    "Compress text responses (Fly proxy: http_options.compress; Next.js compresses by default)",
                    "fly.toml",
                    "[http_service.http_options]\n  compress = true",
                ),
            )
        return passed(f"{checked} responses compressed")


@register
class Caching(Check):
    """The HTML home page has Cache-Control, and static assets are cached for at least a
    day."""

    id = "performance.caching"
    title = "HTML and static assets carry Cache-Control"
    category = Category.PERFORMANCE
    gate = Gate.DEPLOY
    severity = Severity.LOW
    kind = "live"
    remedy = "Cache hashed assets for a year (immutable) and revalidate HTML (no-cache)."

    async def run(self, ctx: CheckContext) -> Outcome:
        problems = []
        home = await ctx.get("/")
        if "html" in home.headers.get("content-type", "") and not home.headers.get("cache-control"):
            problems.append("/ (HTML) has no Cache-Control")
        for path in (await assets(ctx))[:3]:
            response = await ctx.get(path)
            value = response.headers.get("cache-control", "")
            match = re.search(r"max-age=(\d+)", value)
            if response.status_code == 200 and (not match or int(match.group(1)) < 86400):
                problems.append(
                    f"{path} is cached for less than a day ({value or 'no Cache-Control'})"
                )
        if problems:
            return warned(
                "; ".join(problems),
                Fix(
                    "Cache hashed assets for a year, revalidate HTML",
                    "",
                    "Cache-Control: public, max-age=31536000, immutable   # hashed assets\nCache-Control: no-cache                               # HTML",
                ),
                details=problems,
            )
        return passed("Cache-Control set")

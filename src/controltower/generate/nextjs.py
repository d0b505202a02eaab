"""Next.js files: health, liveness and metrics routes, security headers and CSP, Sentry wiring,
the web-vitals beacon and a rate-limiting middleware.

The readiness route answers in the IETF health-check format
(``application/health+json``: ``status`` pass/warn/fail, ``checks`` keyed
``component:measurement``) with real checks of the database, Stripe and
Supabase, each under its own timeout, so one slow dependency cannot hang it.
Only the database is critical: the app cannot serve without it, so its failure
is 503. Stripe or Supabase down is ``warn`` with 200, since a third-party outage
must not take every instance out of routing. The liveness route calls nothing
and is the one Fly routes by (see generate/flytoml.py).

The files follow the app: its language (``tsconfig.json``: TypeScript, else
JavaScript), its ``app`` folder (``app`` or ``src/app``; a pages-router app gets
its routes in an ``app`` folder beside ``pages``), a route file that already
exists at a path (``route.js`` or ``route.ts``: that file is the one compared and
rewritten, never a second beside it), and its ``next.config`` (``.js``,
``.mjs``, ``.cjs`` or ``.ts``): an existing one is edited in place (tower's
block put into its config object) or, when its shape is not the usual one,
left alone with the exact block to add printed.

The Content-Security-Policy follows how the pages render. A prerendered page is
HTML written at build time, so a per-request nonce cannot reach its inline
bootstrap scripts: when the root layout does not render dynamically the policy
is a static header from next.config allowing this origin's scripts and the
page's inline ones, with no nonce. When the root layout reads ``headers()``,
``cookies()`` or sets ``dynamic = "force-dynamic"``, every page renders per
request and the middleware sets a nonce policy with ``'strict-dynamic'``, which
Next.js applies to its own scripts.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from controltower.generate.files import GeneratedFile, Reconciled
from controltower.spec import Spec

MARK = "written by `tower generate nextjs`"

_HEALTH_TS = """// Readiness: {name}'s dependencies, in the IETF health-check format.
// Written by `tower generate nextjs`. Each check has its own timeout. Only the database is
// critical (503 when it fails); a third party that is down is "warn" and the answer stays 200.
import {{ NextResponse }} from "next/server";
{pg_import}
export const dynamic = "force-dynamic";
export const runtime = "nodejs";

type Status = "pass" | "warn" | "fail";
type Check = {{
  componentType: string;
  observedValue?: number;
  observedUnit?: string;
  status: Status;
  time: string;
  output?: string;
}};

const TIMEOUT_MS = {timeout_ms};
const started = Date.now();
{pg_pool}
async function timed(
  componentType: string,
  critical: boolean,
  probe: (signal: AbortSignal) => Promise<void>,
): Promise<Check> {{
  const begin = performance.now();
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), TIMEOUT_MS);
  try {{
    await Promise.race([
      probe(controller.signal),
      new Promise<never>((_, reject) =>
        controller.signal.addEventListener("abort", () => reject(new Error(`timed out after ${{TIMEOUT_MS}}ms`))),
      ),
    ]);
    const ms = Math.round(performance.now() - begin);
    return {{ componentType, observedValue: ms, observedUnit: "ms", status: ms > TIMEOUT_MS / 2 ? "warn" : "pass", time: new Date().toISOString() }};
  }} catch (error) {{
    return {{
      componentType,
      observedValue: Math.round(performance.now() - begin),
      observedUnit: "ms",
      // A third party that is down degrades the app; only what it cannot serve without fails it.
      status: critical ? "fail" : "warn",
      time: new Date().toISOString(),
      output: error instanceof Error ? error.message : "check failed",
    }};
  }} finally {{
    clearTimeout(timer);
  }}
}}

async function expectOk(url: string, init: RequestInit, signal: AbortSignal): Promise<void> {{
  const response = await fetch(url, {{ ...init, signal, cache: "no-store" }});
  if (!response.ok) throw new Error(`${{new URL(url).host}} answered ${{response.status}}`);
}}

export async function GET(): Promise<NextResponse> {{
  const checks: Record<string, Check[]> = {{}};
  const probes: Array<Promise<void>> = [];
{probes}
  await Promise.all(probes);
  const statuses = Object.values(checks).flat().map((check) => check.status);
  const status: Status = statuses.includes("fail") ? "fail" : statuses.includes("warn") ? "warn" : "pass";
  const body = {{
    status,
    version: process.env.APP_VERSION ?? process.env.FLY_IMAGE_REF ?? "dev",
    releaseId: process.env.FLY_MACHINE_VERSION ?? "",
    serviceId: "{name}",
    description: "readiness of {name}",
    checks: {{
      ...checks,
      "uptime": [{{ componentType: "system", observedValue: Math.round((Date.now() - started) / 1000), observedUnit: "s", status: "pass", time: new Date().toISOString() }}],
    }},
  }};
  return NextResponse.json(body, {{
    status: status === "fail" ? 503 : 200,
    headers: {{ "Content-Type": "application/health+json", "Cache-Control": "no-store" }},
  }});
}}
"""

_PG_IMPORT = 'import { Pool } from "pg";\n'
_PG_POOL = """
const pool = process.env.DATABASE_URL
  ? new Pool({ connectionString: process.env.DATABASE_URL, max: 2, connectionTimeoutMillis: TIMEOUT_MS })
  : null;
// An idle client that loses its connection emits "error"; unheard, it would end the process.
pool?.on("error", (error) => console.error(`health: idle database client: ${error.message}`));
"""
_PROBE_DB = """  if (pool) {
    const db = pool;
    probes.push(
      timed("datastore", true, async () => {
        await db.query("SELECT 1");
      }).then((check) => void (checks["postgres:responseTime"] = [check])),
    );
  }
"""
_PROBE_STRIPE = """  const stripeKey = process.env.STRIPE_SECRET_KEY;
  if (stripeKey) {
    probes.push(
      timed("component", false, (signal) =>
        expectOk("https://api.stripe.com/v1/balance", { headers: { Authorization: `Bearer ${stripeKey}` } }, signal),
      ).then((check) => void (checks["stripe:responseTime"] = [check])),
    );
  }
"""
_PROBE_SUPABASE = """  const supabaseUrl = process.env.NEXT_PUBLIC_SUPABASE_URL;
  const supabaseKey = process.env.NEXT_PUBLIC_SUPABASE_ANON_KEY;
  if (supabaseUrl && supabaseKey) {
    probes.push(
      timed("component", false, (signal) =>
        expectOk(`${supabaseUrl.replace(/\\/$/, "")}/auth/v1/health`, { headers: { apikey: supabaseKey } }, signal),
      ).then((check) => void (checks["supabase:responseTime"] = [check])),
    );
  }
"""

_LIVE_TS = """// Liveness: the process answers. No dependency is called here; Fly routes by this route.
// Written by `tower generate nextjs`.
import { NextResponse } from "next/server";

export const dynamic = "force-dynamic";

export function GET(): NextResponse {
  return NextResponse.json(
    { status: "pass", version: process.env.APP_VERSION ?? "dev" },
    { headers: { "Content-Type": "application/health+json", "Cache-Control": "no-store" } },
  );
}
"""

_METRICS_TS = """// Prometheus metrics of this Node process ([health] metrics in tower.toml: `tower check`
// probes this path and fly.toml's [metrics] scrapes it). Written by `tower generate nextjs`.
export const dynamic = "force-dynamic";
export const runtime = "nodejs";

const started = Date.now() / 1000;

function line(name: string, help: string, type: string, value: number, labels = ""): string {
  return `# HELP ${name} ${help}\\n# TYPE ${name} ${type}\\n${name}${labels} ${value}\\n`;
}

export function GET(): Response {
  const memory = process.memoryUsage();
  const cpu = process.cpuUsage();
  const body = [
    line("process_start_time_seconds", "Start time of the process since the epoch.", "gauge", started),
    line("process_cpu_seconds_total", "User and system CPU time spent.", "counter", (cpu.user + cpu.system) / 1e6),
    line("process_resident_memory_bytes", "Resident memory size.", "gauge", memory.rss),
    line("nodejs_heap_size_used_bytes", "Heap used by V8.", "gauge", memory.heapUsed),
    line("nodejs_heap_size_total_bytes", "Heap allocated by V8.", "gauge", memory.heapTotal),
    line("nodejs_external_memory_bytes", "Memory of C++ objects bound to JavaScript.", "gauge", memory.external),
    line("nodejs_version_info", "Node.js version.", "gauge", 1, `{version="${process.version}"}`),
  ].join("");
  return new Response(body, {
    headers: { "Content-Type": "text/plain; version=0.0.4; charset=utf-8", "Cache-Control": "no-store" },
  });
}
"""

_CONFIG = """// next.config for {name}, written by `tower generate nextjs`.
// {csp_note}
{import_line}
const securityHeaders = {headers};

{annotation}const nextConfig{typed} = {{
  output: "standalone",
  poweredByHeader: false,
  productionBrowserSourceMaps: false,
  reactStrictMode: true,
  async headers() {{
    return [{{ source: "/:path*", headers: securityHeaders }}];
  }},
}};
{export}"""

# One middleware does what tower asks of it: rate limiting (always) and, when pages render
# per request, the CSP nonce. Next.js allows one middleware file per app.
_MIDDLEWARE_TS = """// Written by `tower generate nextjs`.
// Rate limiting like appkit's RateLimit: a token bucket per client of LIMIT requests per
// WINDOW seconds on LIMITED paths, the IETF RateLimit and RateLimit-Policy headers on every
// answer, and 429 with Retry-After when the bucket is empty. Buckets live in this instance's
// memory: each instance counts apart (a shared store needs Redis or the database).{nonce_doc}
import { NextResponse, type NextRequest } from "next/server";

const LIMIT = Number(process.env.RATE_LIMIT ?? "__LIMIT__");
const WINDOW = Number(process.env.RATE_LIMIT_WINDOW ?? "60");
const LIMITED = __LIMITED__;
const EXEMPT = __EXEMPT__;
const buckets = new Map<string, { tokens: number; updated: number }>();

function under(path: string, prefix: string): boolean {
  return path === prefix || path.startsWith(prefix.replace(/\\/$/, "") + "/");
}

function client(request: NextRequest): string {
  const forwarded = request.headers.get("fly-client-ip") ?? request.headers.get("x-forwarded-for") ?? "";
  return forwarded.split(",")[0].trim() || "unknown";
}

function limit(request: NextRequest): { allowed: boolean; headers: Record<string, string> } {
  const now = Date.now() / 1000;
  const rate = LIMIT / WINDOW;
  const key = client(request);
  const bucket = buckets.get(key) ?? { tokens: LIMIT, updated: now };
  bucket.tokens = Math.min(LIMIT, bucket.tokens + Math.max(0, now - bucket.updated) * rate);
  bucket.updated = now;
  const allowed = bucket.tokens >= 1;
  if (allowed) bucket.tokens -= 1;
  buckets.set(key, bucket);
  if (buckets.size > 10000) buckets.delete(buckets.keys().next().value ?? key);
  const headers: Record<string, string> = {
    "RateLimit-Policy": `"default";q=${LIMIT};w=${WINDOW}`,
    "RateLimit": `"default";r=${Math.floor(bucket.tokens)};t=${Math.ceil((LIMIT - bucket.tokens) / rate)}`,
  };
  if (!allowed) headers["Retry-After"] = String(Math.max(1, Math.ceil((1 - bucket.tokens) / rate)));
  return { allowed, headers };
}
__CSP_FUNCTION__
export function middleware(request: NextRequest): NextResponse {
  const path = request.nextUrl.pathname;
  if (LIMITED.some((prefix) => under(path, prefix)) && !EXEMPT.some((prefix) => under(path, prefix))) {
    const decision = limit(request);
    if (!decision.allowed) {
      return NextResponse.json({ error: "too many requests" }, { status: 429, headers: decision.headers });
    }
    const response = NextResponse.next();
    for (const [name, value] of Object.entries(decision.headers)) response.headers.set(name, value);
    return response;
  }
__CSP_CALL__
}

export const config = {
  matcher: ["/((?!_next/static|_next/image|favicon.ico).*)"],
};
"""

_NONCE_DOC = """
// Pages render per request (the root layout is dynamic), so each page answer gets a fresh CSP
// nonce, as the Next.js docs describe; Next.js puts it on its own scripts. Read it in a
// component with headers().get("x-nonce")."""

_CSP_FUNCTION = """
function withNonce(request: NextRequest): NextResponse {
  const nonce = Buffer.from(crypto.randomUUID()).toString("base64");
  const dev = process.env.NODE_ENV === "development";
  const policy = [
__POLICY__
  ].join("; ");
  const headers = new Headers(request.headers);
  headers.set("x-nonce", nonce);
  headers.set("__CSP_HEADER__", policy);
  const response = NextResponse.next({ request: { headers } });
  response.headers.set("__CSP_HEADER__", policy);
  return response;
}
"""
_CSP_CALL_NONCE = """  const prefetch = request.headers.has("next-router-prefetch") || request.headers.get("purpose") === "prefetch";
  if (under(path, "/api") || prefetch) return NextResponse.next();
  return withNonce(request);"""
_CSP_CALL_STATIC = "  return NextResponse.next();"

_INSTRUMENTATION_TS = """// Error tracking with @sentry/nextjs, sending to tower (`tower serve`).
// Written by `tower generate nextjs`. SENTRY_DSN is the project's DSN from `tower serve`
// (GET /api/v1/projects); the browser uses NEXT_PUBLIC_SENTRY_DSN (instrumentation-client).
import * as Sentry from "@sentry/nextjs";

export async function register(): Promise<void> {
  if (process.env.SENTRY_DSN) {
    Sentry.init({
      dsn: process.env.SENTRY_DSN,
      release: process.env.APP_VERSION,
      environment: process.env.NODE_ENV,
      tracesSampleRate: 0,
    });
  }
}

export const onRequestError = Sentry.captureRequestError;
"""

_INSTRUMENTATION_CLIENT_TS = """// Browser error tracking with @sentry/nextjs, sending to tower.
// Written by `tower generate nextjs`. NEXT_PUBLIC_SENTRY_DSN is read at build time.
import * as Sentry from "@sentry/nextjs";

if (process.env.NEXT_PUBLIC_SENTRY_DSN) {
  Sentry.init({
    dsn: process.env.NEXT_PUBLIC_SENTRY_DSN,
    release: process.env.NEXT_PUBLIC_APP_VERSION,
    tracesSampleRate: 0,
  });
}

export const onRouterTransitionStart = Sentry.captureRouterTransitionStart;
"""

_WEB_VITALS_TSX = """"use client";
// Core Web Vitals of real visits, sent to tower (`tower serve`): POST /api/v1/vitals/<project>
// with the DSN's public key, one JSON beacon {name, value, id, page, release} per metric.
// Written by `tower generate nextjs`. NEXT_PUBLIC_SENTRY_DSN (read at build time) names the
// server, the project and the key; without it nothing is sent.
import { useReportWebVitals } from "next/web-vitals";

const DSN = process.env.NEXT_PUBLIC_SENTRY_DSN ?? "";

function endpoint(dsn: string): string | null {
  try {
    const url = new URL(dsn);
    const project = url.pathname.split("/").filter(Boolean).pop();
    if (!url.username || !project) return null;
    return `${url.protocol}//${url.host}/api/v1/vitals/${encodeURIComponent(project)}?sentry_key=${encodeURIComponent(url.username)}`;
  } catch {
    return null;
  }
}

const target = endpoint(DSN);

export function WebVitals(): null {
  useReportWebVitals((metric) => {
    if (!target) return;
    const body = JSON.stringify({
      name: metric.name,
      value: metric.value,
      id: metric.id,
      page: window.location.pathname,
      release: process.env.NEXT_PUBLIC_APP_VERSION ?? "",
    });
    // text/plain (the default for a string body) needs no CORS preflight; keepalive lets the
    // beacon leave while the page unloads (LCP, CLS and INP are reported then).
    void fetch(target, { method: "POST", body, keepalive: true }).catch(() => undefined);
  });
  return null;
}
"""

CONFIG_NAMES = ("next.config.ts", "next.config.mjs", "next.config.js", "next.config.cjs")
_DYNAMIC_LAYOUT = re.compile(
    r"""\b(headers|cookies|connection|draftMode)\s*\(|dynamic\s*=\s*["']force-dynamic["']"""
)
_SOURCE_EXTS = ("ts", "js", "mjs", "tsx", "jsx")


@dataclass(frozen=True)
class NextApp:
    """What the generated files follow: language, app folder, config file, how pages render."""

    root: Path | None
    typescript: bool = True
    app_dir: str = "app"
    config: str | None = None
    dynamic: bool = False

    @classmethod
    def of(cls, root: Path | None) -> NextApp:
        if root is None or not root.is_dir():
            return cls(None)
        in_src = not (root / "app").is_dir() and not (root / "pages").is_dir()
        in_src = in_src and any((root / "src" / d).is_dir() for d in ("app", "pages"))
        app_dir = "src/app" if in_src else "app"
        config = next((name for name in CONFIG_NAMES if (root / name).is_file()), None)
        layouts = [root / app_dir / f"layout.{ext}" for ext in ("tsx", "jsx", "ts", "js")]
        dynamic = any(
            _DYNAMIC_LAYOUT.search(path.read_text(encoding="utf-8", errors="replace"))
            for path in layouts
            if path.is_file()
        )
        # TypeScript when the app has a tsconfig, or when there is no app yet to follow.
        typescript = (root / "tsconfig.json").is_file() or not (root / "package.json").is_file()
        return cls(root, typescript, app_dir, config, dynamic)

    @property
    def ext(self) -> str:
        return "ts" if self.typescript else "js"

    def exists(self, path: str) -> bool:
        return self.root is not None and (self.root / path).is_file()

    def route(self, url_path: str) -> str:
        """The route file for ``url_path``: the one already there (any extension), else new."""
        folder = f"{self.app_dir}/{url_path.strip('/')}".rstrip("/")
        for ext in _SOURCE_EXTS:
            if self.exists(f"{folder}/route.{ext}"):
                return f"{folder}/route.{ext}"
        return f"{folder}/route.{self.ext}"

    def source(self, stem: str, *, folder: str | None = None, jsx: bool = False) -> str:
        """A file such as ``middleware`` (beside the app folder) or ``app/web-vitals``: the
        one already there, whatever its extension, else a new one in the app's language."""
        base = folder if folder is not None else ("src/" if self.app_dir == "src/app" else "")
        if folder is None:
            for prefix in ("", "src/"):
                for ext in _SOURCE_EXTS:
                    if self.exists(f"{prefix}{stem}.{ext}"):
                        return f"{prefix}{stem}.{ext}"
        else:
            for ext in _SOURCE_EXTS:
                if self.exists(f"{base}{stem}.{ext}"):
                    return f"{base}{stem}.{ext}"
        ext = self.ext + ("x" if jsx else "")
        return f"{base}{stem}.{ext}"

    def ours(self, path: str) -> bool:
        """Whether the file at ``path`` is missing or was written by tower."""
        if not self.exists(path):
            return True
        assert self.root is not None
        try:
            text = (self.root / path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            return False
        return MARK in text.lower()


def to_javascript(source: str) -> str:
    """The TypeScript templates above as JavaScript: type declarations, annotations, casts and
    generic arguments removed (the templates are written so that this is all it takes)."""
    text = re.sub(r"^type \w+ = \{.*?^\};\n\n?", "", source, flags=re.MULTILINE | re.DOTALL)
    text = re.sub(r"^type \w+ = [^;{]*;\n\n?", "", text, flags=re.MULTILINE)
    text = re.sub(r"import \{ (\w+), type \w+ \}", r"import { \1 }", text)
    text = re.sub(r"new (Promise|Map)<[^(]*>\(", r"new \1(", text)
    text = re.sub(r"const (\w+): [^=]+ = ", r"const \1 = ", text)
    # Return annotations: `): Promise<X> {`, `): NextResponse {`.
    text = re.sub(
        r"\)\s*:\s*(Promise<[\w<>\[\] ]+>|NextResponse|Response|Check|string|void|null|"
        r"boolean|\{ allowed: boolean; headers: Record<string, string> \}|string \| null)\s*(\{|=>)",
        r") \2",
        text,
    )
    text = re.sub(
        r"(\(|,\s*|\n\s*)(\w+)\??: (string|number|boolean|AbortSignal|RequestInit|NextRequest|"
        r"\(signal: AbortSignal\) => Promise<void>)(?=[,)=\n])",
        r"\1\2",
        text,
    )
    return text


def _connect_sources(spec: Spec) -> str:
    names = set(spec.env.vars)
    connect = ""
    if "NEXT_PUBLIC_SUPABASE_URL" in names:
        connect += " https://*.supabase.co wss://*.supabase.co"
    if any(n.startswith("NEXT_PUBLIC_POSTHOG") for n in names):
        connect += " https://*.posthog.com"
    if any(n.startswith(("STRIPE", "NEXT_PUBLIC_STRIPE")) for n in names):
        connect += " https://api.stripe.com"
    if spec.server.public_url:  # error reports and web-vitals beacons go to tower
        match = re.match(r"^(https?://[^/?#]+)", spec.server.public_url.strip())
        if match:
            connect += " " + match.group(1)
    return connect


def csp_directives(spec: Spec, *, nonce: bool) -> list[str]:
    """The policy's directives. With ``nonce``, scripts and styles need the request's nonce
    (``${nonce}`` in the middleware's template string); without, a prerendered page's inline
    bootstrap scripts are allowed by 'unsafe-inline' and other scripts must come from 'self'."""
    if spec.security.csp:
        return [part.strip() for part in spec.security.csp.split(";") if part.strip()]
    scripts = (
        "script-src 'self' 'nonce-${nonce}' 'strict-dynamic'${dev ? \" 'unsafe-eval'\" : \"\"}"
        if nonce
        else "script-src 'self' 'unsafe-inline'"
    )
    styles = "style-src 'self' 'nonce-${nonce}'" if nonce else "style-src 'self' 'unsafe-inline'"
    policy = [
        "default-src 'self'",
        scripts,
        styles,
        "img-src 'self' blob: data:",
        "font-src 'self'",
        f"connect-src 'self'{_connect_sources(spec)}",
        "object-src 'none'",
        "base-uri 'self'",
        "form-action 'self'",
        f"frame-ancestors {spec.security.frame_ancestors}",
        "upgrade-insecure-requests",
    ]
    if spec.security.trusted_types:
        policy.append("require-trusted-types-for 'script'")
    if spec.security.report_uri:
        policy.append(f"report-uri {spec.security.report_uri}")
    return policy


def _csp_header(spec: Spec) -> str:
    if spec.security.csp_report_only:
        return "Content-Security-Policy-Report-Only"
    return "Content-Security-Policy"


def security_headers(spec: Spec, *, with_csp: bool = False) -> list[dict[str, str]]:
    security = spec.security
    headers = [
        {
            "key": "Strict-Transport-Security",
            "value": f"max-age={int(security.hsts_max_age)}; includeSubDomains; preload",
        },
        {"key": "X-Content-Type-Options", "value": "nosniff"},
        {"key": "X-Frame-Options", "value": "DENY"},
        {"key": "Referrer-Policy", "value": security.referrer_policy},
        {"key": "Permissions-Policy", "value": security.permissions_policy},
        {"key": "Cross-Origin-Opener-Policy", "value": "same-origin"},
    ]
    if with_csp:
        policy = "; ".join(csp_directives(spec, nonce=False))
        headers.append({"key": _csp_header(spec), "value": policy})
    return headers


def _indent(block: str, spaces: int) -> str:
    return block.replace("\n", "\n" + " " * spaces)


def headers_literal(headers: list[dict[str, str]]) -> str:
    """``headers`` as a JavaScript array literal, one header a line."""
    lines = [
        f"  {{ key: {json.dumps(h['key'])}, value: {json.dumps(h['value'])} }}," for h in headers
    ]
    return "[\n" + "\n".join(lines) + "\n]"


def _csp_note(app: NextApp) -> str:
    if app.dynamic:
        return (
            "The Content-Security-Policy is set per request with a nonce by the middleware (the "
            "root layout renders dynamically)."
        )
    return (
        "Pages are prerendered, so a per-request nonce cannot reach them: the CSP here allows "
        "this origin's scripts and the page's inline bootstrap scripts."
    )


def _config_file(spec: Spec, app: NextApp, path: str) -> str:
    typed = path.endswith(".ts")
    block = headers_literal(security_headers(spec, with_csp=not app.dynamic))
    return _CONFIG.format(
        name=spec.service.name,
        csp_note=_csp_note(app),
        import_line='import type { NextConfig } from "next";\n' if typed else "",
        headers=block,
        annotation="" if typed else "/** @type {import('next').NextConfig} */\n",
        typed=": NextConfig" if typed else "",
        export="\nmodule.exports = nextConfig;\n"
        if path.endswith(".cjs")
        else "\nexport default nextConfig;\n",
    )


_BEGIN = (
    "  // Security headers: added by `tower generate nextjs`, which keeps this block current.\n"
)
_END = "  // End of the block added by tower.\n"
_CONFIG_OBJECT = re.compile(
    r"((?:const|let|var)\s+nextConfig(?:\s*:\s*NextConfig)?\s*=\s*\{)[ \t]*\n?"
    r"|(module\.exports\s*=\s*\{)[ \t]*\n?"
    r"|(export\s+default\s+\{)[ \t]*\n?"
)


def _config_block(spec: Spec, app: NextApp, *, powered_by: bool = True) -> str:
    block = headers_literal(security_headers(spec, with_csp=not app.dynamic))
    return (
        _BEGIN
        + ("  poweredByHeader: false,\n" if powered_by else "")
        + "  async headers() {\n"
        + f'    return [{{ source: "/:path*", headers: {_indent(block, 4)} }}];\n'
        + "  },\n"
        + _END
    )


def edit_config(text: str, make_block: Callable[[bool], str]) -> str | None:
    """The user's next.config with tower's block (``make_block(powered_by)``; ``powered_by``
    False when the user sets poweredByHeader already) in its config object, or brought up to
    date; None when its shape is not the usual one or it sets headers itself."""
    if _BEGIN in text and _END in text:
        start, end = text.index(_BEGIN), text.index(_END) + len(_END)
        outside = text[:start] + text[end:]
        return text[:start] + make_block("poweredByHeader" not in outside) + text[end:]
    if re.search(r"\bheaders\s*[(:]", text):
        return None  # the user sets headers: tower shows what to merge instead
    block = make_block("poweredByHeader" not in text)
    matches = list(_CONFIG_OBJECT.finditer(text))
    if len(matches) != 1:
        return None
    match = matches[0]
    opening = next(group for group in match.groups() if group)
    at = match.start() + len(opening)
    return text[:at] + "\n" + block + text[match.end() :]


def _config(spec: Spec, app: NextApp) -> GeneratedFile:
    path = app.config or f"next.config.{'ts' if app.typescript else 'mjs'}"
    if app.config is None or app.ours(path):
        return GeneratedFile(path, _config_file(spec, app, path))
    block = _config_block(spec, app)

    def reconcile(existing: str) -> Reconciled:
        edited = edit_config(existing, lambda powered: _config_block(spec, app, powered_by=powered))
        if edited is not None:
            return Reconciled(edited, ["tower's headers block put into the config object"])
        return Reconciled(
            existing,
            [
                f"{path} sets headers itself or has an unusual shape, so tower leaves it as it "
                "is: add this to its config object (merge with your own headers):\n" + block
            ],
        )

    return GeneratedFile(path, "", reconcile=reconcile)


def _middleware(spec: Spec, app: NextApp, path: str) -> str:
    exempt = [spec.health.liveness, spec.health.readiness, spec.health.metrics]
    if spec.health.simple:
        exempt.append(spec.health.simple)
    limited = [spec.security.rate_limit_path] if spec.security.rate_limit_path else ["/api"]
    # A configured route gets half the live check's burst, so `tower check` sees the 429.
    default_limit = (
        max(1, spec.security.rate_limit_burst // 2) if spec.security.rate_limit_path else 100
    )
    text = (
        _MIDDLEWARE_TS.replace("__LIMIT__", str(default_limit))
        .replace("__LIMITED__", json.dumps(limited))
        .replace("__EXEMPT__", json.dumps(sorted(set(exempt))))
    )
    if app.dynamic:
        policy = ",\n".join(
            "    " + (f"`{item}`" if "${" in item else json.dumps(item))
            for item in csp_directives(spec, nonce=True)
        )
        function = _CSP_FUNCTION.replace("__POLICY__", policy).replace(
            "__CSP_HEADER__", _csp_header(spec)
        )
        text = (
            text.replace("{nonce_doc}", _NONCE_DOC)
            .replace("__CSP_FUNCTION__", function)
            .replace("__CSP_CALL__", _CSP_CALL_NONCE)
        )
    else:
        text = (
            text.replace("{nonce_doc}", "")
            .replace("__CSP_FUNCTION__", "")
            .replace("__CSP_CALL__", _CSP_CALL_STATIC)
        )
    return text if path.endswith(".ts") else to_javascript(text)


_CHILDREN = re.compile(r">(\s*)(\{\s*children\s*\})")  # children rendered in JSX
_LAST_IMPORT = re.compile(r"^import [^;]*;[ \t]*\n", re.MULTILINE)


def add_web_vitals(layout: str, module: str) -> str | None:
    """The root layout rendering ``<WebVitals />`` before its children, or None when it has
    no single ``{children}`` to put it beside."""
    if "<WebVitals" in layout:
        return layout
    if len(_CHILDREN.findall(layout)) != 1:
        return None
    statement = f'import {{ WebVitals }} from "{module}";\n'
    imports = list(_LAST_IMPORT.finditer(layout))
    if imports:
        at = imports[-1].end()
        layout = layout[:at] + statement + layout[at:]
    else:
        layout = statement + "\n" + layout
    return _CHILDREN.sub(
        lambda m: ">" + m.group(1) + "<WebVitals />" + m.group(1) + m.group(2),
        layout,
        count=1,
    )


def _layout(app: NextApp, module: str) -> GeneratedFile | None:
    path = next(
        (
            f"{app.app_dir}/layout.{ext}"
            for ext in ("tsx", "jsx", "js", "ts")
            if app.exists(f"{app.app_dir}/layout.{ext}")
        ),
        None,
    )
    if path is None:
        return None

    def reconcile(existing: str) -> Reconciled:
        edited = add_web_vitals(existing, module)
        if edited is not None:
            return Reconciled(edited, ["the root layout renders <WebVitals /> (web-vitals beacon)"])
        return Reconciled(
            existing,
            [
                f"{path}: render the web-vitals beacon once in the root layout, with\n"
                f'  import {{ WebVitals }} from "{module}";\n  and <WebVitals /> inside <body>'
            ],
        )

    return GeneratedFile(path, "", reconcile=reconcile)


def _yours(app: NextApp, path: str, body: str, what: str) -> GeneratedFile:
    """``path`` with ``body``, or, when the user has their own file there, kept as it is with
    a note showing what tower's version does."""
    if app.ours(path):
        return GeneratedFile(path, body)

    def reconcile(existing: str) -> Reconciled:
        return Reconciled(
            existing,
            [f"{path} is yours: tower leaves it as it is. {what} As tower writes it:\n{body}"],
        )

    return GeneratedFile(path, "", reconcile=reconcile)


def nextjs_files(spec: Spec, root: Path | None = None) -> list[GeneratedFile]:
    """The Next.js files for the app at ``root`` (its language, folders and config file)."""
    app = NextApp.of(root)
    names = set(spec.env.vars)
    database = "DATABASE_URL" in names
    probes = ""
    notes: list[str] = []
    if database:
        probes += _PROBE_DB
        notes.append('the database check uses the "pg" package: npm install pg @types/pg')
    if "STRIPE_SECRET_KEY" in names:
        probes += _PROBE_STRIPE
    if "NEXT_PUBLIC_SUPABASE_URL" in names:
        probes += _PROBE_SUPABASE
    health = _HEALTH_TS.format(
        name=spec.service.name,
        timeout_ms=max(100, int(spec.health.timeout * 1000)),
        pg_import=_PG_IMPORT if database else "",
        pg_pool=_PG_POOL if database else "",
        probes=probes.rstrip("\n"),
    )

    def code(path: str, text: str) -> str:
        return text if path.endswith((".ts", ".tsx")) else to_javascript(text)

    files: list[GeneratedFile] = []
    for url, text, extra in (
        (spec.health.readiness, health, tuple(notes)),
        (spec.health.liveness, _LIVE_TS, ()),
        (spec.health.metrics, _METRICS_TS, ()),
    ):
        path = app.route(url)
        if all(file.path != path for file in files):  # liveness == readiness: one route
            files.append(GeneratedFile(path, code(path, text), notes=extra))
    files.append(_config(spec, app))
    middleware = app.source("middleware")
    files.append(
        _yours(
            app,
            middleware,
            _middleware(spec, app, middleware),
            "It rate-limits the API (RateLimit headers, 429 with Retry-After)"
            + (" and sets the CSP nonce." if app.dynamic else "."),
        )
    )
    for stem, text in (
        ("instrumentation", _INSTRUMENTATION_TS),
        ("instrumentation-client", _INSTRUMENTATION_CLIENT_TS),
    ):
        path = app.source(stem)
        file = _yours(app, path, code(path, text), "Point Sentry.init's dsn at tower's DSN.")
        if stem == "instrumentation":
            file = GeneratedFile(
                file.path,
                file.content,
                reconcile=file.reconcile,
                notes=("error tracking uses @sentry/nextjs: npm install @sentry/nextjs",),
            )
        files.append(file)
    vitals = app.source("web-vitals", folder=f"{app.app_dir}/", jsx=True)
    files.append(_yours(app, vitals, code(vitals, _WEB_VITALS_TSX), "It sends web vitals."))
    layout = _layout(app, "./" + Path(vitals).stem)
    if layout is not None:
        files.append(layout)
    # `tower generate all` keeps every file of the app's own (routes, config, layout,
    # middleware); `tower generate nextjs` brings them in line.
    return [replace(file, generator="nextjs") for file in files]

"""Next.js files: health and metrics routes, hardened next.config, CSP-nonce middleware.

The readiness route answers in the IETF health-check format
(``application/health+json``: ``status`` pass/warn/fail, ``checks`` keyed
``component:measurement``) with real checks of the database, Stripe and
Supabase, each under its own timeout, so one slow dependency cannot hang it.
Only the database is critical: the app cannot serve without it, so its failure
is 503. Stripe or Supabase down is ``warn`` with 200: a third-party outage must
not take every instance out of routing.
"""

from __future__ import annotations

import json

from controltower.generate.files import GeneratedFile
from controltower.spec import Spec

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
    probes.push(
      timed("datastore", true, async () => {
        await pool.query("SELECT 1");
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

_LIVE_TS = """// Liveness: the process answers. No dependency is called here.
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

_METRICS_TS = """// Prometheus metrics of this Node process, scraped by Fly ([metrics] in fly.toml).
// Written by `tower generate nextjs`.
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

_CONFIG_MJS = """// next.config for {name}, written by `tower generate nextjs`.
// The Content-Security-Policy is set per request with a nonce by middleware.ts.

/** @type {{import('next').NextConfig}} */
const securityHeaders = {headers};

const nextConfig = {{
  output: "standalone",
  poweredByHeader: false,
  productionBrowserSourceMaps: false,
  reactStrictMode: true,
  async headers() {{
    return [{{ source: "/:path*", headers: securityHeaders }}];
  }},
}};

export default nextConfig;
"""

_MIDDLEWARE_TS = """// A fresh CSP nonce for every page request, as the Next.js docs describe.
// Written by `tower generate nextjs`. Read the nonce in a layout with headers().get("x-nonce").
import {{ NextResponse, type NextRequest }} from "next/server";

export function middleware(request: NextRequest): NextResponse {{
  const nonce = Buffer.from(crypto.randomUUID()).toString("base64");
  const dev = process.env.NODE_ENV === "development";
  const policy = [
    "default-src 'self'",
    `script-src 'self' 'nonce-${{nonce}}' 'strict-dynamic'${{dev ? " 'unsafe-eval'" : ""}}`,
    `style-src 'self' 'nonce-${{nonce}}'`,
    "img-src 'self' blob: data:",
    "font-src 'self'",
    "connect-src 'self'{connect}",
    "object-src 'none'",
    "base-uri 'self'",
    "form-action 'self'",
    "frame-ancestors {frame_ancestors}",
    "upgrade-insecure-requests",{trusted_types}{report}
  ].join("; ");
  const headers = new Headers(request.headers);
  headers.set("x-nonce", nonce);
  headers.set("{csp_header}", policy);
  const response = NextResponse.next({{ request: {{ headers }} }});
  response.headers.set("{csp_header}", policy);
  return response;
}}

export const config = {{
  matcher: [
    {{
      source: "/((?!api|_next/static|_next/image|favicon.ico).*)",
      missing: [
        {{ type: "header", key: "next-router-prefetch" }},
        {{ type: "header", key: "purpose", value: "prefetch" }},
      ],
    }},
  ],
}};
"""


def security_headers(spec: Spec) -> list[dict[str, str]]:
    security = spec.security
    return [
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


def nextjs_files(spec: Spec, *, app_dir: str = "app") -> list[GeneratedFile]:
    names = set(spec.env.vars)
    database = "DATABASE_URL" in names or "SUPABASE_DB_PASSWORD" in names
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
    connect = ""
    if "NEXT_PUBLIC_SUPABASE_URL" in names:
        connect += " https://*.supabase.co wss://*.supabase.co"
    if any(n.startswith("NEXT_PUBLIC_POSTHOG") for n in names):
        connect += " https://*.posthog.com"
    if any(n.startswith(("STRIPE", "NEXT_PUBLIC_STRIPE")) for n in names):
        connect += " https://api.stripe.com"
    security = spec.security
    middleware = _MIDDLEWARE_TS.format(
        connect=connect,
        frame_ancestors=security.frame_ancestors,
        trusted_types=(
            "\n    \"require-trusted-types-for 'script'\"," if security.trusted_types else ""
        ),
        report=f'\n    "report-uri {security.report_uri}",' if security.report_uri else "",
        csp_header=(
            "Content-Security-Policy-Report-Only"
            if security.csp_report_only
            else "Content-Security-Policy"
        ),
    )
    config = _CONFIG_MJS.format(
        name=spec.service.name, headers=json.dumps(security_headers(spec), indent=2)
    )
    live = spec.health.liveness.strip("/")
    ready = spec.health.readiness.strip("/")
    return [
        GeneratedFile(f"{app_dir}/{ready}/route.ts", health, notes=tuple(notes)),
        GeneratedFile(f"{app_dir}/{live}/route.ts", _LIVE_TS),
        GeneratedFile(f"{app_dir}/api/metrics/route.ts", _METRICS_TS),
        GeneratedFile("next.config.mjs", config),
        GeneratedFile("middleware.ts", middleware),
    ]

"""The ingestion endpoints: Sentry ``envelope`` and ``store``, and CSP reports.

``POST /api/<project id>/envelope/``  Sentry envelope (events; other items ignored)
``POST /api/<project id>/store/``     one Sentry event as JSON
``POST /api/<project id>/security/``  CSP reports, ``report-uri`` or Reporting API
``POST /api/v1/vitals/<project>``     web-vitals beacons (project id or name; see ``vitals``)

Work before authentication is bounded: a DSN key in ``X-Sentry-Auth`` or
``?sentry_key=`` is checked before the body is read; an envelope that carries
its key only in its header line (a tunnel) has at most the first
``HEADER_PREFIX`` decoded bytes looked at before the key is checked. Bodies are
then read up to ``max_body_size`` and decoded on a small dedicated thread pool,
off the event loop, under the caps of ``controltower.ingest.limits``. Then the
project's rate limit, parsing, normalization and scrubbing, and the events are
queued: 200 ``{"id": "<event id>"}`` once queued, 429 with Retry-After when the
project is over its limit or the buffer is full.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from controltower.clock import system_clock
from controltower.ingest.accounting import IngestAccount
from controltower.ingest.buffer import IngestBuffer
from controltower.ingest.csp import parse_csp, store_violations
from controltower.ingest.decode import decode_prefix, decompress
from controltower.ingest.envelope import envelope_header, parse_envelope
from controltower.ingest.errors import AuthFailed, RateLimited, Rejected, TooLarge
from controltower.ingest.event import ParsedEvent, normalize_event_id, parse_event
from controltower.ingest.limits import IngestLimits, load_object
from controltower.ingest.metrics import IngestMetrics
from controltower.ingest.projects import ProjectInfo, find_project
from controltower.ingest.ratelimit import RateLimiter
from controltower.ingest.sentry_auth import key_from_dsn, public_key
from controltower.ingest.spool import Spool
from controltower.ingest.vitals import VitalsPolicy, parse_vitals, store_vitals
from controltower.store import Store
from controltower.typing import Clock

Endpoint = Callable[[Request], Awaitable[Response]]
EVENT_ITEMS = frozenset({"event"})
HEADER_PREFIX = 16 * 1024
_BUFFER_FULL_RETRY = 5
_UNKNOWN_KEY_TTL = 5.0
_UNKNOWN_KEYS_KEPT = 10_000
# Decoding runs here, never on the event loop; two threads bound the memory a
# burst of compressed bodies can hold at once.
_DECODERS = ThreadPoolExecutor(max_workers=2, thread_name_prefix="tower-decode")
# Browser SDKs post from the app's origin: let them, and let them read the rate-limit answer.
CORS_HEADERS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Expose-Headers": "X-Sentry-Rate-Limits, Retry-After",
}
PREFLIGHT_HEADERS = {
    **CORS_HEADERS,
    "Access-Control-Allow-Methods": "POST, OPTIONS",
    "Access-Control-Allow-Headers": (
        "Content-Type, Content-Encoding, X-Sentry-Auth, Authorization, sentry-trace, baggage"
    ),
    "Access-Control-Max-Age": "3600",
}
VITALS_PREFLIGHT = {
    "Access-Control-Allow-Methods": "POST, OPTIONS",
    "Access-Control-Allow-Headers": "Content-Type, Content-Encoding, X-Sentry-Auth",
    "Access-Control-Max-Age": "3600",
}


@dataclass
class Ingestion:
    """What the endpoints share: the store, the buffer, limits and the project keys."""

    store: Store
    buffer: IngestBuffer
    metrics: IngestMetrics
    limits: IngestLimits = field(default_factory=IngestLimits)
    account: IngestAccount | None = None
    spool: Spool | None = None
    clock: Clock = system_clock
    limiter: RateLimiter = field(default_factory=RateLimiter)
    vitals_limiter: RateLimiter = field(default_factory=RateLimiter)
    vitals_policies: dict[str, VitalsPolicy] = field(default_factory=dict)
    _by_key: dict[str, ProjectInfo] = field(default_factory=dict)
    _unknown: dict[str, float] = field(default_factory=dict)
    _accepted: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.account is None:
            self.account = IngestAccount(self.buffer)

    @property
    def ledger(self) -> IngestAccount:
        """Where every accepted event is (see ``controltower.ingest.accounting``)."""
        assert self.account is not None
        return self.account

    def set_projects(self, projects: list[ProjectInfo]) -> None:
        self._by_key = {project.public_key: project for project in projects}

    async def project(self, project_id: int | str, key: str) -> ProjectInfo:
        """The project whose DSN key is ``key``; a key not seen yet is looked up in the
        store (a project created while the server runs works at once), and an unknown
        key is remembered for a while so a flood of bad keys costs few queries.
        ``project_id`` may also be the project's name."""
        if not key:
            raise AuthFailed("no DSN key: send X-Sentry-Auth or ?sentry_key=")
        project = self._by_key.get(key)
        if project is None and len(key) <= 128:
            now = time.monotonic()
            if now - self._unknown.get(key, -_UNKNOWN_KEY_TTL) >= _UNKNOWN_KEY_TTL:
                project = await asyncio.to_thread(find_project, self.store, key)
                if project is not None:
                    self._by_key[key] = project
                else:
                    if len(self._unknown) >= _UNKNOWN_KEYS_KEPT:
                        self._unknown.clear()
                    self._unknown[key] = now
        if project is None or project_id not in (project.id, project.name):
            raise AuthFailed("the DSN key is not valid for this project", status=403)
        return project

    async def read(self, request: Request) -> bytes:
        """The body as sent, refused past ``max_body_size`` without reading further."""
        cap = self.limits.max_body_size
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > cap:
            raise _too_big(cap)
        chunks: list[bytes] = []
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > cap:
                raise _too_big(cap)
            chunks.append(chunk)
        return b"".join(chunks)

    async def decode(self, request: Request, raw: bytes) -> bytes:
        """The body decoded under ``max_event_size`` and ``max_decompression_ratio``."""
        encoding = request.headers.get("content-encoding", "")
        if not encoding or encoding.strip().lower() == "identity":
            return raw
        return await asyncio.get_running_loop().run_in_executor(
            _DECODERS,
            functools.partial(
                decompress,
                raw,
                encoding,
                limit=self.limits.max_event_size,
                ratio=self.limits.max_decompression_ratio,
            ),
        )

    async def tunnel_key(self, request: Request, raw: bytes) -> str:
        """The key in an envelope's header line, decoding no more than ``HEADER_PREFIX``."""
        encoding = request.headers.get("content-encoding", "")
        if not encoding or encoding.strip().lower() == "identity":
            head = raw[:HEADER_PREFIX]
        else:
            head = await asyncio.get_running_loop().run_in_executor(
                _DECODERS, decode_prefix, raw, encoding, HEADER_PREFIX
            )
        if b"\n" not in head and len(head) >= HEADER_PREFIX:
            raise AuthFailed("no DSN key: send X-Sentry-Auth or ?sentry_key=")
        dsn = envelope_header(head, self.limits).get("dsn")
        return key_from_dsn(dsn) if isinstance(dsn, str) else ""

    def limit(self, project: ProjectInfo, count: int) -> None:
        wait = self.limiter.allow(project.id, project.rate_limit, count)
        if wait:
            raise RateLimited(
                f"project {project.name} is over its rate limit of {project.rate_limit}/min",
                retry_after=wait,
            )

    def vitals_policy(self, ref: str) -> VitalsPolicy:
        """The vitals settings of the project named (or numbered) ``ref`` in the path."""
        policy = self.vitals_policies.get(ref)
        if policy is None and ref.isdigit():
            for project in self._by_key.values():
                if project.id == int(ref):
                    policy = self.vitals_policies.get(project.name)
        return policy or VitalsPolicy()

    def limit_vitals(self, project: ProjectInfo, count: int) -> None:
        rate = self.vitals_policy(project.name).rate_limit
        wait = self.vitals_limiter.allow(project.id, rate, count)
        if wait:
            raise RateLimited(
                f"project {project.name} is over its web-vitals rate limit of {rate}/min "
                "(vitals_rate_limit)",
                retry_after=wait,
            )

    def queue(self, project: ProjectInfo, events: list[ParsedEvent]) -> None:
        if not self.buffer.offer(events):
            raise RateLimited("the ingest buffer is full", retry_after=_BUFFER_FULL_RETRY)
        counter = self._accepted.get(project.name)
        if counter is None:
            counter = self._accepted[project.name] = self.metrics.accepted.labels(project.name)
        counter.inc(len(events))


def _too_big(cap: int) -> TooLarge:
    return TooLarge(f"the body exceeds {cap} bytes ([server] max_body_size)", cap="max_body_size")


_REASONS = {401: "auth", 403: "auth", 413: "too_large", 415: "encoding", 429: "rate_limited"}


def _failure(exc: Rejected, metrics: IngestMetrics) -> Response:
    metrics.rejected.labels(exc.cap or _REASONS.get(exc.status, "invalid")).inc()
    headers = {}
    if exc.retry_after:
        headers["Retry-After"] = str(exc.retry_after)
        headers["X-Sentry-Rate-Limits"] = f"{exc.retry_after}::organization"
    body: dict[str, str] = {"detail": exc.message}
    if exc.cap:
        body["cap"] = exc.cap
    return JSONResponse(body, status_code=exc.status, headers=headers)


def _accepted(event_id: str) -> Response:
    """200 ``{"id": "<event id>"}``; ids are 32 hex digits, so no JSON encoder is needed."""
    body = b'{"id":"%s"}' % event_id.encode() if event_id else b"{}"
    return Response(body, media_type="application/json")


def _ingestion(request: Request) -> Ingestion:
    ingestion: Ingestion = request.app.state.ingestion
    return ingestion


def _project_id(request: Request) -> int:
    value: int = request.path_params["project_id"]
    return value


def _event_size(ingestion: Ingestion, size: int) -> None:
    cap = ingestion.limits.max_event_size
    if size > cap:
        raise TooLarge(
            f"an event exceeds {cap} bytes ([server] max_event_size)", cap="max_event_size"
        )


async def envelope_endpoint(request: Request) -> Response:
    ingestion = _ingestion(request)
    try:
        key = public_key(request.headers, request.query_params)
        project = await ingestion.project(_project_id(request), key) if key else None
        raw = await ingestion.read(request)
        if project is None:
            key = await ingestion.tunnel_key(request, raw)
            project = await ingestion.project(_project_id(request), key)
        data = await ingestion.decode(request, raw)
        envelope = parse_envelope(data, ingestion.limits)
        now = ingestion.clock.now()
        events: list[ParsedEvent] = []
        for item in envelope.items:
            if item.type not in EVENT_ITEMS:
                continue
            _event_size(ingestion, len(item.payload))
            events.append(
                parse_event(
                    item.json(ingestion.limits),
                    project_id=project.id,
                    received_at=now,
                    event_id=envelope.headers.get("event_id"),
                )
            )
        if events:
            ingestion.limit(project, len(events))
            ingestion.queue(project, events)
    except Rejected as exc:
        return _failure(exc, ingestion.metrics)
    event_id = events[0].event_id if events else envelope.headers.get("event_id")
    return _accepted(normalize_event_id(event_id) if event_id else "")


async def store_endpoint(request: Request) -> Response:
    ingestion = _ingestion(request)
    try:
        key = public_key(request.headers, request.query_params)
        project = await ingestion.project(_project_id(request), key)
        data = await ingestion.decode(request, await ingestion.read(request))
        _event_size(ingestion, len(data))
        payload = load_object(data, ingestion.limits, "event")
        event = parse_event(payload, project_id=project.id, received_at=ingestion.clock.now())
        ingestion.limit(project, 1)
        ingestion.queue(project, [event])
    except Rejected as exc:
        return _failure(exc, ingestion.metrics)
    return _accepted(event.event_id)


async def security_endpoint(request: Request) -> Response:
    ingestion = _ingestion(request)
    try:
        key = public_key(request.headers, request.query_params)
        project = await ingestion.project(_project_id(request), key)
        data = await ingestion.decode(request, await ingestion.read(request))
        violations = parse_csp(data, ingestion.limits)
        if violations:
            ingestion.limit(project, len(violations))
            await asyncio.to_thread(
                store_violations, ingestion.store, project.id, violations, ingestion.clock.now()
            )
            ingestion.metrics.csp_reports.inc(len(violations))
    except Rejected as exc:
        return _failure(exc, ingestion.metrics)
    return Response(status_code=204)


def _vitals_ref(request: Request) -> int | str:
    ref: str = request.path_params["project"]
    return int(ref) if ref.isdigit() else ref


def _origin_denied(request: Request, ingestion: Ingestion) -> Response | None:
    origin = request.headers.get("origin", "")
    policy = ingestion.vitals_policy(request.path_params["project"])
    if origin and not policy.allows(origin):
        ingestion.metrics.rejected.labels("origin").inc()
        return JSONResponse(
            {"detail": f"origin {origin[:200]} is not in the project's allowed_origins"},
            status_code=403,
        )
    return None


async def vitals_endpoint(request: Request) -> Response:
    """Web-vitals metrics (one, a list, or ``{"metrics": [...]}``): 200 ``{"accepted": n}``."""
    ingestion = _ingestion(request)
    denied = _origin_denied(request, ingestion)
    if denied is not None:
        return denied
    try:
        key = public_key(request.headers, request.query_params)
        project = await ingestion.project(_vitals_ref(request), key)
        data = await ingestion.decode(request, await ingestion.read(request))
        _event_size(ingestion, len(data))
        beacons = parse_vitals(data, ingestion.limits)
        if beacons:
            ingestion.limit_vitals(project, len(beacons))
            await asyncio.to_thread(
                store_vitals, ingestion.store, project.id, beacons, ingestion.clock.now()
            )
            ingestion.metrics.vitals.inc(len(beacons))
    except Rejected as exc:
        return _failure(exc, ingestion.metrics)
    return JSONResponse({"accepted": len(beacons)})


def vitals_cors(endpoint: Endpoint) -> Endpoint:
    """CORS for beacons: the preflight and every answer name the request's origin when the
    project allows it (``allowed_origins``; empty allows any)."""

    @functools.wraps(endpoint)
    async def wrapped(request: Request) -> Response:
        origin = request.headers.get("origin", "")
        if request.method == "OPTIONS":
            denied = _origin_denied(request, _ingestion(request))
            if denied is not None:
                return denied
            response = Response(status_code=204, headers=VITALS_PREFLIGHT)
        else:
            response = await endpoint(request)
        response.headers["Access-Control-Allow-Origin"] = origin or "*"
        response.headers["Access-Control-Expose-Headers"] = "Retry-After"
        response.headers["Vary"] = "Origin"
        return response

    return wrapped


def cors(endpoint: Endpoint) -> Endpoint:
    """Answer CORS preflights, and let browsers read every answer of ``endpoint``."""

    @functools.wraps(endpoint)
    async def wrapped(request: Request) -> Response:
        if request.method == "OPTIONS":
            return Response(status_code=204, headers=PREFLIGHT_HEADERS)
        response = await endpoint(request)
        response.headers.update(CORS_HEADERS)
        return response

    return wrapped


routes = [
    Route("/api/{project_id:int}/envelope/", cors(envelope_endpoint), methods=["POST", "OPTIONS"]),
    Route("/api/{project_id:int}/store/", cors(store_endpoint), methods=["POST", "OPTIONS"]),
    Route("/api/{project_id:int}/security/", cors(security_endpoint), methods=["POST", "OPTIONS"]),
    Route("/api/v1/vitals/{project}", vitals_cors(vitals_endpoint), methods=["POST", "OPTIONS"]),
]

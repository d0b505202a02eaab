"""appkit: health endpoints, dependency checks, metrics, security headers and error capture.

For users' Python apps (Starlette, FastAPI, any ASGI app; Flask, Django, any
WSGI app). Importing it is light: client libraries (psycopg, redis, httpx)
are imported only when a check runs.
"""

from __future__ import annotations

from controltower.appkit import checks
from controltower.appkit._asgi import HealthMiddleware
from controltower.appkit._check import Check, CheckFailed, FunctionCheck, Observation, Status, check
from controltower.appkit._errors import (
    ErrorCaptureMiddleware,
    ErrorEvent,
    ErrorHandler,
    ErrorReporter,
    capture_errors,
)
from controltower.appkit._frameworks import secure
from controltower.appkit._headers import (
    HeaderPolicy,
    SecurityHeaders,
    SecurityHeadersWSGI,
    csp_nonce,
)
from controltower.appkit._health import CheckResult, Health, HealthEndpoint, HealthReport
from controltower.appkit._metrics import Metrics, MetricsMiddleware, MetricsWSGI
from controltower.appkit._ratelimit import (
    MemoryBackend,
    PostgresBackend,
    RateLimit,
    RateLimitWSGI,
    RedisBackend,
)
from controltower.appkit._redact import redact
from controltower.appkit._sinks import (
    CallbackSink,
    DsnSink,
    JsonlSink,
    Sink,
    StoreSink,
    envelope,
    parse_dsn,
)
from controltower.appkit._wsgi import HealthWSGI

__all__ = [
    "CallbackSink",
    "Check",
    "CheckFailed",
    "CheckResult",
    "DsnSink",
    "ErrorCaptureMiddleware",
    "ErrorEvent",
    "ErrorHandler",
    "ErrorReporter",
    "FunctionCheck",
    "HeaderPolicy",
    "Health",
    "HealthEndpoint",
    "HealthMiddleware",
    "HealthReport",
    "HealthWSGI",
    "JsonlSink",
    "MemoryBackend",
    "Metrics",
    "MetricsMiddleware",
    "MetricsWSGI",
    "Observation",
    "PostgresBackend",
    "RateLimit",
    "RateLimitWSGI",
    "RedisBackend",
    "SecurityHeaders",
    "SecurityHeadersWSGI",
    "Sink",
    "Status",
    "StoreSink",
    "capture_errors",
    "check",
    "checks",
    "csp_nonce",
    "envelope",
    "parse_dsn",
    "redact",
    "secure",
]

"""appkit: health endpoints, dependency checks, metrics, security headers and error capture.

For users' Python apps (Starlette, FastAPI, any ASGI app; Flask, Django, any
WSGI app). Importing it is light: every name below is loaded on first use (PEP 562),
so ``import controltower.appkit`` loads neither pydantic nor
prometheus_client, and client libraries (psycopg, redis, httpx) are imported
only when a check runs.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from controltower.appkit import checks
    from controltower.appkit._asgi import HealthMiddleware
    from controltower.appkit._check import (
        Check,
        CheckFailed,
        FunctionCheck,
        Observation,
        Status,
        check,
    )
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

_LAZY = {
    "HealthMiddleware": "controltower.appkit._asgi",
    "Check": "controltower.appkit._check",
    "CheckFailed": "controltower.appkit._check",
    "FunctionCheck": "controltower.appkit._check",
    "Observation": "controltower.appkit._check",
    "Status": "controltower.appkit._check",
    "check": "controltower.appkit._check",
    "ErrorCaptureMiddleware": "controltower.appkit._errors",
    "ErrorEvent": "controltower.appkit._errors",
    "ErrorHandler": "controltower.appkit._errors",
    "ErrorReporter": "controltower.appkit._errors",
    "capture_errors": "controltower.appkit._errors",
    "secure": "controltower.appkit._frameworks",
    "HeaderPolicy": "controltower.appkit._headers",
    "SecurityHeaders": "controltower.appkit._headers",
    "SecurityHeadersWSGI": "controltower.appkit._headers",
    "csp_nonce": "controltower.appkit._headers",
    "CheckResult": "controltower.appkit._health",
    "Health": "controltower.appkit._health",
    "HealthEndpoint": "controltower.appkit._health",
    "HealthReport": "controltower.appkit._health",
    "Metrics": "controltower.appkit._metrics",
    "MetricsMiddleware": "controltower.appkit._metrics",
    "MetricsWSGI": "controltower.appkit._metrics",
    "MemoryBackend": "controltower.appkit._ratelimit",
    "PostgresBackend": "controltower.appkit._ratelimit",
    "RateLimit": "controltower.appkit._ratelimit",
    "RateLimitWSGI": "controltower.appkit._ratelimit",
    "RedisBackend": "controltower.appkit._ratelimit",
    "redact": "controltower.appkit._redact",
    "CallbackSink": "controltower.appkit._sinks",
    "DsnSink": "controltower.appkit._sinks",
    "JsonlSink": "controltower.appkit._sinks",
    "Sink": "controltower.appkit._sinks",
    "StoreSink": "controltower.appkit._sinks",
    "envelope": "controltower.appkit._sinks",
    "parse_dsn": "controltower.appkit._sinks",
    "HealthWSGI": "controltower.appkit._wsgi",
    "checks": "controltower.appkit.checks",
}

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


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'controltower.appkit' has no attribute {name!r}")
    loaded = importlib.import_module(module)
    value = loaded if name == "checks" else getattr(loaded, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)

from __future__ import annotations

from pydantic import Field

from controltower.spec.base import Section, UrlPath
from controltower.units import Duration


class HealthSpec(Section):
    """``[health]``: the app's health endpoints and what they must answer."""

    liveness: UrlPath = "/api/health/live"
    readiness: UrlPath = "/api/health"
    simple: UrlPath | None = None
    metrics: UrlPath = "/metrics"
    """Where the app serves Prometheus text: `tower check` probes it, `tower generate` writes
    its route (Next.js) and fly.toml's ``[metrics]``."""
    required_fields: list[str] = Field(default_factory=lambda: ["status"])
    timeout: Duration = 1.0
    latency_budget: Duration = 0.1
    samples: int = Field(default=20, ge=1, le=1000)

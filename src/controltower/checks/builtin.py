"""Importing this module registers every built-in check."""

from __future__ import annotations

from controltower.checks.live import (
    browser,
    exposure,
    headers,
    health,
    lighthouse,
    nextbuilds,
    ratelimit,
    transport,
)
from controltower.checks.static import (
    backup,
    docker,
    env,
    fly,
    hadolint,
    nextjs,
    nextscale,
    vercel,
    vulns,
    watchdog,
)
from controltower.load import check as load

__all__ = [
    "backup",
    "browser",
    "docker",
    "env",
    "exposure",
    "fly",
    "hadolint",
    "headers",
    "health",
    "lighthouse",
    "load",
    "nextbuilds",
    "nextjs",
    "nextscale",
    "ratelimit",
    "transport",
    "vercel",
    "vulns",
    "watchdog",
]

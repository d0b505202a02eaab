"""Post-deploy smoke checks: URLs with conditions, through the router."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

import httpx

from controltower.conditions import ConditionResult, parse_condition
from controltower.spec.deploy import SmokeSpec

_DEFAULT = parse_condition("status < 400")


@dataclass(frozen=True)
class SmokeResult:
    name: str
    url: str
    results: list[ConditionResult]
    error: str = ""

    @property
    def ok(self) -> bool:
        return not self.error and all(r.ok for r in self.results)

    @property
    def message(self) -> str:
        if self.error:
            return f"{self.name} ({self.url}): {self.error}"
        failed = [r.message for r in self.results if not r.ok]
        return f"{self.name} ({self.url}): " + ("; ".join(failed) if failed else "passed")


def smoke_url(smoke: SmokeSpec, base: str | None) -> str:
    if smoke.url:
        return smoke.url
    return (base or "").rstrip("/") + smoke.path


def run_smoke(smoke: SmokeSpec, base: str | None, client: httpx.Client) -> SmokeResult:
    url = smoke_url(smoke, base)
    name = smoke.name or f"{smoke.method} {smoke.url or smoke.path}"
    started = time.perf_counter()
    try:
        response = client.request(smoke.method, url)
    except httpx.HTTPError as exc:
        return SmokeResult(name, url, [], f"request failed: {type(exc).__name__}: {exc}")
    body: Any
    try:
        body = response.json()
    except (json.JSONDecodeError, ValueError):
        body = response.text
    context = {
        "status": response.status_code,
        "latency": time.perf_counter() - started,
        "body": body,
        "header": dict(response.headers),
    }
    conditions = smoke.conditions or [_DEFAULT]
    return SmokeResult(name, url, [c.evaluate(context) for c in conditions])

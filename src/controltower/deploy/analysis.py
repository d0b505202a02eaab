"""Analysis of live metrics: conditions on the new release, alone and against the stable one.

The context a condition sees::

    requests errors error_rate p50 p95 p99          the new release, over the window
    stable.requests stable.error_rate stable.p95 ... the stable release, same window
    error_rate_delta  p95_ratio                      new minus stable, new over stable
    <name>                                           each [deploy.analysis.queries] result
    new_issues error_events error_events_rate        tower's own error ingestion, by release
    vitals.lcp.p75 vitals.cls.count ...              web-vitals beacons of the release, window

Too little traffic (fewer than ``min_requests``) makes the verdict
inconclusive: the deploy waits rather than passes. Conditions on the stable
release are left out while the stable release has too little traffic.
"""

from __future__ import annotations

import os
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx
from sqlalchemy import distinct, func, select

from controltower.conditions import ConditionResult
from controltower.deploy.drivers.base import TargetMetrics
from controltower.ingest.vitals import vitals_context
from controltower.spec.deploy import AnalysisSpec
from controltower.store import Store
from controltower.store.models.ingest import ErrorEvent, ErrorIssue

PASS, FAIL, INCONCLUSIVE = "pass", "fail", "inconclusive"
INGEST_NAMES = ("new_issues", "error_events", "error_events_rate")
_STABLE_SUBJECTS = ("stable", "error_rate_delta", "p95_ratio")


@dataclass(frozen=True)
class Verdict:
    outcome: str
    message: str
    results: list[ConditionResult] = field(default_factory=list)
    context: dict[str, Any] = field(default_factory=dict)

    @property
    def failed(self) -> list[ConditionResult]:
        return [r for r in self.results if not r.ok]


def build_context(
    new: TargetMetrics | None, stable: TargetMetrics | None, extra: dict[str, Any] | None = None
) -> dict[str, Any]:
    context: dict[str, Any] = dict(new.context()) if new else {}
    if stable is not None:
        context["stable"] = stable.context()
        if new is not None:
            context["error_rate_delta"] = new.error_rate - stable.error_rate
            if new.p95 is not None and stable.p95:
                context["p95_ratio"] = new.p95 / stable.p95
    context.update(extra or {})
    return context


def combine(router: TargetMetrics | None, synthetic: TargetMetrics) -> TargetMetrics | None:
    """What the router saw plus the synthetic traffic sent straight to the release."""
    if router is None or router.requests == 0:
        return synthetic if synthetic.requests or router is None else router
    if synthetic.requests == 0:
        return router
    requests = router.requests + synthetic.requests
    errors = router.errors + synthetic.errors
    larger = router if router.requests >= synthetic.requests else synthetic
    return TargetMetrics(
        requests=requests,
        errors=errors,
        error_rate=errors / requests,
        p50=larger.p50,
        p95=larger.p95,
        p99=larger.p99,
        source=" + ".join(s for s in (router.source, synthetic.source) if s),
    )


def uses_ingest(spec: AnalysisSpec) -> bool:
    return any(c.subject in INGEST_NAMES for c in spec.conditions)


def uses_vitals(spec: AnalysisSpec) -> bool:
    return any(c.subject.split(".")[0] == "vitals" for c in spec.conditions)


def vitals_values(
    store: Store, releases: Collection[str], *, window_since: datetime, min_samples: int
) -> dict[str, Any]:
    """p75 web vitals the release's pages reported in the window (matched by the beacons'
    ``release``); a metric with fewer than ``min_samples`` is left out, so a condition on
    it is inconclusive rather than judged on a handful of page loads."""
    values = vitals_context(store, since=window_since, releases=list(releases))["vitals"]
    return {"vitals": {k: v for k, v in values.items() if int(v["count"]) >= min_samples}}


def ingest_values(
    store: Store,
    releases: Collection[str],
    *,
    release_since: datetime,
    window_since: datetime,
    requests: int | None,
) -> dict[str, Any]:
    """Error events the release's SDKs sent to tower (matched by the SDK's ``release``).

    ``new_issues``: issues first seen since the release was created, with an event
    from it; ``error_events``: its events over the window; ``error_events_rate``:
    those per request the release answered in the window (0 requests: left out).
    """
    names = list(releases)
    with store.session() as session:
        events = session.scalar(
            select(func.count(ErrorEvent.id)).where(
                ErrorEvent.release.in_(names), ErrorEvent.received_at >= window_since
            )
        )
        new = session.scalar(
            select(func.count(distinct(ErrorIssue.id)))
            .join(ErrorEvent, ErrorEvent.issue_id == ErrorIssue.id)
            .where(ErrorEvent.release.in_(names), ErrorIssue.first_seen >= release_since)
        )
    values: dict[str, Any] = {"new_issues": int(new or 0), "error_events": int(events or 0)}
    if requests:
        values["error_events_rate"] = int(events or 0) / requests
    return values


def prometheus_values(
    spec: AnalysisSpec, variables: dict[str, str], *, client: httpx.Client | None = None
) -> tuple[dict[str, Any], list[str]]:
    """Run each named PromQL query; its first sample's value, by name.

    ``{release}``, ``{version}`` and ``{instances}`` (the release's instance ids
    joined by ``|``, for a regex matcher) are filled in. The token in
    ``$<prometheus_token_env>`` is sent as a bearer token.
    """
    if not spec.prometheus_url or not spec.queries:
        return {}, []
    values: dict[str, Any] = {}
    problems: list[str] = []
    token = os.environ.get(spec.prometheus_token_env, "") if spec.prometheus_token_env else ""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    http = client or httpx.Client(timeout=5.0)
    try:
        for name, query in spec.queries.items():
            text = query
            for key, value in variables.items():
                text = text.replace("{" + key + "}", value)
            try:
                response = http.get(
                    spec.prometheus_url.rstrip("/") + "/api/v1/query",
                    params={"query": text},
                    headers=headers,
                )
                data = response.json()
            except (httpx.HTTPError, ValueError) as exc:
                problems.append(f"query {name}: {type(exc).__name__}")
                continue
            result = (
                data.get("data", {}).get("result", []) if data.get("status") == "success" else []
            )
            if not result:
                problems.append(f"query {name}: no data")
                continue
            try:
                values[name] = float(result[0]["value"][1])
            except (KeyError, IndexError, TypeError, ValueError):
                problems.append(f"query {name}: not a number")
    finally:
        if client is None:
            http.close()
    return values, problems


def evaluate(spec: AnalysisSpec, context: dict[str, Any]) -> Verdict:
    """Pass, fail or inconclusive, with a message that names each failed condition."""
    if not spec.conditions:
        return Verdict(PASS, "no analysis conditions", [], context)
    requests = context.get("requests")
    if requests is not None and int(requests) < spec.min_requests:
        return Verdict(
            INCONCLUSIVE,
            f"inconclusive: {requests} requests reached the new release "
            f"(at least {spec.min_requests} needed)",
            [],
            context,
        )
    stable_ok = int(context.get("stable", {}).get("requests", 0)) >= max(spec.min_requests, 1)
    results: list[ConditionResult] = []
    missing: list[str] = []
    for condition in spec.conditions:
        subject = condition.subject
        if subject.startswith(_STABLE_SUBJECTS) and not stable_ok:
            continue
        result = condition.evaluate(context)
        if result.observed is None and not result.ok:
            missing.append(subject)
            continue
        results.append(result)
    failed = [r for r in results if not r.ok]
    if failed:
        return Verdict(FAIL, "; ".join(r.message for r in failed), results, context)
    if missing:
        return Verdict(
            INCONCLUSIVE, "inconclusive: no value yet for " + ", ".join(missing), results, context
        )
    shown = "; ".join(r.message for r in results)
    return Verdict(PASS, shown or "passed", results, context)

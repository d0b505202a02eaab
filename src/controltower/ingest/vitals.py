"""Web-vitals beacons: parsed, stored one row per page load and metric, read as p75.

A beacon is what the ``web-vitals`` library's callbacks (``onLCP``, ``onINP``,
``onCLS``, ``onFCP``, ``onTTFB``; Next.js ``useReportWebVitals``) hand over, plus
where and what ran::

    {"name": "LCP", "value": 1840.5, "id": "v4-1733222400000-1234567890123",
     "rating": "good", "navigationType": "navigate",
     "page": "/pricing", "release": "web@1.4.2"}

A body is one such object, a JSON list of them, or ``{"metrics": [...]}`` with
``page``/``release`` given once for all. ``url`` may stand for ``page``: only
its path is kept (no query, fragment or credentials). A later report of the
same ``id`` and ``name`` replaces the value (web-vitals reports CLS and INP
again as they grow), so each page load counts once. Percentiles are computed
from the stored values with linear interpolation between closest ranks.
"""

from __future__ import annotations

import math
import secrets
from collections import defaultdict
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from controltower.ingest.errors import Rejected, TooLarge
from controltower.ingest.limits import IngestLimits, load_json
from controltower.ingest.scrub import scrub_text
from controltower.store import Store
from controltower.store.models.ingest import Project
from controltower.store.models.vitals import VITAL_NAMES, WebVital

if TYPE_CHECKING:
    from controltower.spec.monitors import MonitorSpec

MAX_BEACONS = 200
"""Metrics in one body; more is answered 413."""
MAX_VALUE = 3_600_000.0
"""The largest value kept (an hour in milliseconds); larger is answered 400."""
SUMMARY_ROWS = 200_000
"""The most rows one summary reads (the newest first)."""
_FIELD_CAPS = {"id": 100, "rating": 20, "navigationType": 30, "release": 200}
_PAGE_CAP = 300


@dataclass(frozen=True)
class Beacon:
    name: str
    value: float
    metric_id: str
    rating: str = ""
    navigation_type: str = ""
    page: str = ""
    release: str = ""


@dataclass(frozen=True)
class VitalsPolicy:
    """A project's vitals settings: the origins browsers may post from (empty: any),
    and beacons per minute."""

    allowed_origins: tuple[str, ...] = ()
    rate_limit: int = 6000

    def allows(self, origin: str) -> bool:
        return (
            not self.allowed_origins
            or "*" in self.allowed_origins
            or (origin.rstrip("/").lower() in self.allowed_origins)
        )


def page_of(value: str) -> str:
    """The path of a page or URL: ``https://u:p@shop.example/cart?x=1#top`` -> ``/cart``."""
    text = value.strip()
    if "://" in text or text.startswith("//"):
        try:
            text = urlsplit(text).path or "/"
        except ValueError:
            return "invalid"
    else:
        text = text.split("#", 1)[0].split("?", 1)[0]
    return scrub_text(text)[:_PAGE_CAP]


def _text(item: dict[str, Any], key: str, where: str) -> str:
    value = item.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise Rejected(f"{where}: {key} must be a string")
    return value[: _FIELD_CAPS.get(key, _PAGE_CAP)]


def _beacon(item: Any, where: str, shared: dict[str, Any]) -> Beacon:
    if not isinstance(item, dict):
        raise Rejected(f"{where}: a metric is a JSON object")
    merged = {**shared, **item}
    name = merged.get("name")
    if name not in VITAL_NAMES:
        raise Rejected(f"{where}: name must be one of {', '.join(VITAL_NAMES)} (got {name!r})")
    value = merged.get("value")
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise Rejected(f"{where}: value must be a number")
    if not 0 <= value <= MAX_VALUE:
        raise Rejected(f"{where}: value must be between 0 and {MAX_VALUE:.0f}")
    page = _text(merged, "page", where) or _text(merged, "url", where)
    return Beacon(
        name=name,
        value=float(value),
        metric_id=_text(merged, "id", where) or secrets.token_hex(12),
        rating=scrub_text(_text(merged, "rating", where)),
        navigation_type=scrub_text(_text(merged, "navigationType", where)),
        page=page_of(page) if page else "",
        release=scrub_text(_text(merged, "release", where)),
    )


def parse_vitals(data: bytes, limits: IngestLimits | None = None) -> list[Beacon]:
    """The metrics of a body (one, a list, or ``{"metrics": [...]}``); ``Rejected`` naming
    the first bad one."""
    payload = load_json(data, limits or IngestLimits(), "web-vitals beacon")
    shared: dict[str, Any] = {}
    if isinstance(payload, dict) and "metrics" in payload:
        shared = {k: v for k, v in payload.items() if k in ("page", "url", "release")}
        payload = payload["metrics"]
    items = payload if isinstance(payload, list) else [payload]
    if len(items) > MAX_BEACONS:
        raise TooLarge(f"a body holds at most {MAX_BEACONS} metrics (got {len(items)})")
    if not isinstance(payload, list | dict):
        raise Rejected("a web-vitals body is a metric object or a list of them")
    return [_beacon(item, f"metric {i}", shared) for i, item in enumerate(items)]


def store_vitals(store: Store, project_id: int, beacons: list[Beacon], now: datetime) -> None:
    """Insert each metric; a metric already stored (same id and name) takes the new value."""
    if not beacons:
        return
    latest = {(b.name, b.metric_id): b for b in beacons}
    rows = [
        {
            "project_id": project_id,
            "metric_id": b.metric_id,
            "name": b.name,
            "value": b.value,
            "rating": b.rating,
            "navigation_type": b.navigation_type,
            "page": b.page,
            "release": b.release,
            "received_at": now,
        }
        for b in latest.values()
    ]
    insert = pg_insert if store.is_postgres else sqlite_insert
    statement = insert(WebVital).values(rows)
    statement = statement.on_conflict_do_update(
        index_elements=["project_id", "name", "metric_id"],
        set_={
            "value": statement.excluded.value,
            "rating": statement.excluded.rating,
            "received_at": statement.excluded.received_at,
        },
    )
    with store.session() as session:
        session.execute(statement)


def percentile(values: list[float], fraction: float) -> float | None:
    """The ``fraction`` percentile of ``values`` by linear interpolation between ranks."""
    if not values:
        return None
    ordered = sorted(values)
    rank = (len(ordered) - 1) * fraction
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


@dataclass
class VitalsGroup:
    """p75 and sample count of each metric, for one page and release (or all)."""

    page: str = ""
    release: str = ""
    values: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))

    def metrics(self) -> dict[str, dict[str, float | int | None]]:
        return {
            name.lower(): {"p75": _round(percentile(v, 0.75)), "count": len(v)}
            for name, v in sorted(self.values.items())
        }

    def as_dict(self) -> dict[str, Any]:
        return {"page": self.page, "release": self.release, "metrics": self.metrics()}


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def _rows(
    store: Store,
    *,
    since: datetime,
    project: str | None = None,
    releases: Collection[str] | None = None,
    page: str | None = None,
) -> list[tuple[str, float, str, str]]:
    query = select(WebVital.name, WebVital.value, WebVital.page, WebVital.release).where(
        WebVital.received_at >= since
    )
    if project is not None:
        query = query.join(Project, Project.id == WebVital.project_id).where(
            Project.name == project
        )
    if releases is not None:
        query = query.where(WebVital.release.in_(list(releases)))
    if page is not None:
        query = query.where(WebVital.page == page)
    query = query.order_by(WebVital.received_at.desc()).limit(SUMMARY_ROWS)
    with store.session() as session:
        return [(r[0], r[1], r[2], r[3]) for r in session.execute(query)]


def summarize(
    store: Store,
    *,
    since: datetime,
    project: str | None = None,
    release: str | None = None,
    page: str | None = None,
    by: Iterable[str] = ("page", "release"),
) -> list[VitalsGroup]:
    """p75 per metric for each page and release seen since ``since`` (most samples first)."""
    keys = set(by)
    groups: dict[tuple[str, str], VitalsGroup] = {}
    rows = _rows(
        store,
        since=since,
        project=project,
        releases=[release] if release is not None else None,
        page=page,
    )
    for name, value, row_page, row_release in rows:
        key = (row_page if "page" in keys else "", row_release if "release" in keys else "")
        group = groups.get(key)
        if group is None:
            group = groups[key] = VitalsGroup(page=key[0], release=key[1])
        group.values[name].append(value)
    return sorted(
        groups.values(),
        key=lambda g: (-sum(len(v) for v in g.values.values()), g.page, g.release),
    )


def vitals_context(
    store: Store,
    *,
    since: datetime,
    releases: Collection[str] | None = None,
    project: str | None = None,
    page: str | None = None,
) -> dict[str, Any]:
    """``{"vitals": {"lcp": {"p75": ..., "count": ...}, ...}}`` over every page (or
    ``page``): what conditions such as ``vitals.lcp.p75 < 2500`` read. A metric with no
    sample is absent."""
    rows = _rows(store, since=since, project=project, releases=releases, page=page)
    group = VitalsGroup()
    for name, value, _page, _release in rows:
        group.values[name].append(value)
    return {"vitals": group.metrics()}


def for_monitor(store: Store, monitor: MonitorSpec, now: datetime) -> dict[str, Any]:
    """What a ``type = "vitals"`` monitor sees: p75 over its ``window``, ``project``, ``page``."""
    return vitals_context(
        store,
        since=now - timedelta(seconds=monitor.window),
        project=monitor.project or None,
        page=monitor.page or None,
    )

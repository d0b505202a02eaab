"""CSP violation reports: the ``report-uri`` JSON and the Reporting API, grouped.

``report-uri`` browsers POST ``application/csp-report``: ``{"csp-report": {...}}``
with kebab-case keys. The Reporting API (``report-to``) POSTs
``application/reports+json``: a list of ``{"type": "csp-violation", "body": {...}}``
with camelCase keys. Both become ``Violation`` and group by directive and blocked URI.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from controltower.ingest.errors import Rejected
from controltower.ingest.limits import IngestLimits, load_json
from controltower.ingest.scrub import scrub, scrub_text
from controltower.store import Store
from controltower.store.models.ingest import CspReport


@dataclass(frozen=True)
class Violation:
    directive: str
    blocked_uri: str
    document_uri: str
    sample: dict[str, Any]


def _get(body: dict[str, Any], *names: str) -> str:
    for name in names:
        value = body.get(name)
        if value:
            return str(value)
    return ""


def _blocked(uri: str) -> str:
    """Group blocked URLs by origin: ``https://user:pw@cdn.example/x.js?v=1`` ->
    ``https://cdn.example`` (credentials, path and query never kept)."""
    if "://" not in uri:
        return scrub_text(uri[:500]) or "none"
    try:
        parts = urlsplit(uri)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "invalid"
    if ":" in host:
        host = f"[{host}]"
    return scrub_text(f"{parts.scheme}://{host}{port}"[:500])


def _violation(body: dict[str, Any]) -> Violation:
    directive = _get(body, "effective-directive", "effectiveDirective", "violated-directive")
    directive = directive.split()[0] if directive else "unknown"
    blocked = _get(body, "blocked-uri", "blockedURL", "blocked-url")
    document = _get(body, "document-uri", "documentURL", "document-url")
    return Violation(
        directive=scrub_text(directive[:100]),
        blocked_uri=_blocked(blocked),
        document_uri=scrub_text(document)[:500],
        sample=scrub(body),
    )


def parse_csp(data: bytes, limits: IngestLimits | None = None) -> list[Violation]:
    """Violations in a report body of either format; ``Rejected`` if it is neither."""
    payload = load_json(data, limits or IngestLimits(), "CSP report")
    if isinstance(payload, dict) and isinstance(payload.get("csp-report"), dict):
        return [_violation(payload["csp-report"])]
    if isinstance(payload, dict) and payload.get("type") == "csp-violation":
        payload = [payload]
    if isinstance(payload, list):
        return [
            _violation(report["body"])
            for report in payload
            if isinstance(report, dict)
            and report.get("type") == "csp-violation"
            and isinstance(report.get("body"), dict)
        ]
    raise Rejected('a CSP report is {"csp-report": {...}} or a Reporting API list')


def store_violations(
    store: Store, project_id: int, violations: list[Violation], now: datetime
) -> None:
    """Count each violation into its group (created on first sight)."""
    with store.session() as session:
        insert = pg_insert if store.is_postgres else sqlite_insert
        for violation in violations:
            session.execute(
                insert(CspReport)
                .values(
                    project_id=project_id,
                    directive=violation.directive,
                    blocked_uri=violation.blocked_uri,
                    document_uri=violation.document_uri,
                    count=0,
                    first_seen=now,
                    last_seen=now,
                    sample=violation.sample,
                )
                .on_conflict_do_nothing(index_elements=["project_id", "directive", "blocked_uri"])
            )
            group = session.scalar(
                select(CspReport.id).where(
                    CspReport.project_id == project_id,
                    CspReport.directive == violation.directive,
                    CspReport.blocked_uri == violation.blocked_uri,
                )
            )
            session.execute(
                update(CspReport)
                .where(CspReport.id == group)
                .values(
                    count=CspReport.count + 1,
                    last_seen=now,
                    document_uri=violation.document_uri,
                    sample=violation.sample,
                )
            )

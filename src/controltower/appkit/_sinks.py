"""Where captured error events go: a Sentry-compatible DSN (``tower serve``, Sentry,
GlitchTip), straight into tower's store, a JSONL file, or your own ``Sink``."""

from __future__ import annotations

import json
import re
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from controltower.exceptions import IngestError

if TYPE_CHECKING:
    from controltower.appkit._errors import ErrorEvent
    from controltower.store import Store


class Sink(ABC):
    """Delivers batches of events. ``send`` returns how many events failed; it may raise."""

    @abstractmethod
    def send(self, events: Sequence[ErrorEvent]) -> int: ...

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections and files."""


@dataclass(frozen=True)
class Dsn:
    """A parsed DSN ``scheme://<key>@host[:port][/prefix]/<project_id>``."""

    key: str
    project_id: str
    base: str

    @property
    def envelope_url(self) -> str:
        return f"{self.base}/api/{self.project_id}/envelope/"

    @property
    def auth_header(self) -> str:
        return f"Sentry sentry_key={self.key}, sentry_version=7"


def parse_dsn(dsn: str) -> Dsn:
    parts = urlsplit(dsn.strip())
    project = parts.path.rstrip("/").rsplit("/", 1)
    if (
        parts.scheme not in ("http", "https")
        or not parts.username
        or not parts.hostname
        or not project[-1]
    ):
        raise IngestError(
            "the DSN is not of the form http(s)://<key>@host[:port]/<project_id>",
            hint="copy it from the project settings of tower serve, Sentry or GlitchTip",
        )
    prefix = project[0] if len(project) == 2 else ""
    netloc = parts.hostname + (f":{parts.port}" if parts.port else "")
    return Dsn(parts.username, project[-1], f"{parts.scheme}://{netloc}{prefix}")


def envelope(event: ErrorEvent) -> bytes:
    """A Sentry envelope holding one event item."""
    payload = json.dumps(event.as_sentry(), separators=(",", ":"), default=str).encode()
    sent_at = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    header = json.dumps({"event_id": event.event_id, "sent_at": sent_at}).encode()
    item = json.dumps(
        {"type": "event", "length": len(payload), "content_type": "application/json"}
    ).encode()
    return b"\n".join((header, item, payload)) + b"\n"


class DsnSink(Sink):
    """POST one envelope per event to ``/api/<project_id>/envelope/`` (tower serve, Sentry, GlitchTip).

    A connection error or a 5xx is retried once after ``retry_delay``.
    """

    def __init__(self, dsn: str, *, timeout: float = 5.0, retry_delay: float = 0.25) -> None:
        self.dsn = parse_dsn(dsn)
        self.timeout = timeout
        self.retry_delay = retry_delay
        self._client: Any = None

    def _http(self) -> Any:
        if self._client is None:
            import httpx

            self._client = httpx.Client(timeout=self.timeout)
        return self._client

    def _post(self, body: bytes) -> bool:
        headers = {
            "Content-Type": "application/x-sentry-envelope",
            "X-Sentry-Auth": self.dsn.auth_header,
        }
        for attempt in (1, 2):
            try:
                response = self._http().post(self.dsn.envelope_url, content=body, headers=headers)
            except Exception:
                response = None
            if response is not None and response.status_code < 500:
                return bool(response.status_code < 300)
            if attempt == 1:
                time.sleep(self.retry_delay)
        return False

    def send(self, events: Sequence[ErrorEvent]) -> int:
        return sum(not self._post(envelope(event)) for event in events)

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None


class JsonlSink(Sink):
    """Append each event as one JSON line (``ErrorEvent.as_record``) to ``path``."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()

    def send(self, events: Sequence[ErrorEvent]) -> int:
        lines = "".join(json.dumps(e.as_record(), default=str) + "\n" for e in events)
        with self._lock, self.path.open("a", encoding="utf-8") as handle:
            handle.write(lines)
        return 0


class CallbackSink(Sink):
    """Hand each batch of records to ``write(records)``: the shape a store-table writer needs."""

    def __init__(self, write: Any) -> None:
        self.write = write

    def send(self, events: Sequence[ErrorEvent]) -> int:
        self.write([e.as_record() for e in events])
        return 0


class StoreSink(Sink):
    """Write events straight into tower's store (``error_events``, grouped into ``error_issues``)
    the way ``tower serve`` ingests them, for an app that can reach tower's database.

    ``url`` is the store URL (default ``$TOWER_DATABASE_URL``, else ``.tower/tower.db`` under
    ``root``); ``project`` is the error-tracking project, created when missing. The store is
    opened (and migrated) on the first batch, in the reporter's worker thread.
    """

    def __init__(
        self, url: str | None = None, *, project: str = "default", root: str | Path | None = None
    ) -> None:
        if not re.fullmatch(r"[a-z0-9][a-z0-9_.-]{0,62}", project):
            raise IngestError(
                f"StoreSink: project {project!r} is not a project name",
                hint='use lowercase letters, digits, "-", "_" or ".", as in [[server.projects]]',
            )
        self.url = url
        self.project = project
        self.root = Path(root) if root is not None else None
        self._store: Store | None = None
        self._project_id = 0

    def _open(self) -> tuple[Store, int]:
        if self._store is None:
            from controltower.store import Store

            store = Store.open(self.url, root=self.root)
            try:
                self._project_id = _project_id(store, self.project)
            except BaseException:
                store.close()
                raise
            self._store = store
        return self._store, self._project_id

    def send(self, events: Sequence[ErrorEvent]) -> int:
        from controltower.ingest.event import parse_event
        from controltower.ingest.writer import write_batch

        store, project_id = self._open()
        received = datetime.now(UTC)
        parsed = [
            parse_event(event.as_sentry(), project_id=project_id, received_at=received)
            for event in events
        ]
        write_batch(store, parsed)
        return 0

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None


def _project_id(store: Store, name: str) -> int:
    """The id of project ``name``, created (with a fresh DSN key) when it does not exist."""
    import secrets

    from sqlalchemy import select
    from sqlalchemy.exc import IntegrityError

    from controltower.store.models.ingest import Project

    for _ in range(2):
        with store.session() as session:
            found = session.scalar(select(Project.id).where(Project.name == name))
            if found is not None:
                return int(found)
        try:
            with store.session() as session:
                project = Project(name=name, public_key=secrets.token_hex(16))
                session.add(project)
                session.flush()
                return int(project.id)
        except IntegrityError:  # another process created it first
            continue
    raise IngestError(f"could not find or create the error-tracking project {name!r}")

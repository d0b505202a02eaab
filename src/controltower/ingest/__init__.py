"""Error tracking: Sentry-compatible ingestion, grouping, alert rules and CSP reports.

Data flow: an endpoint in ``routes`` authenticates the project (DSN key), caps
and decompresses the body, parses an envelope or store payload into
``ParsedEvent`` (scrubbed, fingerprinted) and puts it in the ``IngestBuffer``;
the ``IngestWriter`` service flushes the buffer in batches into the store,
grouping events into issues and applying the alert rules.
"""

from __future__ import annotations

from controltower.ingest.buffer import IngestBuffer
from controltower.ingest.event import ParsedEvent, parse_event
from controltower.ingest.grouping import fingerprint_for
from controltower.ingest.projects import dsn_for, ensure_projects
from controltower.ingest.scrub import scrub
from controltower.ingest.writer import IngestWriter, write_batch

__all__ = [
    "IngestBuffer",
    "IngestWriter",
    "ParsedEvent",
    "dsn_for",
    "ensure_projects",
    "fingerprint_for",
    "parse_event",
    "scrub",
    "write_batch",
]

"""Prometheus metrics of ingestion, registered in the server's registry."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class IngestMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.accepted = Counter(
            "tower_ingest_events_accepted",
            "Error events accepted into the buffer.",
            ["project"],
            registry=registry,
        )
        self.rejected = Counter(
            "tower_ingest_requests_rejected",
            "Ingestion requests refused, by reason.",
            ["reason"],
            registry=registry,
        )
        self.stored = Counter(
            "tower_ingest_events_stored", "Error events written to the store.", registry=registry
        )
        self.dead_lettered = Counter(
            "tower_ingest_events_dead_lettered",
            "Accepted events the store refused, kept in ingest_dead_letters, by error class.",
            ["reason"],
            registry=registry,
        )
        self.spooled = Counter(
            "tower_ingest_events_spooled",
            "Events written to the spool at shutdown (written to the store at the next start).",
            registry=registry,
        )
        self.replayed = Counter(
            "tower_ingest_events_replayed",
            "Spooled events read back at start.",
            registry=registry,
        )
        self.unaccounted = Gauge(
            "tower_ingest_events_unaccounted",
            "accepted + replayed - stored - buffered - dead_lettered - spooled: 0 unless an "
            "accepted event was lost.",
            registry=registry,
        )
        self.buffered = Gauge(
            "tower_ingest_buffer_events", "Events waiting in the buffer.", registry=registry
        )
        self.batch_seconds = Histogram(
            "tower_ingest_batch_seconds",
            "Time to write one batch of events.",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
            registry=registry,
        )
        self.csp_reports = Counter(
            "tower_ingest_csp_reports", "CSP violation reports received.", registry=registry
        )
        self.vitals = Counter(
            "tower_ingest_vitals", "Web-vitals metrics received.", registry=registry
        )

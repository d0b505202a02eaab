"""The writer never loses what ingestion accepted: dead letters, the spool, the identity."""

from __future__ import annotations

import asyncio
import json
import math
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError

from controltower.ingest import writer as writer_module
from controltower.ingest.accounting import IngestAccount
from controltower.ingest.buffer import IngestBuffer
from controltower.ingest.spool import Spool, event_from_json, event_to_json
from controltower.ingest.writer import IngestWriter, write_batch
from controltower.store import Store
from controltower.store.models.ingest import DeadLetter, ErrorEvent
from tests.test_ingest_store import error, project


def count(store: Store, table: Any) -> int:
    with store.session() as session:
        return int(session.scalar(select(func.count()).select_from(table)) or 0)


def balanced(account: IngestAccount) -> dict[str, int]:
    figures = account.snapshot()
    assert figures["unaccounted"] == 0, figures
    return figures


class TestDeadLetters:
    async def test_a_refused_event_is_dead_lettered_not_dropped(self, store: Store) -> None:
        """An event the store refuses is kept in ingest_dead_letters with the reason; the
        rest of its batch is stored, and the identity holds."""
        pid = project(store)
        good = [error(pid) for _ in range(3)]
        bad = error(9999)  # no such project: the store refuses the row
        buffer = IngestBuffer(100)
        buffer.offer([good[0], bad, *good[1:]])
        writer = IngestWriter(store, buffer)
        assert await writer.flush_once() == 4
        assert count(store, ErrorEvent) == 3
        figures = balanced(writer.account)
        assert (figures["stored"], figures["dead_lettered"]) == (3, 1)
        with store.session() as session:
            [letter] = session.scalars(select(DeadLetter)).all()
        assert letter.event_id == bad.event_id
        assert "Integrity" in letter.reason or "ForeignKey" in letter.reason
        assert event_from_json(json.loads(letter.event)) == bad

    async def test_isolation_costs_few_transactions(
        self, store: Store, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """1% poison in a batch of 400 is isolated by halving: a few dozen transactions,
        not one per event."""
        pid = project(store)
        events = [error(9999) if n % 100 == 7 else error(pid, f"E{n % 5}") for n in range(400)]
        calls = 0
        real = writer_module.write_batch

        def counted(*args: Any, **kwargs: Any) -> Any:
            nonlocal calls
            calls += 1
            return real(*args, **kwargs)

        monkeypatch.setattr(writer_module, "write_batch", counted)
        buffer = IngestBuffer(1000)
        buffer.offer(events)
        writer = IngestWriter(store, buffer, batch_size=400)
        await writer.flush_once()
        assert count(store, ErrorEvent) == 396
        assert count(store, DeadLetter) == 4
        assert calls <= 1 + 4 * 2 * math.ceil(math.log2(400)), calls
        balanced(writer.account)


class TestStoreDown:
    async def test_unwritten_events_go_back_and_the_identity_holds(
        self, store: Store, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """When the store cannot be reached the batch returns to the buffer, counted as
        buffered, and is written once the store is back."""
        pid = project(store)
        buffer = IngestBuffer(100)
        buffer.offer([error(pid) for _ in range(10)])
        writer = IngestWriter(store, buffer)

        def down(*args: Any, **kwargs: Any) -> Any:
            raise OperationalError("SELECT 1", {}, ConnectionError("connection refused"))

        with monkeypatch.context() as patched:
            patched.setattr(writer_module, "write_batch", down)
            with pytest.raises(Exception, match="connection refused"):
                await writer.flush_once()
        assert len(buffer) == 10
        assert balanced(writer.account)["buffered"] == 10
        assert await writer.flush_once() == 10
        assert balanced(writer.account)["stored"] == 10


class TestSpool:
    async def test_store_down_at_shutdown_spools_and_next_start_replays(
        self, store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A stop with the store down spools the buffer; the next writer writes it at start."""
        pid = project(store)
        spool = Spool(tmp_path / "spool")
        events = [error(pid, f"E{n % 3}") for n in range(50)]
        buffer = IngestBuffer(100)
        buffer.offer(events)
        first = IngestWriter(store, buffer, spool=spool, flush_interval=60, drain_timeout=2)

        def down(*args: Any, **kwargs: Any) -> Any:
            raise OperationalError("INSERT", {}, ConnectionError("the store is down"))

        stop = asyncio.Event()
        stop.set()
        with monkeypatch.context() as patched:
            patched.setattr(writer_module, "write_batch", down)
            await first.run(stop)
        figures = balanced(first.account)
        assert (figures["spooled"], figures["buffered"], figures["stored"]) == (50, 0, 0)
        assert spool.pending() == 50
        assert count(store, ErrorEvent) == 0

        second = IngestWriter(store, IngestBuffer(100), spool=spool, flush_interval=60)
        await second.run(stop)
        figures = balanced(second.account)
        assert (figures["replayed"], figures["stored"]) == (50, 50)
        assert count(store, ErrorEvent) == 50
        assert spool.pending() == 0
        assert not list((tmp_path / "spool").iterdir())

    async def test_cancelled_writer_spools_what_is_left(self, store: Store, tmp_path: Path) -> None:
        """A writer cancelled mid-drain (the shutdown deadline passed) spools the buffer."""
        pid = project(store)
        spool = Spool(tmp_path / "spool")
        buffer = IngestBuffer(10_000)
        writer = IngestWriter(store, buffer, spool=spool, flush_interval=60, batch_size=10)
        stop = asyncio.Event()
        task = asyncio.create_task(writer.run(stop))
        await asyncio.sleep(0.05)
        buffer.offer([error(pid) for _ in range(2000)])
        stop.set()
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        figures = balanced(writer.account)
        assert figures["stored"] + figures["spooled"] == 2000
        assert spool.pending() == figures["spooled"]

    def test_events_round_trip_through_json(self) -> None:
        """A spooled event reads back equal, whatever its text holds."""
        event = error(1, message="caf\u00e9 \ufffd", extra={"n": [1, 2.5, None]})
        line = json.dumps(event_to_json(event), ensure_ascii=True)
        assert line.isascii()
        assert event_from_json(json.loads(line)) == event

    def test_a_claimed_file_is_not_claimed_twice(self, tmp_path: Path) -> None:
        """Two workers claiming at once never get the same file."""
        spool = Spool(tmp_path)
        spool.write([error(1)])
        assert len(spool.claim()) == 1
        assert spool.claim() == []


class TestWriteBatch:
    def test_written_events_are_counted_as_stored(self, store: Store) -> None:
        """write_batch of a plain batch stores each event (the writer's normal path)."""
        pid = project(store)
        assert write_batch(store, [error(pid) for _ in range(5)]).stored == 5

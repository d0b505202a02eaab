"""The store on both backends: migrations, models, audit, locks."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select, text

from controltower.exceptions import LockHeld, StoreError
from controltower.spec import load_spec
from controltower.store import Locks, Store, record_audit, redact_url, resolve_url, service_id
from controltower.store.models import AuditEvent
from controltower.testing import FakeClock


class TestOpen:
    def test_default_is_sqlite_under_dot_tower(self, tmp_path: Path) -> None:
        """With no URL, the store is a SQLite file in .tower/, in WAL mode."""
        with Store.open(root=tmp_path, url=None) as store:
            assert store.url == f"sqlite:///{tmp_path}/.tower/tower.db"
            assert (tmp_path / ".tower" / "tower.db").exists()
            with store.engine.connect() as conn:
                assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"

    def test_env_url_wins(self, tmp_path: Path) -> None:
        """$TOWER_DATABASE_URL names the store when no URL is given; postgres:// means psycopg."""
        url = resolve_url(
            None, root=tmp_path, environ={"TOWER_DATABASE_URL": "postgres://u:p@h/db"}
        )
        assert url == "postgresql+psycopg://u:p@h/db"

    def test_spec_names_the_store(self, store_url: str, tmp_path: Path) -> None:
        """A [store] url in tower.toml opens that database (SQLite or PostgreSQL), migrated."""
        spec_file = tmp_path / "app" / "tower.toml"
        spec_file.parent.mkdir()
        spec_file.write_text(
            '[service]\nname = "shop"\n[store]\nurl = "${STORE_URL}"\n', encoding="utf-8"
        )
        spec = load_spec(spec_file, environ={"STORE_URL": store_url})
        with Store.for_spec(spec) as store:
            assert store.url == resolve_url(store_url)
            assert store.is_postgres == store_url.startswith("postgresql")
            assert store.is_current()

    def test_spec_without_store_uses_env_then_dot_tower(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Without [store] url: $TOWER_DATABASE_URL, else .tower/tower.db beside the spec file."""
        spec_file = tmp_path / "tower.toml"
        spec_file.write_text('[service]\nname = "shop"\n', encoding="utf-8")
        spec = load_spec(spec_file, environ={})
        monkeypatch.delenv("TOWER_DATABASE_URL", raising=False)
        monkeypatch.chdir(tmp_path.parent)
        with Store.for_spec(spec) as store:
            assert store.url == f"sqlite:///{tmp_path}/.tower/tower.db"
        other = tmp_path / "elsewhere.db"
        monkeypatch.setenv("TOWER_DATABASE_URL", f"sqlite:///{other}")
        with Store.for_spec(spec, migrate=False) as store:
            assert store.url == f"sqlite:///{other}"
        with Store.for_spec(spec, url=f"sqlite:///{tmp_path}/arg.db", migrate=False) as store:
            assert store.url.endswith("/arg.db"), "an explicit URL wins"

    def test_redacts_password(self) -> None:
        """redact_url hides the password of a database URL."""
        assert "hunter2" not in redact_url("postgresql://u:hunter2@h/db")

    def test_rejects_other_databases(self) -> None:
        """A URL of another database is refused with a StoreError."""
        with pytest.raises(StoreError, match="SQLite or PostgreSQL"):
            Store("mysql://u@h/db")

    def test_unreachable_postgres_is_a_store_error(self) -> None:
        """A server that is not there gives a StoreError without the password."""
        store = Store("postgresql+psycopg://u:hunter2@127.0.0.1:1/db?connect_timeout=1")
        with pytest.raises(StoreError) as caught:
            store.migrate()
        assert "hunter2" not in str(caught.value)


class TestMigrations:
    def test_migrated_on_first_use(self, store: Store) -> None:
        """Opening applies every branch's newest revision."""
        assert store.is_current()
        assert {"core_0001", "notify_0001"} <= store.applied()

    def test_store_from_a_newer_tower_is_refused_by_name(self, store: Store) -> None:
        """A store migrated by a newer tower gives a StoreError naming that version, not a traceback."""
        from sqlalchemy import text

        assert store.migrated_by() is not None
        with store.engine.begin() as connection:
            connection.execute(
                text("UPDATE store_meta SET value = '99.1' WHERE key = 'tower_version'")
            )
            connection.execute(
                text("INSERT INTO alembic_version (version_num) VALUES ('future_0001')")
            )
        with pytest.raises(StoreError) as caught:
            store.migrate()
        message = str(caught.value)
        assert "this store was migrated by a newer tower (99.1)" in message
        assert "future_0001" in message and "upgrade tower" in message

    def test_migrate_twice_is_a_no_op(self, store: Store) -> None:
        """Migrating a current store changes nothing."""
        store.migrate()
        assert store.is_current()

    def test_concurrent_opens_migrate_once(self, store_url: str) -> None:
        """Several processes opening a new store together end with one migrated schema."""
        errors: list[BaseException] = []

        def open_it() -> None:
            try:
                Store.open(store_url).close()
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=open_it) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        with Store.open(store_url) as store:
            assert store.is_current()


class TestModels:
    def test_service_created_once(self, store: Store) -> None:
        """service_id creates a service once per name and environment, then finds it."""
        with store.session() as session:
            first = service_id(session, "shop", "production")
        with store.session() as session:
            assert service_id(session, "shop", "production") == first
            assert service_id(session, "shop", "staging") != first

    def test_audit_round_trip_keeps_utc(self, store: Store) -> None:
        """Timestamps come back timezone-aware in UTC; JSON detail survives."""
        with store.session() as session:
            sid = service_id(session, "shop")
            record_audit(
                session,
                actor="ana",
                action="deploy.start",
                service=sid,
                subject="r1",
                detail={"strategy": "canary", "steps": [5, 25]},
            )
        with store.session() as session:
            event = session.scalars(select(AuditEvent)).one()
        assert event.at.tzinfo is not None
        assert event.at.utcoffset().total_seconds() == 0  # type: ignore[union-attr]
        assert event.detail == {"strategy": "canary", "steps": [5, 25]}

    def test_naive_datetime_refused(self, store: Store) -> None:
        """A naive datetime is refused rather than stored with a guessed zone."""
        with pytest.raises(Exception, match="naive"), store.session() as session:
            session.add(
                AuditEvent(at=datetime(2026, 1, 1), actor="a", action="b", subject="", detail={})
            )
            session.flush()

    def test_rollback_on_error(self, store: Store) -> None:
        """A failing block leaves nothing half-written."""
        with pytest.raises(RuntimeError), store.session() as session:
            record_audit(session, actor="a", action="x")
            session.flush()
            raise RuntimeError("boom")
        with store.session() as session:
            assert session.scalars(select(AuditEvent)).all() == []


class TestLocks:
    def test_one_owner_at_a_time(self, store: Store) -> None:
        """A lock has one owner; the owner may take it again; others get LockHeld."""
        locks = Locks(store)
        assert locks.acquire("deploy:shop", "a", ttl=60)
        assert not locks.acquire("deploy:shop", "b", ttl=60)
        assert locks.acquire("deploy:shop", "a", ttl=60), "the owner may take it again"
        with pytest.raises(LockHeld, match="held by a"):
            locks.acquire_or_raise("deploy:shop", "b", ttl=60)

    def test_stale_lock_taken_over(self, store: Store) -> None:
        """A lock whose owner stopped renewing it is free once it expires."""
        clock = FakeClock(datetime(2026, 5, 1, tzinfo=UTC))
        locks = Locks(store, clock=clock)
        assert locks.acquire("m", "dead", ttl=10)
        clock.advance(5)
        assert not locks.acquire("m", "alive", ttl=10)
        info = locks.info("m")
        assert info is not None and not info.expired
        clock.advance(6)
        assert locks.info("m").expired  # type: ignore[union-attr]
        assert locks.acquire("m", "alive", ttl=10)
        assert not locks.renew("m", "dead", ttl=10), "the old owner has lost it"

    def test_release_only_by_owner(self, store: Store) -> None:
        """Only the owner can release a lock."""
        locks = Locks(store)
        locks.acquire("x", "a", ttl=60)
        assert not locks.release("x", "b")
        assert locks.release("x", "a")
        assert locks.info("x") is None

    def test_race_has_one_winner(self, store: Store) -> None:
        """Many threads racing for a free lock: exactly one gets it."""
        locks = Locks(store)
        wins: list[str] = []
        barrier = threading.Barrier(6)

        def race(owner: str) -> None:
            barrier.wait()
            if locks.acquire("race", owner, ttl=60):
                wins.append(owner)

        threads = [threading.Thread(target=race, args=(f"o{i}",)) for i in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert len(wins) == 1

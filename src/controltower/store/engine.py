"""Open the store: SQLite under .tower/ by default, PostgreSQL when a URL says so.

Migrations are applied automatically on first use, under a lock so that two
processes starting together do not both migrate.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import NullPool

from controltower.__about__ import __version__
from controltower.exceptions import StoreError
from controltower.private import private_file, private_folder

if TYPE_CHECKING:
    from controltower.spec import Spec

ENV_URL = "TOWER_DATABASE_URL"
DEFAULT_DIR = ".tower"
DEFAULT_FILE = "tower.db"
_MIGRATIONS = str(Path(__file__).with_name("migrations"))


def resolve_url(
    url: str | None = None, *, root: Path | None = None, environ: dict[str, str] | None = None
) -> str:
    """The store URL: ``url``, else ``$TOWER_DATABASE_URL``, else SQLite under ``root/.tower``."""
    env = os.environ if environ is None else environ
    chosen = url or env.get(ENV_URL) or ""
    if not chosen:
        folder = (root or Path.cwd()) / DEFAULT_DIR
        return f"sqlite:///{folder / DEFAULT_FILE}"
    if chosen.startswith(("postgres://", "postgresql://")):
        chosen = "postgresql+psycopg://" + chosen.split("://", 1)[1]
    return chosen


def redact_url(url: str) -> str:
    """The URL with its password replaced, fit to print."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<unparseable database URL>"


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


class Store:
    """All of tower's state, behind one SQLAlchemy engine.

    >>> store = Store.open()          # .tower/tower.db, migrated
    >>> with store.session() as session:
    ...     session.add(...)          # committed on leaving the block
    """

    def __init__(self, url: str, *, echo: bool = False, pool_size: int = 5) -> None:
        self.url = url
        try:
            parsed = make_url(url)
        except ArgumentError:
            raise StoreError(
                f"store URL {redact_url(url)!r} is not a database URL",
                hint="use sqlite:///path/to/tower.db or postgresql://user@host/db",
            ) from None
        self.dialect = parsed.get_backend_name()
        if self.dialect == "sqlite":
            database = parsed.database or ""
            if database and database != ":memory:" and not database.startswith("file:"):
                private_folder(Path(database).parent)
                private_file(database)
            self.engine: Engine = create_engine(
                url, echo=echo, poolclass=NullPool, connect_args={"check_same_thread": False}
            )
            event.listen(self.engine, "connect", _sqlite_pragmas)
        elif self.dialect == "postgresql":
            self.engine = create_engine(
                url,
                echo=echo,
                pool_size=pool_size,
                max_overflow=pool_size * 2,
                pool_pre_ping=True,
            )
        else:
            raise StoreError(
                f"store URL {redact_url(url)!r} names {self.dialect!r}; "
                "tower keeps its state in SQLite or PostgreSQL"
            )
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    @classmethod
    def open(
        cls, url: str | None = None, *, root: Path | None = None, migrate: bool = True
    ) -> Store:
        """Open (and by default migrate) the store named by ``url`` or the defaults."""
        store = cls(resolve_url(url, root=root))
        if migrate:
            store.migrate()
        return store

    @classmethod
    def for_spec(cls, spec: Spec, url: str | None = None, *, migrate: bool = True) -> Store:
        """The store of a loaded spec: ``url``, else ``[store] url``, else ``$TOWER_DATABASE_URL``,
        else SQLite in ``.tower/`` beside the spec file."""
        chosen = url or (spec.store.url.get_secret_value() if spec.store.url else None)
        return cls.open(chosen, root=Path(spec.source).resolve().parent, migrate=migrate)

    @property
    def is_postgres(self) -> bool:
        return self.dialect == "postgresql"

    @contextlib.contextmanager
    def session(self) -> Iterator[Session]:
        """A session that commits when the block ends and rolls back on error."""
        session = self._sessions()
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    def _config(self) -> Config:
        config = Config()
        config.set_main_option("script_location", _MIGRATIONS)
        return config

    def heads(self) -> set[str]:
        return set(ScriptDirectory.from_config(self._config()).get_heads())

    def current(self) -> set[str]:
        try:
            with self.engine.connect() as connection:
                return set(MigrationContext.configure(connection).get_current_heads())
        except OperationalError as exc:
            raise StoreError(
                f"cannot open the store at {redact_url(self.url)}: {exc.orig}"
            ) from None

    def applied(self) -> set[str]:
        """Every revision the database has, including those reached through dependencies.

        ``StoreError`` when the database has a revision this tower does not know:
        a newer tower migrated it, and this one must not write to it.
        """
        current = self.current()
        if not current:
            return set()
        script = ScriptDirectory.from_config(self._config())
        known = {rev.revision for rev in script.walk_revisions()}
        unknown = sorted(current - known)
        if unknown:
            newer = self.migrated_by()
            by = f"a newer tower ({newer})" if newer else "a newer tower"
            raise StoreError(
                f"this store was migrated by {by}; this is tower {__version__}, which does "
                f"not know its schema ({', '.join(unknown)}): upgrade tower to use "
                f"{redact_url(self.url)}",
                hint="pip install --upgrade controltower",
            )
        return {rev.revision for rev in script.iterate_revisions(tuple(current), "base")}

    def migrated_by(self) -> str | None:
        """The version of the tower that last migrated this store (None: not recorded)."""
        try:
            with self.engine.connect() as connection:
                value = connection.execute(
                    text("SELECT value FROM store_meta WHERE key = 'tower_version'")
                ).scalar()
        except SQLAlchemyError:
            return None
        return None if value is None else str(value)

    def is_current(self) -> bool:
        return self.heads() <= self.applied()

    def migrate(self) -> None:
        """Bring the schema to the newest revision of every branch, if it is not there."""
        if self.is_current():
            return
        try:
            with self._migration_lock(), self.engine.begin() as connection:
                config = self._config()
                config.attributes["connection"] = connection
                command.upgrade(config, "heads")
                connection.execute(text("DELETE FROM store_meta WHERE key = 'tower_version'"))
                connection.execute(
                    text("INSERT INTO store_meta (key, value) VALUES ('tower_version', :v)"),
                    {"v": __version__},
                )
        except SQLAlchemyError as exc:
            raise StoreError(
                f"migrating the store at {redact_url(self.url)} failed: {exc}"
            ) from None

    @contextlib.contextmanager
    def _migration_lock(self) -> Iterator[None]:
        if self.is_postgres:
            key = zlib.crc32(b"controltower-migrate")
            with self.engine.connect() as connection:
                connection.execute(text("SELECT pg_advisory_lock(:k)"), {"k": key})
                try:
                    yield
                finally:
                    connection.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
                    connection.commit()
            return
        database = make_url(self.url).database or ""
        if not database or database == ":memory:":
            yield
            return
        with open(database + ".migrate.lock", "w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

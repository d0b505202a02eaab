"""``tower backup verify`` against a role that may not create databases: a clear
error naming the missing CREATEDB privilege, not a psycopg traceback."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from controltower.backup import run_backup, verify_backup
from controltower.exceptions import BackupError
from controltower.store import Store
from tests.backup_support import fill, fresh_database, write_spec

pytestmark = [pytest.mark.postgres, pytest.mark.xdist_group("backup-heavy")]


@pytest.fixture
def source(postgres_admin_url: str) -> Iterator[str]:
    with fresh_database(postgres_admin_url) as url:
        fill(url)
        yield url


@pytest.fixture
def no_createdb(postgres_admin_url: str, source: str) -> Iterator[str]:
    """The URL of ``source`` as a login role without CREATEDB."""
    suffix = uuid.uuid4().hex[:10]
    role, password = f"nocreate_{suffix}", f"Pw-{suffix}"
    with psycopg.connect(postgres_admin_url, autocommit=True) as admin:
        admin.execute(f"CREATE ROLE {role} LOGIN NOCREATEDB PASSWORD '{password}'")  # type: ignore[arg-type]
    host = source.split("@", 1)[1].rsplit("/", 1)[0]
    try:
        yield f"postgresql://{role}:{password}@{host}/{source.rsplit('/', 1)[1]}"
    finally:
        with psycopg.connect(postgres_admin_url, autocommit=True) as admin:
            admin.execute(f"DROP ROLE IF EXISTS {role}")  # type: ignore[arg-type]


class TestMissingCreatedb:
    def test_verify_explains_the_missing_privilege(
        self, source: str, no_createdb: str, store: Store, tmp_path: Path
    ) -> None:
        """The scratch database cannot be created: a BackupError says which privilege is
        missing and what to do, and shows no password."""
        spec = write_spec(tmp_path, source)
        run_backup(spec, store)
        with pytest.raises(BackupError) as caught:
            verify_backup(spec, store, scratch_url=no_createdb)
        text = str(caught.value)
        assert "CREATEDB" in text and "ALTER ROLE" in text and "scratch_url" in text
        assert "Pw-" not in text

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pyrage
import pytest
from sqlalchemy import select

from controltower.backup import BackupCorrupt, restore_backup, run_backup, verify_backup
from controltower.backup.config import read_bundle, run_config_backup
from controltower.backup.crypto import decrypt_bytes, parse_recipient
from controltower.exceptions import BackupError, SpecError
from controltower.spec import load_spec
from controltower.store import Store
from controltower.store.models import BackupVerification
from tests.backup_support import EXPECTED, counts, fill, fresh_database, write_spec

pytestmark = [pytest.mark.postgres, pytest.mark.xdist_group("backup-heavy")]


@pytest.fixture
def source(postgres_admin_url: str) -> Iterator[str]:
    with fresh_database(postgres_admin_url) as url:
        fill(url)
        yield url


@pytest.fixture
def identity() -> pyrage.x25519.Identity:
    return pyrage.x25519.Identity.generate()


def _encrypted(tmp_path: Path, source: str, identity: pyrage.x25519.Identity) -> object:
    return write_spec(
        tmp_path,
        source,
        tail=f'[backup.encryption]\nrecipients = ["{identity.to_public()}"]\n'
        'identity_env = "TOWER_BACKUP_IDENTITY"\n',
    )


def _database_names(url: str) -> set[str]:
    with psycopg.connect(url) as connection:
        return {row[0] for row in connection.execute("SELECT datname FROM pg_database")}


class TestRecipients:
    def test_age_and_ssh_recipients_parse(self, identity: pyrage.x25519.Identity) -> None:
        """An age1… key is a recipient; an identity pasted by mistake is refused with the reason."""
        assert parse_recipient(str(identity.to_public())) is not None
        with pytest.raises(ValueError, match="private key"):
            parse_recipient(str(identity))
        with pytest.raises(ValueError, match="not a valid age recipient"):
            parse_recipient("age1notakey")

    def test_spec_refuses_a_bad_recipient_with_its_line(self, tmp_path: Path) -> None:
        """tower.toml with a bad recipient fails at load, naming the file, line and key."""
        path = tmp_path / "tower.toml"
        path.write_text(
            '[service]\nname = "shop"\n\n[backup.encryption]\nrecipients = ["age1nope"]\n'
        )
        with pytest.raises(SpecError) as caught:
            load_spec(path, environ={})
        text = str(caught.value)
        assert "tower.toml:5" in text and "backup.encryption.recipients" in text
        assert "not a valid age recipient" in text


class TestEncryptedBackups:
    def test_only_ciphertext_leaves_and_it_restores_with_the_key(
        self, source: str, store: Store, tmp_path: Path, identity: pyrage.x25519.Identity
    ) -> None:
        """The stored dump is age ciphertext; verify and restore decrypt it with the identity."""
        spec = _encrypted(tmp_path, source, identity)
        result = run_backup(spec, store)  # type: ignore[arg-type]
        folder = tmp_path / "backups" / "shop"
        stored = folder / f"{result.name}.dump.age"
        assert stored.is_file() and not (folder / f"{result.name}.dump").exists()
        head = stored.read_bytes()[:40]
        assert head.startswith(b"age-encryption.org/v1") and b"PGDMP" not in stored.read_bytes()
        meta = json.loads((folder / f"{result.name}.json").read_text())
        assert meta["encryption"] == "age" and meta["file"] == stored.name
        assert meta["recipients"] == [str(identity.to_public())]
        assert meta["plain_size"] > 0 and meta["plain_sha256"] != meta["sha256"]

        env = {"TOWER_BACKUP_IDENTITY": f"# created by age-keygen\n{identity}\n"}
        verified = verify_backup(spec, store, result.name, environ=env)  # type: ignore[arg-type]
        assert verified.ok, verified.findings
        assert verified.tables == EXPECTED

        key_file = tmp_path / "key.txt"
        key_file.write_text(str(identity) + "\n")
        target = source + "_dec"
        try:
            restore_backup(
                spec,  # type: ignore[arg-type]
                store,
                "latest",
                target_url=target,
                create=True,
                identity_file=key_file,
                environ={},
            )
            assert counts(target) == EXPECTED
        finally:
            with psycopg.connect(source, autocommit=True) as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{target.rsplit("/", 1)[1]}" WITH (FORCE)')  # type: ignore[arg-type]

    def test_without_the_key_nothing_touches_a_database(
        self, source: str, store: Store, tmp_path: Path, identity: pyrage.x25519.Identity
    ) -> None:
        """No identity, or the wrong one: a clear error, and no scratch or target database made."""
        spec = _encrypted(tmp_path, source, identity)
        run_backup(spec, store)  # type: ignore[arg-type]
        with pytest.raises(BackupError, match="encrypted and no identity") as caught:
            verify_backup(spec, store, environ={})  # type: ignore[arg-type]
        assert "TOWER_BACKUP_IDENTITY" in (caught.value.hint or "")
        other = pyrage.x25519.Identity.generate()
        with pytest.raises(BackupError, match="cannot be decrypted"):
            restore_backup(
                spec,  # type: ignore[arg-type]
                store,
                "latest",
                target_url=source + "_never",
                create=True,
                environ={"TOWER_BACKUP_IDENTITY": str(other)},
            )
        assert f"{source.rsplit('/', 1)[1]}_never" not in _database_names(source)
        with store.session() as session:
            assert session.scalars(select(BackupVerification)).all() == []

    def test_tampered_ciphertext_is_caught_before_decrypting(
        self, source: str, store: Store, tmp_path: Path, identity: pyrage.x25519.Identity
    ) -> None:
        """A flipped byte in the ciphertext fails the stored checksum first."""
        spec = _encrypted(tmp_path, source, identity)
        result = run_backup(spec, store)  # type: ignore[arg-type]
        stored = tmp_path / "backups" / "shop" / f"{result.name}.dump.age"
        data = bytearray(stored.read_bytes())
        data[-100] ^= 0x01
        stored.write_bytes(bytes(data))
        with pytest.raises(BackupCorrupt):
            verify_backup(spec, store, environ={"TOWER_BACKUP_IDENTITY": str(identity)})  # type: ignore[arg-type]

    def test_configuration_versions_are_encrypted_too(
        self, source: str, store: Store, tmp_path: Path, identity: pyrage.x25519.Identity
    ) -> None:
        """The config bundle (tower.toml and secret names) is stored as age ciphertext."""
        spec = _encrypted(tmp_path, source, identity)
        result = run_config_backup(spec, store)  # type: ignore[arg-type]
        stored = next((tmp_path / "backups" / "shop" / "config").glob("*.tar.gz.age"))
        assert stored.name.startswith(result.name)
        files = read_bundle(decrypt_bytes(stored.read_bytes(), [identity], name=result.name))
        assert b"[backup.encryption]" in files["tower.toml"]

    def test_key_material_never_printed_or_stored(
        self, source: str, tmp_path: Path, identity: pyrage.x25519.Identity
    ) -> None:
        """The identity appears in no output, metadata file or store row of the CLI run."""
        _encrypted(tmp_path, source, identity)
        spec_file = str(tmp_path / "tower.toml")
        secret = str(identity)
        env = {**os.environ, "TOWER_BACKUP_IDENTITY": secret}
        outputs = []
        for args in (["run"], ["verify"], ["list", "--kind", "all", "--format", "json"]):
            done = subprocess.run(
                [sys.executable, "-m", "controltower", "backup", *args, "--spec", spec_file],
                capture_output=True,
                text=True,
                timeout=120,
                env=env,
            )
            assert done.returncode == 0, done.stderr
            outputs.append(done.stdout + done.stderr)
        missing = subprocess.run(
            [sys.executable, "-m", "controltower", "backup", "verify", "--spec", spec_file],
            capture_output=True,
            text=True,
            timeout=120,
            env={k: v for k, v in env.items() if k != "TOWER_BACKUP_IDENTITY"},
        )
        assert missing.returncode == 1
        assert "encrypted and no identity" in missing.stdout + missing.stderr
        key_body = secret.removeprefix("AGE-SECRET-KEY-")
        for output in [*outputs, missing.stdout + missing.stderr]:
            assert key_body not in output
        for path in tmp_path.rglob("*"):
            if path.is_file():
                assert key_body.encode() not in path.read_bytes(), path

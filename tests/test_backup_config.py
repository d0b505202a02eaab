from __future__ import annotations

import json
from pathlib import Path

import pytest

from controltower.backup.config import bundle, read_bundle, run_config_backup
from controltower.spec import load_spec
from controltower.store import Store
from controltower.testing import FakeClock

SPEC = """
[service]
name = "shop"

[env.vars.STRIPE_SECRET_KEY]
secret = true

[env.vars.DATABASE_URL]
secret = true

[env.vars.NEXT_PUBLIC_SITE_URL]
format = "url"

[env]
fly_secrets_file = "fly-secrets.json"

[backup.destination]
path = "backups"
"""


def _setup(folder: Path) -> None:
    (folder / "tower.toml").write_text(SPEC)
    (folder / "fly.toml").write_text('app = "shop"\n')
    (folder / "Dockerfile").write_text("FROM node:22-bookworm-slim\n")
    (folder / "fly-secrets.json").write_text(
        json.dumps([{"Name": "SENTRY_DSN", "Digest": "abc", "CreatedAt": "x"}])
    )


class TestConfigBackup:
    def test_versions_files_and_secret_names(
        self, store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """The files and the secret names are kept; values never; a change makes a new version."""
        _setup(tmp_path)
        monkeypatch.setenv("STRIPE_SECRET_KEY", "sk_live_dont_leak_me")
        if True:
            spec = load_spec(tmp_path / "tower.toml", environ={})
            clock = FakeClock()
            first = run_config_backup(spec, store, clock=clock)
            assert first.version == 1 and not first.unchanged
            archive = tmp_path / "backups" / "shop" / "config" / f"{first.name}.tar.gz"
            files = read_bundle(archive.read_bytes())
            assert set(files) == {"tower.toml", "fly.toml", "Dockerfile", "secrets.json"}
            assert json.loads(files["secrets.json"]) == {
                "names": ["DATABASE_URL", "SENTRY_DSN", "STRIPE_SECRET_KEY"]
            }
            assert b"sk_live_dont_leak_me" not in archive.read_bytes()
            meta = json.loads(archive.with_name(f"{first.name}.json").read_text())
            assert meta["secret_names"] == ["DATABASE_URL", "SENTRY_DSN", "STRIPE_SECRET_KEY"]

            again = run_config_backup(spec, store, clock=clock)
            assert again.unchanged and again.name == first.name

            (tmp_path / "fly.toml").write_text('app = "shop"\nprimary_region = "ams"\n')
            clock.advance(60)
            second = run_config_backup(spec, store, clock=clock)
            assert second.version == 2 and second.name != first.name

    def test_bundle_is_deterministic(self) -> None:
        """The same files give the same bytes, whatever the time."""
        one = bundle({"a": b"1", "b": b"2"}, ["X"])
        two = bundle({"b": b"2", "a": b"1"}, ["X"])
        assert one == two
        assert read_bundle(one)["a"] == b"1"

"""docs/serve.md: its Python snippet runs as written."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest

from controltower.dashboard.auth import Accounts
from controltower.ingest.projects import load_projects
from controltower.store import Store

DOC = Path(__file__).resolve().parent.parent / "docs" / "serve.md"


def snippet(name: str) -> str:
    found = re.search(rf"<!-- snippet: {name} -->\n```python\n(.*?)```", DOC.read_text(), re.S)
    assert found, f"no snippet {name} in {DOC}"
    return found.group(1)


class TestEmbedSnippet:
    def test_runs_and_serves(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """The embedding example starts a server with a login and a DSN, and stops it."""
        (tmp_path / "tower.toml").write_text('[service]\nname = "shop"\n')
        monkeypatch.chdir(tmp_path)
        monkeypatch.delenv("TOWER_DATABASE_URL", raising=False)
        seen: dict[str, object] = {}
        code = snippet("embed").replace(
            "server.wait()", "seen.update(health=httpx.get(server.url + '/healthz').json())"
        )
        exec(compile(code, str(DOC), "exec"), {"seen": seen, "httpx": httpx, "print": print})
        health = seen["health"]
        assert isinstance(health, dict) and health["status"] == "pass"
        with Store.open(f"sqlite:///{tmp_path / '.tower' / 'tower.db'}") as store:
            assert Accounts(store).users() == ["demo"]
            assert [p.name for p in load_projects(store)] == ["web"]

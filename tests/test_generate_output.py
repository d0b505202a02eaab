"""What tower prints and writes for users: literal text, every finding, stack-matched fixes,
file modes."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

from controltower.files import write_file

FLASK_APP = "from flask import Flask\n\napp = Flask(__name__)\n"


def _tower(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("TOWER_")}
    environ["COLUMNS"] = "200"
    return subprocess.run(
        [sys.executable, "-m", "controltower", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=folder,
        env=environ,
    )


def _flask_on_fly(folder: Path) -> Path:
    (folder / "requirements.txt").write_text("Flask==3.1.0\n")
    (folder / "app.py").write_text(FLASK_APP)
    (folder / "fly.toml").write_text('app = "signup"\n')
    assert _tower(folder, "init", ".").returncode == 0
    return folder


class TestText:
    def test_line_100_stays_literal(self, tmp_path: Path) -> None:
        """An error at line 100 prints as tower.toml:100, never with rich's :100: emoji."""
        spec = tmp_path / "tower.toml"
        spec.write_text("#\n" * 97 + '[service]\nname = "x"\nmemroy = "1gb"\n')
        done = _tower(tmp_path, "validate", "--spec", str(spec))
        assert done.returncode == 2
        printed = done.stdout + done.stderr
        assert "\N{HUNDRED POINTS SYMBOL}" not in printed
        assert "tower.toml:100: service.memroy" in printed

    def test_every_finding_is_shown(self, tmp_path: Path) -> None:
        """A fly.toml with five problems shows all five in the text report, each with its line."""
        folder = _flask_on_fly(tmp_path)
        (folder / "fly.toml").write_text(
            'app = "x"\nbogus_one = 1\nbogus_two = 2\n[http_service]\ninternal_port = "x"\n'
            'foo = 1\n[[vm]]\nmemory = "lots"\n'
        )
        done = _tower(folder, "check", "--static", "--no-store", "--only", "fly.config")
        for line, what in (
            (2, "bogus_one"),
            (3, "bogus_two"),
            (5, "internal_port"),
            (6, "foo"),
            (8, "memory"),
        ):
            assert f"- line {line}: " in done.stdout and what in done.stdout
        assert done.stdout.count("  - line ") == 5

    def test_fix_snippets_match_the_stack(self, tmp_path: Path) -> None:
        """A Flask app's Dockerfile without a command gets the gunicorn CMD as its fix, not
        Node.js's."""
        folder = _flask_on_fly(tmp_path)
        (folder / "Dockerfile").write_text("FROM python:3.12.7-slim-bookworm\nRUN echo hi\n")
        done = _tower(folder, "check", "--static", "--no-store", "--only", "docker.cmd")
        assert 'CMD ["gunicorn", "app:app"' in done.stdout
        assert "node" not in done.stdout


class TestModes:
    def test_new_files_are_0644_whatever_the_umask(self, tmp_path: Path) -> None:
        """A new file is 0644 (mkstemp alone would leave it 0600)."""
        old = os.umask(0o077)
        try:
            write_file(tmp_path / "new.txt", "x\n")
        finally:
            os.umask(old)
        assert stat.S_IMODE((tmp_path / "new.txt").stat().st_mode) == 0o644

    def test_a_replaced_file_keeps_its_mode(self, tmp_path: Path) -> None:
        """An executable script stays executable; a private file stays private."""
        for name, mode in (("run.sh", 0o755), ("secret.env", 0o600)):
            path = tmp_path / name
            path.write_text("old\n")
            path.chmod(mode)
            write_file(path, "new\n")
            assert (path.read_text(), stat.S_IMODE(path.stat().st_mode)) == ("new\n", mode)

    def test_generate_writes_0644(self, tmp_path: Path) -> None:
        """`tower generate --write` creates its files 0644 and keeps an existing fly.toml's mode."""
        folder = _flask_on_fly(tmp_path)
        (folder / "fly.toml").chmod(0o664)
        assert _tower(folder, "generate", "all", "--write").returncode == 0
        assert stat.S_IMODE((folder / "Dockerfile").stat().st_mode) == 0o644
        assert stat.S_IMODE((folder / "fly.toml").stat().st_mode) == 0o664
        assert stat.S_IMODE((folder / "tower.toml").stat().st_mode) == 0o644

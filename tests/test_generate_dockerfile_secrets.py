"""`tower generate` moves a secret found in an existing Dockerfile out of it: never copied into
a generated or kept file, never printed, with the command that sets it where it belongs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from tests.test_generate_corpus import REPOS, tower

WEBHOOK = "whsec_Zq8rT2mZk4LpX7wNb3Yc9dF1gH"
USERS_DOCKERFILE = f"""\
# syntax=docker/dockerfile:1
FROM python:3.12-slim
WORKDIR /app
ENV LOG_LEVEL=info STRIPE_WEBHOOK_SECRET={WEBHOOK}
ARG NPM_TOKEN
COPY . .
RUN pip install --no-cache-dir -r requirements.txt
CMD ["uvicorn", "api.main:app", "--host", "0.0.0.0", "--port", "8080"]
"""


def repo(tmp_path: Path) -> Path:
    folder = tmp_path / "billing"
    shutil.copytree(REPOS / "fly-fra-secret", folder)
    (folder / "Dockerfile").write_text(USERS_DOCKERFILE)
    assert tower(folder, "init", ".").returncode == 0
    return folder


def notes_of(done_stdout: str) -> list[str]:
    return [note for f in json.loads(done_stdout)["files"] for note in f["notes"]]


class TestDockerfileSecrets:
    def test_generate_all_keeps_the_file_less_its_secrets(self, tmp_path: Path) -> None:
        """`generate all` keeps the user's Dockerfile but takes out the secret assignments (the
        docker.secrets check requires it): every other line is byte-identical, the non-secret
        LOG_LEVEL stays, and each secret gets its `fly secrets set` command; the value appears
        in no file and no output."""
        folder = repo(tmp_path)
        done = tower(folder, "generate", "all", "--write", "--format", "json")
        assert done.returncode == 0, done.stdout + done.stderr
        text = (folder / "Dockerfile").read_text()
        assert WEBHOOK not in text and "NPM_TOKEN" not in text
        assert "ENV LOG_LEVEL=info\n" in text
        kept = [line for line in USERS_DOCKERFILE.splitlines() if "ENV " not in line]
        kept.remove("ARG NPM_TOKEN")
        assert [line for line in text.splitlines() if not line.startswith("ENV ")] == kept
        notes = notes_of(done.stdout)
        assert any(
            "fly secrets set STRIPE_WEBHOOK_SECRET=<value> -a billing-eu" in n for n in notes
        )
        assert any("NPM_TOKEN" in n and "rotate" in n for n in notes)
        assert WEBHOOK not in done.stdout + done.stderr
        for path in folder.rglob("*"):
            if path.is_file() and path.name != "Dockerfile":
                assert WEBHOOK.encode() not in path.read_bytes(), path
        check = tower(folder, "check", "--static", "--format", "json", "--only", "docker.secrets")
        report = json.loads(check.stdout)
        assert [f["status"] for f in report["findings"]] == ["pass"], report["findings"]

    def test_generate_dockerfile_replaces_without_copying(self, tmp_path: Path) -> None:
        """`generate dockerfile --write` replaces the file with tower's; the diff hides the
        secret's value and the notes say where the secret goes instead."""
        folder = repo(tmp_path)
        done = tower(folder, "generate", "dockerfile", "--format", "json")
        assert done.returncode == 1, done.stdout + done.stderr  # 1: the file would change
        assert WEBHOOK not in done.stdout + done.stderr
        assert "<redacted>" in done.stdout
        assert any("STRIPE_WEBHOOK_SECRET" in n for n in notes_of(done.stdout))
        written = tower(folder, "generate", "dockerfile", "--write")
        assert written.returncode == 0
        assert WEBHOOK not in (folder / "Dockerfile").read_text()

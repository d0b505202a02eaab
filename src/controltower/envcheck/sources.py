"""Where variable values come from: the process, .env files, ``fly secrets list``."""

from __future__ import annotations

import json
import shlex
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from controltower.envcheck import dotenv
from controltower.exceptions import CheckError
from controltower.spec import Spec


@dataclass(frozen=True)
class Value:
    """A variable seen in a source. ``value`` is None when only the name is known."""

    name: str
    value: str | None
    source: str
    line: int = 0

    @property
    def where(self) -> str:
        return f"{self.source}:{self.line}" if self.line else self.source


def env_files(spec: Spec, environment: str | None) -> list[str]:
    files = list(spec.env.files)
    if environment:
        chosen = spec.environments.get(environment)
        extra = chosen.env_files if chosen and chosen.env_files else [f".env.{environment}"]
        files += [f for f in extra if f not in files]
    return files


def from_files(root: Path, files: list[str]) -> dict[str, Value]:
    found: dict[str, Value] = {}
    for name in files:
        path = root / name
        if not path.is_file():
            continue
        for key, entry in dotenv.read(path).items():
            found[key] = Value(key, entry.value, name, entry.line)
    return found


def parse_fly_secrets(text: str, source: str) -> dict[str, Value]:
    """Names from ``fly secrets list --json`` (values are never in it, nor kept)."""
    try:
        data = json.loads(text or "[]")
    except json.JSONDecodeError as exc:
        raise CheckError(
            f"{source}: not the JSON of `fly secrets list --json`: {exc}",
            hint="save it with: fly secrets list --json > fly-secrets.json",
        ) from None
    items = data if isinstance(data, list) else []
    names = [str(i.get("Name") or i.get("name") or "") for i in items if isinstance(i, dict)]
    return {n: Value(n, None, source) for n in names if n}


def from_fly(spec: Spec, root: Path, environment: str | None) -> dict[str, Value]:
    app = spec.environments[environment].fly_app if environment in spec.environments else ""
    if spec.env.fly_secrets_file:
        name = spec.env.fly_secrets_file.replace("{env}", environment or "")
        path = root / name
        if not path.is_file():
            return {}
        return parse_fly_secrets(path.read_text(encoding="utf-8"), name)
    if spec.env.fly_secrets_command:
        command = spec.env.fly_secrets_command.replace("{app}", app).replace(
            "{env}", environment or ""
        )
        try:
            done = subprocess.run(
                shlex.split(command),
                cwd=root,
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise CheckError(f"fly_secrets_command {command!r} could not run: {exc}") from None
        if done.returncode != 0:
            raise CheckError(
                f"fly_secrets_command {command!r} exited {done.returncode}",
                hint="run it by hand; is flyctl logged in?",
            )
        return parse_fly_secrets(done.stdout, "fly secrets")
    return {}


def collect(
    spec: Spec,
    root: Path,
    environment: str | None,
    environ: Mapping[str, str] | None = None,
    *,
    include_process: bool = True,
) -> dict[str, Value]:
    """Every known variable; later sources win: fly secrets, files, then the process."""
    found = from_fly(spec, root, environment)
    found.update(from_files(root, env_files(spec, environment)))
    if include_process and environ:
        names = set(spec.env.vars) | set(found)
        for name in names:
            if name in environ:
                found[name] = Value(name, environ[name], "process environment")
    return found

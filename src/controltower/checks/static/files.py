"""Small helpers for checks that read files."""

from __future__ import annotations

import re
import shutil
import sys
import tomllib
from pathlib import Path
from typing import Any

from controltower.checks.base import CheckContext


def read_text(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None


def line_of(text: str, pattern: str) -> int:
    """The first line (1-based) matching ``pattern`` (a regex), or 0."""
    regex = re.compile(pattern, re.MULTILINE)
    match = regex.search(text)
    return text.count("\n", 0, match.start()) + 1 if match else 0


async def fly_toml(ctx: CheckContext) -> tuple[str, str, dict[str, Any]] | None:
    """(relative name, text, data) of fly.toml, or None when missing; parse errors raise."""

    async def load() -> tuple[str, str, dict[str, Any]] | None:
        name = ctx.spec.service.fly_toml
        text = read_text(ctx.path(name))
        if text is None:
            return None
        try:
            return name, text, tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            return name, text, {"__error__": str(exc)}

    result: tuple[str, str, dict[str, Any]] | None = await ctx.once("fly.toml", load)
    return result


def tool_path(name: str) -> str | None:
    """An outside tool to run: on PATH, else the one a wheel installed beside Python."""
    found = shutil.which(name)
    if found:
        return found
    beside = Path(sys.executable).with_name(name)
    return str(beside) if beside.exists() else None

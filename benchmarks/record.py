"""Write one benchmark's section of benchmarks/RESULTS.md in place.

Each area owns the text between ``<!-- <area>:begin -->`` and ``<!-- <area>:end -->``;
``record("load", markdown)`` replaces it and leaves every other section alone.
"""

from __future__ import annotations

import platform
import re
import subprocess
from datetime import UTC, datetime
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"


def machine() -> str:
    """One line describing where and when a run happened."""
    cores = len(__import__("os").sched_getaffinity(0))
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
            cwd=RESULTS.parent,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = "unknown"
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return f"{when}, commit {commit}, {cores} cores, Python {platform.python_version()}"


def record(area: str, markdown: str, path: Path = RESULTS) -> None:
    """Replace ``area``'s section of RESULTS.md with ``markdown``."""
    text = path.read_text()
    begin, end = f"<!-- {area}:begin -->", f"<!-- {area}:end -->"
    pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end), re.S)
    if not pattern.search(text):
        raise SystemExit(f"{path}: no {begin} ... {end} section to write")
    body = f"{begin}\n{markdown.strip()}\n\n_Recorded {machine()}._\n{end}"
    path.write_text(pattern.sub(lambda _: body, text, count=1))

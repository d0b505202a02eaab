"""The git commit a release ships, and when it was committed."""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime
from pathlib import Path


def git_info(root: Path, rev: str = "HEAD") -> tuple[str, datetime | None]:
    """The commit ``rev`` names at ``root`` and when it was committed, if this is a git tree."""
    try:
        done = subprocess.run(
            ["git", "log", "-1", "--format=%H %ct", rev, "--"],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.TimeoutExpired):
        return "", None
    if done.returncode != 0 or not done.stdout.strip():
        return "", None
    commit, _, stamp = done.stdout.strip().partition(" ")
    return commit, datetime.fromtimestamp(int(stamp), UTC) if stamp.isdigit() else None

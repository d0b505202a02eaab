"""Hooks: shell commands around a deploy, with the release in their environment."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class HookResult:
    command: str
    exit_code: int
    output: str

    @property
    def ok(self) -> bool:
        return self.exit_code == 0


def hook_env(variables: dict[str, str]) -> dict[str, str]:
    """The environment a hook runs with: ours plus ``TOWER_*`` release variables."""
    return {**os.environ, **{f"TOWER_{k.upper()}": v for k, v in variables.items()}}


def run_hook(command: str, *, cwd: Path, variables: dict[str, str], timeout: float) -> HookResult:
    """Run one hook; a timeout counts as exit code 124, like timeout(1)."""
    try:
        done = subprocess.run(
            command,
            shell=True,
            cwd=cwd,
            env=hook_env(variables),
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        return HookResult(command, 124, f"timed out after {timeout:g}s")
    output = (done.stdout + done.stderr).strip()
    return HookResult(command, done.returncode, output[-500:])

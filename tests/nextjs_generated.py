"""The apps of tests/fixtures/nextjs_generated after `tower generate all --write` and
`tower generate nextjs --write`. Each gets the shared fixture's package.json and
package-lock.json (tests/nextjs_support.py), so `build_next_app` can build one with the
node_modules every Next.js test shares."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from tests.nextjs_support import FIXTURE

APPS = Path(__file__).parent / "fixtures" / "nextjs_generated"


def tower(folder: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """``tower *args`` run in ``folder``, with ``env`` added to the environment."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("TOWER_")}
    environ.update(env, TOWER_CHROMIUM=os.environ.get("TOWER_CHROMIUM", ""))
    if not environ["TOWER_CHROMIUM"]:
        del environ["TOWER_CHROMIUM"]
    return subprocess.run(
        [sys.executable, "-m", "controltower", *args],
        cwd=folder,
        env=environ,
        capture_output=True,
        text=True,
        timeout=300,
    )


def generate(language: str, target: Path) -> str:
    """``target`` made a copy of the ``language`` app with the shared package files and the
    files of ``tower generate all --write`` then ``tower generate nextjs --write`` (``all``
    keeps the app's own files, ``nextjs`` brings them in line); returns what they printed."""
    shutil.copytree(APPS / language, target)
    for name in ("package.json", "package-lock.json"):
        shutil.copy(FIXTURE / name, target / name)
    output = ""
    for what in ("all", "nextjs"):
        done = tower(target, "generate", what, "--write")
        if done.returncode != 0:
            raise AssertionError(
                f"tower generate {what} --write exited {done.returncode}:\n"
                + done.stdout
                + done.stderr
            )
        output += done.stdout
    return output

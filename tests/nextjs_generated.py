"""The apps of tests/fixtures/nextjs_generated after `tower generate all --write`, built with
`next build` once per run (scripts/nextjs.sh builds them beside the shared fixture).

Each app gets the shared fixture's package.json and package-lock.json, so the one
``npm ci`` of tests/nextjs_support.py serves them too; the build is cached by the same
key (lockfile, every source file, build environment) and shared by every worker::

    from tests.nextjs_generated import built_app

    def test_it(next_server):
        app = built_app("js")                    # generated and built (once per run)
        server = next_server(app.build, DATABASE_URL=...)
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from tests.nextjs_support import FIXTURE, NextBuild, build_next_app, build_or_fail

APPS = Path(__file__).parent / "fixtures" / "nextjs_generated"
LANGUAGES = ("js", "ts")
# Read at build time: names the project, the key and tower's address for the web-vitals
# beacon and the browser SDK. Nothing listens on port 9; the browser tests intercept it.
BUILD_ENV = {"NEXT_PUBLIC_SENTRY_DSN": "http://0123456789abcdef0123456789abcdef@127.0.0.1:9/7"}


@dataclass(frozen=True)
class GeneratedApp:
    """``sources``: the app with tower's files, as a user would commit it; ``build``: built."""

    language: str
    sources: Path
    build: NextBuild
    generate_output: str


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


def _sources(language: str) -> tuple[Path, str]:
    holder = Path(tempfile.mkdtemp(prefix=f"tower-next-{language}-"))
    return holder / "app", generate(language, holder / "app")


def built_app(language: str) -> GeneratedApp:
    """The ``language`` app generated and built (skips, or fails under TOWER_REQUIRE_NEXTJS=1,
    when Next.js cannot build here)."""
    sources, output = _sources(language)
    return GeneratedApp(language, sources, build_or_fail(sources, env=BUILD_ENV), output)


def _build(language: str) -> GeneratedApp:
    sources, output = _sources(language)
    return GeneratedApp(language, sources, build_next_app(sources, env=BUILD_ENV), output)


if __name__ == "__main__":  # scripts/nextjs.sh: build both while the shared fixture builds
    with ThreadPoolExecutor(len(LANGUAGES)) as pool:
        for app in pool.map(_build, LANGUAGES):
            print(f"{app.language}: {app.build.folder}", file=sys.stderr)

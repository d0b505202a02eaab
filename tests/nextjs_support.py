"""A real Next.js app for the tests: installed with ``npm ci``, built with ``next build`` once
per test run (whatever the number of pytest-xdist workers), served with ``next start``.

The app is tests/fixtures/nextjs_app (next 15, react 19, @sentry/nextjs 10, typescript and
@sentry/cli, pinned by its package-lock.json). A test that needs another app (a copy with
generated files, a JavaScript variant) builds that folder the same way::

    from tests.nextjs_support import build_next_app, copy_fixture, next_server

    @slow_build                                          # building may take minutes
    def test_it(next_app: NextBuild, next_server):        # the fixture app, built once
        url = next_server(next_app, SENTRY_DSN="...")    # `next start` on a free port

    def test_variant(tmp_path, next_server):
        built = build_next_app(env=BUILD_B)              # the second build (scripts/nextjs.sh)
        folder = copy_fixture(tmp_path / "app")             # or a copy to change, then
        built = build_next_app(folder)                      # build that

Installs are cached under ``$XDG_CACHE_HOME/controltower-tests/nextjs`` keyed by the
lockfile (``modules-<hash>``), builds keyed by the lockfile, every source file and the
build environment (``build-<hash>``); a file lock per key makes concurrent workers wait
for the one that builds. When Node.js, npm or the build is not available the tests skip,
or fail when ``TOWER_REQUIRE_NEXTJS=1`` (set by scripts/test.sh and CI).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

FIXTURE = Path(__file__).parent / "fixtures" / "nextjs_app"
REQUIRE = "TOWER_REQUIRE_NEXTJS"
_SKIP = {"node_modules", ".next", "next-env.d.ts", "tsconfig.tsbuildinfo"}
INSTALL_TIMEOUT = 600
BUILD_TIMEOUT = 1200
# A test that may build (or wait for another worker's build) needs more than the default 300 s.
slow_build = pytest.mark.timeout(INSTALL_TIMEOUT + BUILD_TIMEOUT)


class NextUnavailable(Exception):
    """Node.js, npm, the install or the build did not work here."""


@dataclass(frozen=True)
class NextBuild:
    """A built app: ``folder`` holds the sources, node_modules and ``.next``. Read-only."""

    folder: Path
    key: str
    env: Mapping[str, str] = field(default_factory=dict)

    def bin(self, name: str) -> Path:
        """A program of the app's node_modules, e.g. ``bin("sentry-cli")``."""
        return self.folder / "node_modules" / ".bin" / name


def cache_root() -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    root = base / "controltower-tests" / "nextjs"
    root.mkdir(parents=True, exist_ok=True)
    return root


def _sources(folder: Path) -> list[Path]:
    files = []
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder)
        if relative.parts[0] in _SKIP or not path.is_file():
            continue
        files.append(path)
    return files


def _digest(folder: Path, env: Mapping[str, str], *, sources: bool) -> str:
    digest = hashlib.sha256()
    files = _sources(folder) if sources else [folder / "package.json", folder / "package-lock.json"]
    for path in files:
        digest.update(str(path.relative_to(folder)).encode() + b"\0" + path.read_bytes() + b"\0")
    for key in sorted(env):
        digest.update(f"{key}={env[key]}\0".encode())
    return digest.hexdigest()[:20]


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    with path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _environ(extra: Mapping[str, str] = {}) -> dict[str, str]:
    return {
        **os.environ,
        "NEXT_TELEMETRY_DISABLED": "1",
        "SENTRY_SUPPRESS_GLOBAL_ERROR_HANDLER_FILE_WARNING": "1",
        **extra,
    }


def _run(command: list[str], cwd: Path, timeout: float, env: Mapping[str, str] = {}) -> None:
    try:
        done = subprocess.run(
            command,
            cwd=cwd,
            env=_environ(env),
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise NextUnavailable(f"{' '.join(command)} in {cwd}: {exc}") from exc
    if done.returncode != 0:
        output = (done.stdout + done.stderr)[-4000:]
        raise NextUnavailable(f"{' '.join(command)} in {cwd} exited {done.returncode}:\n{output}")


def install(source: Path = FIXTURE) -> Path:
    """node_modules for ``source``'s lockfile (``npm ci``, once per lockfile); returns its folder."""
    if not (shutil.which("node") and shutil.which("npm")):
        raise NextUnavailable("Node.js and npm are not on PATH")
    if not (source / "package-lock.json").is_file():
        raise NextUnavailable(f"{source} has no package-lock.json")
    root = cache_root()
    key = _digest(source, {}, sources=False)
    target = root / f"modules-{key}"
    with _locked(root / f"modules-{key}.lock"):
        if not (target / "ready").exists():
            shutil.rmtree(target, ignore_errors=True)
            target.mkdir()
            for name in ("package.json", "package-lock.json"):
                shutil.copy(source / name, target / name)
            _run(
                ["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"],
                target,
                INSTALL_TIMEOUT,
            )
            (target / "ready").write_text("")
    return target / "node_modules"


def _link_tree(source: Path, target: Path) -> None:
    """A copy of ``source`` made of hard links (fast, no extra space); a plain copy if that fails."""
    done = subprocess.run(["cp", "-al", str(source), str(target)], capture_output=True)
    if done.returncode != 0:
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(source, target, symlinks=True)


def copy_fixture(target: Path, source: Path = FIXTURE) -> Path:
    """A copy of the fixture app's sources (no node_modules, no build) to change in a test."""
    shutil.copytree(source, target, ignore=shutil.ignore_patterns(*_SKIP))
    return target


def build_next_app(source: Path = FIXTURE, *, env: Mapping[str, str] = {}) -> NextBuild:
    """``source`` installed and built with ``npm run build`` (``env`` set for the build),
    once per lockfile + sources + env across every worker and run; returns the built copy."""
    modules = install(source)
    root = cache_root()
    key = _digest(source, env, sources=True)
    target = root / f"build-{key}"
    with _locked(root / f"build-{key}.lock"):
        if not (target / ".ready").exists():
            shutil.rmtree(target, ignore_errors=True)
            work = root / f"build-{key}.partial"
            shutil.rmtree(work, ignore_errors=True)
            shutil.copytree(source, work, ignore=shutil.ignore_patterns(*_SKIP))
            _link_tree(modules, work / "node_modules")
            started = time.monotonic()
            _run(["npm", "run", "build", "--silent"], work, BUILD_TIMEOUT, env)
            (work / ".build-seconds").write_text(f"{time.monotonic() - started:.1f}\n")
            work.rename(target)
            (target / ".ready").write_text("")
    return NextBuild(folder=target, key=key, env=dict(env))


def build_or_fail(source: Path = FIXTURE, *, env: Mapping[str, str] = {}) -> NextBuild:
    """:func:`build_next_app`, skipping the test (failing it under ``TOWER_REQUIRE_NEXTJS=1``)
    when Next.js cannot be installed or built here."""
    try:
        return build_next_app(source, env=env)
    except NextUnavailable as exc:
        from tests.conftest import unavailable  # tests.conftest imports this module

        unavailable(f"the Next.js app could not be built: {exc}", REQUIRE)
        raise


@dataclass
class NextServer:
    """A running ``next start``."""

    build: NextBuild
    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


def start_next(build: NextBuild, log: Path, env: Mapping[str, str] = {}) -> NextServer:
    """``next start`` of ``build`` on a free port of 127.0.0.1; waits until it answers."""
    from tests.conftest import free_port

    port = free_port()
    handle = log.open("wb")
    process = subprocess.Popen(
        [str(build.bin("next")), "start", "--port", str(port), "--hostname", "127.0.0.1"],
        cwd=build.folder,
        env=_environ({"PORT": str(port), **env}),
        stdout=handle,
        stderr=subprocess.STDOUT,
    )
    handle.close()
    server = NextServer(build, f"http://127.0.0.1:{port}", process, log)
    deadline = time.monotonic() + 60
    delay = 0.1
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise NextUnavailable(f"next start exited {process.returncode}:\n{server.output()}")
        try:
            httpx.get(server.url + "/", timeout=2)
            return server
        except httpx.TransportError:
            time.sleep(delay)
            delay = min(delay * 2, 1.0)
    server.stop()
    raise NextUnavailable(f"next start did not answer on port {port}:\n{server.output()}")


@pytest.fixture(scope="session")
def next_app() -> NextBuild:
    """The fixture app, built once per run (shared by every worker)."""
    return build_or_fail()


@pytest.fixture
def next_server(tmp_path: Path) -> Iterator[Callable[..., NextServer]]:
    """``next_server(build, **env)`` starts ``next start`` and stops it after the test."""
    servers: list[NextServer] = []

    def start(build: NextBuild, **env: str) -> NextServer:
        try:
            server = start_next(build, tmp_path / f"next-{len(servers)}.log", env)
        except NextUnavailable as exc:
            from tests.conftest import unavailable

            unavailable(str(exc), REQUIRE)
            raise
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


BUILD_B = {"FIXTURE_BUILD": "B"}
"""The second build of the fixture (``build_or_fail(env=BUILD_B)``): another ``next build``
whose responses say ``B``, for the tests that need two real builds (rollback, source maps)."""


if __name__ == "__main__":  # scripts/test.sh builds the fixture (A and B) before the tests start
    built = build_next_app()
    build_next_app(env=BUILD_B)
    print(built.folder)

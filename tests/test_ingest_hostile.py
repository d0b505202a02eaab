"""A real ``tower serve`` process under hostile bodies: decompression bombs.

brotli (16 MiB and 4 MiB windows), gzip and deflate bombs of 200 B to 4 kB
(decoding to 200 kB ... 4 GiB),
posted to every ingestion endpoint with a valid key, a wrong key and no key:
every answer is a 4xx that names what it refused, quickly, and the process's
resident memory (read from /proc) barely moves. The timing bound here is loose
(a shared CI machine); benchmarks/ingest/bombs.py records the real figures.
"""

from __future__ import annotations

import gzip
import statistics
import time
import zlib
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from controltower.ingest.projects import ProjectInfo, load_projects
from controltower.store import Store
from tests.serve_support import ServeProcess, crash_event, envelope

BOMBS = Path(__file__).parent / "fixtures" / "bombs"
SPEC = """
[service]
name = "shop"

[[server.projects]]
name = "web"
rate_limit = 100000
"""

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("hostile")]


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def _deflate(data: bytes) -> bytes:
    return zlib.compress(data, 9)


def bombs() -> list[tuple[str, str, bytes]]:
    """(name, Content-Encoding, body) for every bomb of 200 B to 4 kB."""
    made: list[tuple[str, str, bytes]] = []
    for path in sorted(BOMBS.glob("zeros-*.br")):
        made.append((path.name, "br", path.read_bytes()))
    for decoded in (200_000, 1_000_000, 4_000_000):
        made.append((f"gzip-{decoded}", "gzip", gzip.compress(b"\0" * decoded, 9)))
        made.append((f"deflate-{decoded}", "deflate", _deflate(b"\0" * decoded)))
    assert all(200 <= len(body) <= 4096 for _, _, body in made), [
        (name, len(body)) for name, _, body in made
    ]
    return made


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServeProcess, ProjectInfo]]:
    root = tmp_path_factory.mktemp("hostile")
    spec = root / "tower.toml"
    spec.write_text(SPEC)
    url = f"sqlite:///{root / 'tower.db'}"
    server = ServeProcess(spec, url, "--no-dashboard")
    try:
        with Store.open(url) as store:
            [project] = load_projects(store)
        yield server, project
    finally:
        server.stop()


class TestBombs:
    def test_bombs_are_refused_fast_with_flat_memory(
        self, served: tuple[ServeProcess, ProjectInfo]
    ) -> None:
        """Every bomb, with a valid key, a wrong key or no key, on every endpoint, is a 4xx
        (413 naming the cap with a key, 401/403 without one), and RSS grows < 50 MB."""
        server, project = served
        pid = server.process.pid
        keys = {"valid": project.public_key, "wrong": "0" * 32, "none": ""}
        with httpx.Client(base_url=server.url, timeout=30) as client:
            # Warm up: every decoder and the thread pool once, with real events.
            for encoding, encode in (("gzip", gzip.compress), ("br", None), ("deflate", _deflate)):
                import brotli

                body = envelope(crash_event("ValueError", "warm", "f"))
                data = brotli.compress(body) if encode is None else encode(body)
                answer = client.post(
                    f"/api/{project.id}/envelope/?sentry_key={project.public_key}",
                    content=data,
                    headers={"Content-Encoding": encoding},
                )
                assert answer.status_code == 200, answer.text
            before = rss_mib(pid)
            timings: list[float] = []
            for name, encoding, body in bombs():
                for mode, key in keys.items():
                    for endpoint in ("envelope", "store", "security"):
                        query = f"?sentry_key={key}" if key else ""
                        started = time.perf_counter()
                        answer = client.post(
                            f"/api/{project.id}/{endpoint}/{query}",
                            content=body,
                            headers={"Content-Encoding": encoding},
                        )
                        timings.append(time.perf_counter() - started)
                        where = f"{name} ({len(body)} B) {mode} key to {endpoint}"
                        if mode == "valid" and encoding == "br" and "w22" not in name:
                            assert answer.status_code == 400, where  # 16 MiB window
                            assert "window" in answer.json()["detail"], where
                        elif mode == "valid":
                            assert answer.status_code == 413, where
                            assert answer.json()["cap"] in (
                                "max_event_size",
                                "max_decompression_ratio",
                            ), where
                        else:
                            assert answer.status_code in (400, 401, 403), where
            after = rss_mib(pid)
        assert after - before < 50, f"RSS grew from {before:.0f} MiB to {after:.0f} MiB"
        assert statistics.median(timings) < 0.1, f"median {statistics.median(timings):.3f}s"
        assert max(timings) < 2.0, f"slowest {max(timings):.3f}s"
        assert server.process.poll() is None

    def test_oversized_declared_body_is_refused_before_reading(
        self, served: tuple[ServeProcess, ProjectInfo]
    ) -> None:
        """A Content-Length over max_body_size is 413 naming max_body_size."""
        server, project = served
        with httpx.Client(base_url=server.url, timeout=30) as client:
            answer = client.post(
                f"/api/{project.id}/envelope/?sentry_key={project.public_key}",
                content=b"x" * (1024 * 1024 + 1),
            )
        assert answer.status_code == 413
        assert answer.json()["cap"] == "max_body_size"

    def test_wrong_key_is_refused_before_the_body(
        self, served: tuple[ServeProcess, ProjectInfo]
    ) -> None:
        """A wrong key in the query gets 403 whatever the body holds (not even decoded)."""
        server, project = served
        with httpx.Client(base_url=server.url, timeout=30) as client:
            answer = client.post(
                f"/api/{project.id}/envelope/?sentry_key={'1' * 32}",
                content=b"\xff\xfe not brotli at all",
                headers={"Content-Encoding": "br"},
            )
        assert answer.status_code == 403

    def test_tunnelled_envelope_authenticates_from_its_header(
        self, served: tuple[ServeProcess, ProjectInfo]
    ) -> None:
        """An envelope carrying its DSN only in its header line (a tunnel) is accepted,
        compressed or not."""
        server, project = served
        dsn = f"http://{project.public_key}@127.0.0.1/{project.id}"
        body = envelope(crash_event("ValueError", "tunnelled", "f"))
        header, rest = body.split(b"\n", 1)
        tunnelled = header[:-1] + b', "dsn": "' + dsn.encode() + b'"}\n' + rest
        with httpx.Client(base_url=server.url, timeout=30) as client:
            plain = client.post(f"/api/{project.id}/envelope/", content=tunnelled)
            zipped = client.post(
                f"/api/{project.id}/envelope/",
                content=gzip.compress(tunnelled),
                headers={"Content-Encoding": "gzip"},
            )
        assert plain.status_code == 200, plain.text
        assert zipped.status_code == 200, zipped.text

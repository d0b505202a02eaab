"""Source map uploads (Sentry's chunk-upload and artifact-bundle protocol) and
symbolication on ingestion, on a small bundle made here; the real sentry-cli and a real
Next.js build are in tests/test_nextjs_sourcemaps.py."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import zipfile
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from controltower.ingest.event import parse_event
from controltower.ingest.projects import ensure_project
from controltower.ingest.scopes import enclosing_function
from controltower.ingest.symbolicate import Symbolicator, original_filename, url_of
from controltower.server import RunningServer, create_token, start_server
from controltower.store import Store

NOW = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)
DEBUG_ID = "db7dfbf9-0afd-57e3-954a-75506065658f"
ORIGINAL = """export function applyDiscount(code: string): number {
  if (code !== "WELCOME10") {
    throw new Error(`unknown discount code ${code}`);
  }
  return 10;
}
"""
MINIFIED = 'function a(b){if("WELCOME10"!==b)throw Error("unknown discount code "+b);return 10}\n'
_B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"


def _vlq(value: int) -> str:
    value = (-value << 1) | 1 if value < 0 else value << 1
    out = ""
    while True:
        digit = value & 31
        value >>= 5
        out += _B64[digit | (32 if value else 0)]
        if not value:
            return out


def _mappings(segments: list[tuple[int, int, int]]) -> str:
    """One minified line: (minified column, original line, original column) per segment."""
    parts, last = [], (0, 0, 0)
    for column, line, original_column in segments:
        parts.append(
            _vlq(column - last[0])
            + _vlq(0)
            + _vlq(line - last[1])
            + _vlq(original_column - last[2])
        )
        last = (column, line, original_column)
    return ",".join(parts)


SOURCE_MAP = {
    "version": 3,
    "file": "page-4585df5bdf10dbf4.js",
    "sources": ["webpack://_N_E/./app/checkout-button.tsx"],
    "sourcesContent": [ORIGINAL],
    "names": [],
    # `function a(b){` -> line 0; `throw Error(` (column 34) -> line 2, column 4; `return` -> line 4.
    "mappings": _mappings([(0, 0, 7), (14, 1, 2), (34, 2, 4), (72, 4, 2)]),
}


def bundle(*, release: str = "shop@1", debug_id: str = DEBUG_ID) -> bytes:
    files = {
        "files/_/_/page.js": (
            MINIFIED.encode(),
            {
                "url": "~/_next/static/chunks/app/page-4585df5bdf10dbf4.js",
                "type": "minified_source",
                "headers": {"debug-id": debug_id, "Sourcemap": "page-4585df5bdf10dbf4.js.map"},
            },
        ),
        "files/_/_/page.js.map": (
            json.dumps(SOURCE_MAP).encode(),
            {
                "url": "~/_next/static/chunks/app/page-4585df5bdf10dbf4.js.map",
                "type": "source_map",
                "headers": {"debug-id": debug_id},
            },
        ),
    }
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        manifest = {"org": "tower", "release": release, "files": {}}
        for path, (data, info) in files.items():
            archive.writestr(path, data)
            manifest["files"][path] = info
        archive.writestr("manifest.json", json.dumps(manifest))
    return buffer.getvalue()


def sha1(data: bytes) -> str:
    return hashlib.sha1(data).hexdigest()


@pytest.fixture
def served(tmp_path: Any) -> Iterator[tuple[RunningServer, Store, str]]:
    with Store.open(f"sqlite:///{tmp_path / 'tower.db'}") as store:
        ensure_project(store, "web")
        token, _ = create_token(store, "ci", ["ingest"])
        with start_server(None, store, monitors=False, notify=False) as server:
            yield server, store, token


def upload(server: RunningServer, token: str, data: bytes, **extra: Any) -> dict[str, Any]:
    """The sentry-cli sequence: options, chunks (gzip), assemble."""
    auth = {"Authorization": f"Bearer {token}"}
    options = httpx.get(f"{server.url}/api/0/organizations/tower/chunk-upload/", headers=auth)
    assert options.status_code == 200
    size = options.json()["chunkSize"]
    chunks = [data[i : i + size] for i in range(0, len(data), size)]
    files = [("file_gzip", (sha1(chunk), gzip.compress(chunk))) for chunk in chunks]
    posted = httpx.post(options.json()["url"], headers=auth, files=files)
    assert posted.status_code == 200, posted.text
    body = {"checksum": sha1(data), "chunks": [sha1(c) for c in chunks], "projects": ["web"]}
    answer = httpx.post(
        f"{server.url}/api/0/organizations/tower/artifactbundle/assemble/",
        headers=auth,
        json={**body, **extra},
    )
    assert answer.status_code == 200, answer.text
    result: dict[str, Any] = answer.json()
    return result


def browser_event(project_id: int, *, images: bool = True, release: str = "shop@1") -> Any:
    payload: dict[str, Any] = {
        "platform": "javascript",
        "release": release,
        "exception": {
            "values": [
                {
                    "type": "Error",
                    "value": "unknown discount code BOGUS",
                    "stacktrace": {
                        "frames": [
                            {
                                "filename": "http://127.0.0.1:3000/_next/static/chunks/app/page-4585df5bdf10dbf4.js",
                                "abs_path": "http://127.0.0.1:3000/_next/static/chunks/app/page-4585df5bdf10dbf4.js",
                                "function": "a",
                                "lineno": 1,
                                "colno": 35,
                                "in_app": True,
                            }
                        ]
                    },
                }
            ]
        },
    }
    if images:
        payload["debug_meta"] = {
            "images": [
                {
                    "type": "sourcemap",
                    "code_file": payload["exception"]["values"][0]["stacktrace"]["frames"][0][
                        "abs_path"
                    ],
                    "debug_id": DEBUG_ID,
                }
            ]
        }
    return parse_event(payload, project_id=project_id, received_at=NOW)


class TestUploadProtocol:
    def test_chunks_and_assemble_store_the_bundle(
        self, served: tuple[RunningServer, Store, str]
    ) -> None:
        """Options, gzip chunks named by SHA-1, then assemble: state ok, and again ok."""
        server, _, token = served
        data = bundle()
        assert upload(server, token, data, version="shop@1") == {
            "state": "ok",
            "missingChunks": [],
            "detail": None,
        }
        assert upload(server, token, data)["state"] == "ok"

    def test_missing_chunks_are_listed(self, served: tuple[RunningServer, Store, str]) -> None:
        """artifact_bundles_v2: assemble before the upload names the chunks to send."""
        server, _, token = served
        data = bundle(release="shop@2")
        answer = httpx.post(
            f"{server.url}/api/0/organizations/tower/artifactbundle/assemble/",
            headers={"Authorization": f"Bearer {token}"},
            json={"checksum": sha1(data), "chunks": [sha1(data)], "projects": ["web"]},
        )
        assert answer.json() == {
            "state": "not_found",
            "missingChunks": [sha1(data)],
            "detail": None,
        }

    def test_a_chunk_must_match_its_name(self, served: tuple[RunningServer, Store, str]) -> None:
        """A chunk whose content is not its SHA-1 is refused (400, Sentry's detail)."""
        server, _, token = served
        answer = httpx.post(
            f"{server.url}/api/0/organizations/tower/chunk-upload/",
            headers={"Authorization": f"Bearer {token}"},
            files=[("file", ("0" * 40, b"not that"))],
        )
        assert answer.status_code == 400
        assert "SHA-1" in answer.json()["detail"]

    def test_tokens_are_required_and_scoped(self, served: tuple[RunningServer, Store, str]) -> None:
        """No token: 401; a read-only token: 403; an unknown project: 400."""
        server, store, token = served
        url = f"{server.url}/api/0/organizations/tower/chunk-upload/"
        assert httpx.get(url).status_code == 401
        reader, _ = create_token(store, "reader", ["read"])
        assert httpx.get(url, headers={"Authorization": f"Bearer {reader}"}).status_code == 403
        answer = httpx.post(
            f"{server.url}/api/0/organizations/tower/artifactbundle/assemble/",
            headers={"Authorization": f"Bearer {token}"},
            json={"checksum": "a" * 40, "chunks": ["a" * 40], "projects": ["nope"]},
        )
        assert answer.status_code == 400 and "nope" in answer.json()["detail"]

    def test_releases_are_created_finalized_and_deployed(
        self, served: tuple[RunningServer, Store, str]
    ) -> None:
        """releases new / finalize / deploys new, as sentry-cli calls them."""
        server, _, token = served
        auth = {"Authorization": f"Bearer {token}"}
        base = f"{server.url}/api/0/organizations/tower/releases/"
        created = httpx.post(base, headers=auth, json={"version": "shop@1", "projects": ["web"]})
        assert created.status_code == 201 and created.json()["dateReleased"] is None
        done = httpx.put(base + "shop@1/", headers=auth, json={"dateReleased": NOW.isoformat()})
        assert done.status_code == 200 and done.json()["dateReleased"].startswith("2026-12-03")
        deploy = httpx.post(base + "shop@1/deploys/", headers=auth, json={"environment": "prod"})
        assert deploy.status_code == 201
        assert httpx.get(base + "nope/", headers=auth).status_code == 404


class TestSymbolication:
    def test_frames_are_mapped_by_debug_id(self, served: tuple[RunningServer, Store, str]) -> None:
        """The frame reads app/checkout-button.tsx:3 in applyDiscount, with source context;
        the minified frame is kept beside it; the event regroups on the original frame."""
        server, store, token = served
        upload(server, token, bundle())
        project = ensure_project(store, "web")
        event = browser_event(project.id)
        [mapped] = Symbolicator(store).apply([event])
        frame = mapped.data["exception"][0]["frames"][0]
        assert frame["filename"] == "app/checkout-button.tsx"
        assert (frame["lineno"], frame["colno"]) == (3, 5)
        assert frame["function"] == "applyDiscount"
        assert frame["context_line"] == "    throw new Error(`unknown discount code ${code}`);"
        assert frame["pre_context"][-1] == '  if (code !== "WELCOME10") {'
        assert frame["minified"]["function"] == "a"
        assert mapped.fingerprint != event.fingerprint

    def test_frames_are_mapped_by_release_and_url(
        self, served: tuple[RunningServer, Store, str]
    ) -> None:
        """Without a debug ID, the release and the file's URL find the map."""
        server, store, token = served
        upload(server, token, bundle(debug_id="00000000-0000-0000-0000-000000000001"))
        project = ensure_project(store, "web")
        [mapped] = Symbolicator(store).apply([browser_event(project.id, images=False)])
        assert mapped.data["exception"][0]["frames"][0]["filename"] == "app/checkout-button.tsx"
        [other] = Symbolicator(store).apply(
            [browser_event(project.id, images=False, release="shop@9")]
        )
        assert "minified" not in other.data["exception"][0]["frames"][0]

    def test_without_maps_events_stay_as_sent(self, store: Store) -> None:
        """No bundle: the event is unchanged (and grouped on its minified frames)."""
        project = ensure_project(store, "web")
        event = browser_event(project.id)
        assert Symbolicator(store).apply([event]) == [event]


class TestNames:
    def test_original_filenames_and_urls(self) -> None:
        """webpack:// prefixes and ./ go; a frame's URL becomes the bundle's ~/ URL."""
        assert original_filename("webpack://_N_E/./app/page.tsx") == "app/page.tsx"
        assert original_filename("webpack://shop/app/api/route.ts") == "app/api/route.ts"
        assert url_of("http://h:3000/_next/static/x.js?v=1") == "~/_next/static/x.js"
        assert url_of("app:///_next/server/app/route.js") == "~/_next/server/app/route.js"

    def test_enclosing_function_names(self) -> None:
        """Functions, methods and arrow functions assigned to names are named; blocks of
        if/try are passed over; an anonymous callback has no name."""
        source = (
            "export async function GET(request: Request) {\n"
            "  try {\n"
            "    if (x) {\n"
            "      boom();\n"
            "    }\n"
            "  } catch (e) {}\n"
            "}\n"
            "const handlers = {\n"
            "  a: () => {\n"
            "    throw new Error(`x ${y}`);\n"
            "  },\n"
            "};\n"
            "items.forEach((item) => {\n"
            "  fail(item);\n"
            "});\n"
            "class Cart {\n"
            "  total(): number {\n"
            "    return sum();\n"
            "  }\n"
            "}\n"
        )
        assert enclosing_function(source, 3, 6) == "GET"
        assert enclosing_function(source, 9, 4) == "a"
        assert enclosing_function(source, 13, 2) is None
        assert enclosing_function(source, 17, 4) == "total"

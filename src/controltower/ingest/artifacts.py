"""Artifact bundles as ``sentry-cli`` and Sentry's bundler plugins upload them.

The protocol (Sentry's ``chunk-upload`` and ``artifactbundle/assemble`` endpoints, as
sentry-cli's ``sourcemaps upload`` speaks it): the client asks for the upload options,
splits the bundle (a zip with ``manifest.json``) into chunks named by their SHA-1, posts
the chunks, then asks the server to assemble the bundle from the list of chunk checksums;
it polls until the state is ``ok`` or ``error``. A client that knows
``artifact_bundles_v2`` asks first and uploads only the chunks the answer lists as missing.

A bundle's manifest names each file's URL (``~/_next/static/chunks/x.js``), type
(``minified_source``, ``source_map``, ``source``) and headers (``debug-id``,
``sourcemap``). tower keeps the bundle whole per project, with an index row per file
by debug ID and by release + dist + URL, which is how events find their maps.
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select

from controltower.clock import utcnow
from controltower.exceptions import IngestError
from controltower.store import Store
from controltower.store.models.sourcemaps import ArtifactBundle, ArtifactFile, UploadChunk

CHUNK_SIZE = 8 * 1024 * 1024
CHUNKS_PER_REQUEST = 64
MAX_REQUEST_SIZE = 32 * 1024 * 1024
MAX_FILE_SIZE = 256 * 1024 * 1024
CHUNK_TTL = timedelta(days=1)
FILE_KINDS = frozenset({"minified_source", "source_map", "source", "indexed_ram_bundle"})


class BundleError(IngestError):
    """An uploaded artifact bundle that cannot be read."""


@dataclass(frozen=True)
class AssembleResult:
    state: str
    missing: list[str]
    detail: str | None = None


def sha1(data: bytes) -> str:
    return hashlib.sha1(data, usedforsecurity=False).hexdigest()


def store_chunks(store: Store, chunks: Iterable[tuple[str, bytes]], now: datetime) -> int:
    """Keep uploaded chunks (a chunk already there is kept once); returns how many."""
    count = 0
    with store.session() as session:
        for checksum, data in chunks:
            if session.get(UploadChunk, checksum) is None:
                session.add(UploadChunk(checksum=checksum, data=data, created_at=now))
                session.flush()
            count += 1
    return count


def missing_chunks(store: Store, checksums: Sequence[str]) -> list[str]:
    with store.session() as session:
        have = set(
            session.scalars(select(UploadChunk.checksum).where(UploadChunk.checksum.in_(checksums)))
        )
    return [checksum for checksum in checksums if checksum not in have]


def assembled(store: Store, project_ids: Sequence[int], checksum: str) -> bool:
    with store.session() as session:
        found = session.scalars(
            select(ArtifactBundle.project_id).where(
                ArtifactBundle.checksum == checksum, ArtifactBundle.project_id.in_(project_ids)
            )
        ).all()
    return set(found) >= set(project_ids)


@dataclass(frozen=True)
class BundleFile:
    path: str
    url: str
    kind: str
    debug_id: str
    sourcemap: str


def read_manifest(data: bytes) -> tuple[dict[str, object], list[BundleFile]]:
    """The manifest of a bundle and its files; BundleError if it is not one."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        manifest = json.loads(archive.read("manifest.json"))
        names = set(archive.namelist())
    except (zipfile.BadZipFile, KeyError, ValueError) as exc:
        raise BundleError(f"the artifact bundle is not a zip with a manifest.json: {exc}") from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("files"), dict):
        raise BundleError("the artifact bundle's manifest.json has no files object")
    files: list[BundleFile] = []
    for path, info in manifest["files"].items():
        if not isinstance(info, dict) or path not in names:
            continue
        headers = info.get("headers") if isinstance(info.get("headers"), dict) else {}
        assert isinstance(headers, dict)
        lowered = {str(key).lower(): str(value) for key, value in headers.items()}
        kind = str(info.get("type") or "")
        files.append(
            BundleFile(
                path=str(path),
                url=str(info.get("url") or ""),
                kind=kind if kind in FILE_KINDS else "source",
                debug_id=normalize_debug_id(lowered.get("debug-id", "")),
                sourcemap=lowered.get("sourcemap", lowered.get("x-sourcemap", "")),
            )
        )
    return manifest, files


def normalize_debug_id(value: str) -> str:
    text = value.strip().lower()
    return text if len(text) == 36 and text.count("-") == 4 else ""


def assemble(
    store: Store,
    project_ids: Sequence[int],
    checksum: str,
    chunks: Sequence[str],
    *,
    release: str = "",
    dist: str = "",
    now: datetime | None = None,
) -> AssembleResult:
    """Put the bundle together from its chunks and index it for each project."""
    now = now or utcnow()
    if assembled(store, project_ids, checksum):
        return AssembleResult("ok", [])
    if not chunks:
        return AssembleResult("not_found", [])
    missing = missing_chunks(store, chunks)
    if missing:
        return AssembleResult("not_found", missing)
    with store.session() as session:
        parts = {
            row.checksum: row.data
            for row in session.scalars(select(UploadChunk).where(UploadChunk.checksum.in_(chunks)))
        }
    data = b"".join(parts[checksum_] for checksum_ in chunks)
    if sha1(data) != checksum:
        return AssembleResult("error", [], "the assembled bundle does not match its checksum")
    try:
        manifest, files = read_manifest(data)
    except BundleError as exc:
        return AssembleResult("error", [], exc.message)
    release = release or str(manifest.get("release") or "")
    dist = dist or str(manifest.get("dist") or "")
    with store.session() as session:
        for project_id in project_ids:
            exists = session.scalar(
                select(ArtifactBundle.id).where(
                    ArtifactBundle.project_id == project_id, ArtifactBundle.checksum == checksum
                )
            )
            if exists is not None:
                continue
            bundle = ArtifactBundle(
                project_id=project_id,
                checksum=checksum,
                release=release[:200],
                dist=dist[:64],
                file_count=len(files),
                data=data,
                created_at=now,
            )
            session.add(bundle)
            session.flush()
            session.add_all(
                ArtifactFile(
                    bundle_id=bundle.id,
                    project_id=project_id,
                    path=file.path[:1000],
                    url=file.url[:1000],
                    kind=file.kind,
                    debug_id=file.debug_id,
                    sourcemap=file.sourcemap[:1000],
                    release=release[:200],
                    dist=dist[:64],
                )
                for file in files
            )
        session.execute(delete(UploadChunk).where(UploadChunk.created_at < now - CHUNK_TTL))
    return AssembleResult("ok", [])

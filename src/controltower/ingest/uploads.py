"""Sentry-compatible upload endpoints for source maps, as ``sentry-cli`` and the Sentry
bundler plugins (``withSentryConfig`` in Next.js) call them.

``GET  /api/0/organizations/{org}/chunk-upload/``            upload options
``POST /api/0/organizations/{org}/chunk-upload/``            chunks (multipart ``file``/``file_gzip``)
``POST /api/0/organizations/{org}/artifactbundle/assemble/`` assemble a bundle from its chunks
``POST /api/0/organizations/{org}/releases/``                create a release (also under
                                                               ``/api/0/projects/{org}/{project}/``)
``GET|PUT /api/0/organizations/{org}/releases/{version}/``   read, update or finalize it
                                                               (also under ``/api/0/projects/…``)
``POST /api/0/organizations/{org}/releases/{version}/deploys/`` record a deploy

Authenticated by a tower API token (``Authorization: Bearer tower_...``) with the
``write`` or ``ingest`` scope. tower has one organization: any ``org`` slug is accepted;
projects are tower's ``[[server.projects]]`` names. Error bodies are Sentry's
``{"detail": "..."}``, which sentry-cli prints.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import zlib
from datetime import datetime
from typing import Any

from sqlalchemy import select
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from controltower.ingest import artifacts
from controltower.server.api.common import ApiError, authenticate, context
from controltower.store import Store
from controltower.store.models.ingest import Project
from controltower.store.models.sourcemaps import SentryRelease

SCOPES = ("write", "ingest")
ACCEPT = ["artifact_bundles", "artifact_bundles_v2", "release_files", "sources"]


def _detail(status: int, message: str) -> JSONResponse:
    return JSONResponse({"detail": message}, status_code=status)


async def _authorized(request: Request) -> Response | None:
    try:
        token = await authenticate(request)
    except ApiError as exc:
        return _detail(exc.status, exc.message)
    if not any(token.allows(scope) for scope in SCOPES):
        return _detail(403, "this token needs the 'write' or 'ingest' scope to upload")
    return None


def _base_url(request: Request) -> str:
    spec = context(request).spec
    if spec is not None and spec.server.public_url:
        return spec.server.public_url.rstrip("/")
    return str(request.base_url).rstrip("/")


async def _json(request: Request) -> dict[str, Any]:
    try:
        body = json.loads(await request.body() or b"{}")
    except (ValueError, UnicodeDecodeError):
        raise ApiError(400, "invalid_json", "the body is not valid JSON") from None
    if not isinstance(body, dict):
        raise ApiError(400, "invalid_json", "the body must be a JSON object")
    return body


def _project_ids(store: Store, names: list[str]) -> dict[str, int]:
    # No project name holds a NUL, and PostgreSQL refuses one even in a query.
    storable = [name for name in names if "\x00" not in name]
    with store.session() as session:
        found = dict(
            session.execute(
                select(Project.name, Project.id).where(Project.name.in_(storable))
            ).all()
        )
    missing = [name for name in names if name not in found]
    if missing:
        raise ApiError(
            400, "unknown_project", f"no project named {', '.join(missing)} ([[server.projects]])"
        )
    return {name: int(found[name]) for name in names}


async def chunk_options(request: Request) -> Response:
    if (denied := await _authorized(request)) is not None:
        return denied
    org = request.path_params["org"]
    return JSONResponse(
        {
            "url": f"{_base_url(request)}/api/0/organizations/{org}/chunk-upload/",
            "chunkSize": artifacts.CHUNK_SIZE,
            "chunksPerRequest": artifacts.CHUNKS_PER_REQUEST,
            "maxFileSize": artifacts.MAX_FILE_SIZE,
            "maxRequestSize": artifacts.MAX_REQUEST_SIZE,
            "concurrency": 2,
            "hashAlgorithm": "sha1",
            "compression": ["gzip"],
            "accept": ACCEPT,
        }
    )


def _unpack(name: str, data: bytes, compressed: bool) -> tuple[str, bytes]:
    if compressed:
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error):
            raise ApiError(400, "invalid_chunk", f"chunk {name} is not valid gzip") from None
    if len(data) > artifacts.CHUNK_SIZE:
        raise ApiError(400, "invalid_chunk", "Chunk size too large")
    if artifacts.sha1(data) != name.lower():
        raise ApiError(400, "invalid_chunk", f"chunk {name[:40]} does not match its SHA-1")
    return name.lower(), data


async def upload_chunks(request: Request) -> Response:
    if (denied := await _authorized(request)) is not None:
        return denied
    ingestion = context(request)
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > artifacts.MAX_REQUEST_SIZE + 1024 * 1024:
        return _detail(400, "Request too large")
    try:
        try:
            form = await request.form(
                max_files=artifacts.CHUNKS_PER_REQUEST, max_part_size=artifacts.CHUNK_SIZE
            )
        except Exception as exc:  # multipart parse errors, too many files
            raise ApiError(
                400, "invalid_form", f"the upload is not valid multipart: {exc}"
            ) from exc
        chunks: list[tuple[str, bytes]] = []
        for field, compressed in (("file", False), ("file_gzip", True)):
            for item in form.getlist(field):
                if not isinstance(item, UploadFile):
                    raise ApiError(400, "invalid_chunk", f"{field} must be a file part")
                chunks.append(_unpack(item.filename or "", await item.read(), compressed))
        if len(chunks) > artifacts.CHUNKS_PER_REQUEST:
            raise ApiError(400, "invalid_chunk", "Too many chunks")
    except ApiError as exc:
        return _detail(exc.status, exc.message)
    if chunks:
        await asyncio.to_thread(
            artifacts.store_chunks, ingestion.store, chunks, ingestion.clock.now()
        )
    return Response(status_code=200)


def _checksum(value: Any, what: str) -> str:
    if not isinstance(value, str) or len(value) != 40 or not _is_hex(value):
        raise ApiError(400, "invalid_checksum", f"{what} must be a SHA-1 in 40 hex digits")
    return value.lower()


def _is_hex(value: str) -> bool:
    return all(char in "0123456789abcdefABCDEF" for char in value)


async def assemble_bundle(request: Request) -> Response:
    if (denied := await _authorized(request)) is not None:
        return denied
    ctx = context(request)
    try:
        body = await _json(request)
        checksum = _checksum(body.get("checksum"), "checksum")
        raw_chunks = body.get("chunks")
        if not isinstance(raw_chunks, list):
            raise ApiError(400, "invalid_chunks", "chunks must be a list of SHA-1 checksums")
        chunks = [_checksum(chunk, "each chunk") for chunk in raw_chunks]
        names = body.get("projects")
        if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
            raise ApiError(400, "invalid_projects", "You need to specify at least one project")
        ids = await asyncio.to_thread(_project_ids, ctx.store, names)
        release = body.get("version") or ""
        dist = body.get("dist") or ""
        if not isinstance(release, str) or not isinstance(dist, str):
            raise ApiError(400, "invalid_release", "version and dist must be strings")
        if "\x00" in release or "\x00" in dist:
            raise ApiError(400, "invalid_release", "version and dist cannot contain NUL")
    except ApiError as exc:
        return _detail(exc.status, exc.message)
    result = await asyncio.to_thread(
        lambda: artifacts.assemble(
            ctx.store,
            sorted(ids.values()),
            checksum,
            chunks,
            release=release,
            dist=dist,
            now=ctx.clock.now(),
        )
    )
    return JSONResponse(
        {"state": result.state, "missingChunks": result.missing, "detail": result.detail}
    )


def _release_json(row: SentryRelease, project: str) -> dict[str, Any]:
    def stamp(value: datetime | None) -> str | None:
        return value.isoformat().replace("+00:00", "Z") if value else None

    return {
        "version": row.version,
        "shortVersion": row.version,
        "ref": None,
        "url": None,
        "dateCreated": stamp(row.created_at),
        "dateReleased": stamp(row.released_at),
        "lastEvent": None,
        "firstEvent": None,
        "newGroups": 0,
        "commitCount": 0,
        "deployCount": 0,
        "lastCommit": None,
        "lastDeploy": None,
        "authors": [],
        "data": {},
        "projects": [{"slug": project, "name": project}],
    }


def _save_release(
    store: Store,
    project_ids: dict[str, int],
    version: str,
    released: datetime | None,
    now: datetime,
) -> list[dict[str, Any]]:
    out = []
    with store.session() as session:
        for name, project_id in project_ids.items():
            row = session.scalar(
                select(SentryRelease).where(
                    SentryRelease.project_id == project_id, SentryRelease.version == version
                )
            )
            if row is None:
                row = SentryRelease(project_id=project_id, version=version, created_at=now)
                session.add(row)
            if released is not None:
                row.released_at = released
            session.flush()
            out.append(_release_json(row, name))
    return out


def _find_release(store: Store, version: str) -> dict[str, Any] | None:
    if "\x00" in version:
        return None  # no version holds a NUL (``_version``)
    with store.session() as session:
        found = session.execute(
            select(SentryRelease, Project.name)
            .join(Project, Project.id == SentryRelease.project_id)
            .where(SentryRelease.version == version)
            .order_by(SentryRelease.id)
        ).first()
        if found is None:
            return None
        return _release_json(found[0], found[1])


def _version(value: Any) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > 200 or "\x00" in value:
        raise ApiError(400, "invalid_version", "version must be a string of 1 to 200 characters")
    if value in (".", "..", "latest") or any(char in value for char in "\n\t/\\"):
        raise ApiError(400, "invalid_version", f"{value!r} is not a valid release version")
    return value


def _released(value: Any, now: datetime) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise ApiError(400, "invalid_date", "dateReleased must be an ISO 8601 time") from None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=now.tzinfo)
    raise ApiError(400, "invalid_date", "dateReleased must be an ISO 8601 time")


async def create_release(request: Request) -> Response:
    if (denied := await _authorized(request)) is not None:
        return denied
    ctx = context(request)
    try:
        body = await _json(request)
        version = _version(body.get("version"))
        names = body.get("projects")
        if "project" in request.path_params:
            names = [request.path_params["project"]]
        if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
            raise ApiError(400, "invalid_projects", "You need to specify at least one project")
        now = ctx.clock.now()
        released = _released(body.get("dateReleased"), now)
        ids = await asyncio.to_thread(_project_ids, ctx.store, names)
    except ApiError as exc:
        return _detail(exc.status, exc.message)
    saved = await asyncio.to_thread(_save_release, ctx.store, ids, version, released, now)
    return JSONResponse(saved[0], status_code=201)


async def release(request: Request) -> Response:
    if (denied := await _authorized(request)) is not None:
        return denied
    ctx = context(request)
    version = request.path_params["version"]
    found = await asyncio.to_thread(_find_release, ctx.store, version)
    if found is None:
        return _detail(404, f"there is no release {version!r}")
    if request.method == "GET":
        return JSONResponse(found)
    try:
        body = await _json(request)
        released = _released(body.get("dateReleased"), ctx.clock.now())
        ids = await asyncio.to_thread(
            _project_ids, ctx.store, [project["slug"] for project in found["projects"]]
        )
    except ApiError as exc:
        return _detail(exc.status, exc.message)
    saved = await asyncio.to_thread(
        _save_release, ctx.store, ids, version, released, ctx.clock.now()
    )
    return JSONResponse(saved[0])


async def create_deploy(request: Request) -> Response:
    if (denied := await _authorized(request)) is not None:
        return denied
    ctx = context(request)
    version = request.path_params["version"]
    try:
        body = await _json(request)
        environment = body.get("environment")
        if not isinstance(environment, str) or not environment:
            raise ApiError(400, "invalid_environment", "environment is required")
    except ApiError as exc:
        return _detail(exc.status, exc.message)
    if await asyncio.to_thread(_find_release, ctx.store, version) is None:
        return _detail(404, f"there is no release {version!r}")
    now = ctx.clock.now().isoformat().replace("+00:00", "Z")
    return JSONResponse(
        {
            "id": "0",
            "environment": environment,
            "name": body.get("name") if isinstance(body.get("name"), str) else None,
            "url": body.get("url") if isinstance(body.get("url"), str) else None,
            "dateStarted": body.get("dateStarted") or now,
            "dateFinished": body.get("dateFinished") or now,
        },
        status_code=201,
    )


ORG = "/api/0/organizations/{org}"
routes = [
    Route(f"{ORG}/chunk-upload/", chunk_options, methods=["GET"]),
    Route(f"{ORG}/chunk-upload/", upload_chunks, methods=["POST"]),
    Route(f"{ORG}/artifactbundle/assemble/", assemble_bundle, methods=["POST"]),
    Route(f"{ORG}/releases/", create_release, methods=["POST"]),
    Route("/api/0/projects/{org}/{project}/releases/", create_release, methods=["POST"]),
    Route(f"{ORG}/releases/{{version}}/deploys/", create_deploy, methods=["POST"]),
    Route(f"{ORG}/releases/{{version}}/", release, methods=["GET", "PUT"]),
    Route("/api/0/projects/{org}/{project}/releases/{version}/", release, methods=["GET", "PUT"]),
]

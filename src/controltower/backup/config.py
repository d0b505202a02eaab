"""Configuration backups: tower.toml, fly.toml, the Dockerfile and the names of secrets.

Each backup is a version: a deterministic tar.gz of the files plus
``secrets.json`` (names only, never values). A new version is written only
when something changed.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
import tempfile
from collections.abc import Mapping
from pathlib import Path

from controltower.backup import crypto, records
from controltower.backup.archive import BackupMeta, hash_file
from controltower.backup.destinations import Destination, open_destination
from controltower.backup.run import BackupResult, new_name, spec_root
from controltower.clock import system_clock
from controltower.exceptions import BackupError
from controltower.spec import Spec
from controltower.store import Store
from controltower.store.models.backup import Backup
from controltower.typing import Clock


def secret_names(spec: Spec, root: Path) -> list[str]:
    """Names of the secrets the app needs: the catalog's, and those Fly lists, if known."""
    names = {name for name, var in spec.env.vars.items() if var.secret}
    if spec.env.fly_secrets_file:
        path = root / spec.env.fly_secrets_file
        try:
            listed = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            listed = []
        for item in listed if isinstance(listed, list) else []:
            if isinstance(item, dict):
                name = item.get("Name") or item.get("name")
                if isinstance(name, str):
                    names.add(name)
            elif isinstance(item, str):
                names.add(item)
    return sorted(names)


def bundle(files: Mapping[str, bytes], secrets: list[str]) -> bytes:
    """A tar.gz of ``files`` and ``secrets.json``, byte-identical for identical input."""
    buffer = io.BytesIO()
    entries = dict(files)
    entries["secrets.json"] = (json.dumps({"names": secrets}, indent=2) + "\n").encode()
    with (
        gzip.GzipFile(fileobj=buffer, mode="wb", mtime=0, filename="") as compressed,
        tarfile.open(fileobj=compressed, mode="w") as tar,
    ):
        for name in sorted(entries):
            data = entries[name]
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            info.mtime = 0
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def content_digest(files: Mapping[str, bytes], secrets: list[str]) -> str:
    digest = hashlib.sha256()
    for name in sorted(files):
        digest.update(name.encode() + b"\0" + hashlib.sha256(files[name]).digest())
    digest.update(json.dumps(secrets).encode())
    return digest.hexdigest()


def run_config_backup(
    spec: Spec,
    store: Store,
    *,
    clock: Clock = system_clock,
    force: bool = False,
    destination: Destination | None = None,
    environ: Mapping[str, str] | None = None,
    actor: str = "tower",
) -> BackupResult:
    """Write a new configuration version if the files or secret names changed."""
    root = spec_root(spec)
    files: dict[str, bytes] = {}
    for name in spec.backup.config_files:
        path = root / name
        if path.is_file():
            files[name] = path.read_bytes()
    if not files:
        raise BackupError(
            f"none of {', '.join(spec.backup.config_files)} exist in {root}",
            hint="list the files to keep in [backup] config_files",
        )
    secrets = secret_names(spec, root)
    digest = content_digest(files, secrets)
    previous = records.rows(store, spec, kind="config", status="ok")
    if previous and previous[0].detail.get("content") == digest and not force:
        last = previous[0]
        return BackupResult(
            name=last.name,
            kind="config",
            ok=True,
            size=last.size,
            sha256=last.sha256,
            location=last.destination,
            unchanged=True,
            version=last.version,
        )
    version = max((row.version for row in previous), default=0) + 1
    dest = destination or open_destination(spec.backup.destination, root=root, environ=environ)
    name = new_name(spec, clock, "config")
    encryption = spec.backup.encryption
    suffix = crypto.SUFFIX if encryption.enabled else ""
    file = f"{name}.tar.gz{suffix}"
    key = f"{spec.service.name}/config/{file}"
    started = clock.now()
    row_id = records.start_row(
        store, spec, name=name, kind="config", at=started, destination=dest.describe(), key=key
    )
    try:
        plain = bundle(files, secrets)
        data = crypto.encrypt_bytes(plain, crypto.recipients(encryption)) if suffix else plain
        with tempfile.TemporaryDirectory(dir=dest.staging_dir(), prefix=".tower-config-") as work:
            path = Path(work) / file
            path.write_bytes(data)
            sha256, size = hash_file(path)
            meta = BackupMeta(
                name=name,
                kind="config",
                service=spec.service.name,
                environment=records.environment_of(spec),
                file=file,
                size=size,
                sha256=sha256,
                started_at=started.isoformat(),
                finished_at=clock.now().isoformat(),
                duration=0.0,
                version=version,
                files={n: hashlib.sha256(b).hexdigest() for n, b in files.items()},
                secret_names=secrets,
                encryption=crypto.ENCRYPTION if suffix else "",
                recipients=list(encryption.recipients),
                plain_sha256=hashlib.sha256(plain).hexdigest() if suffix else "",
                plain_size=len(plain) if suffix else 0,
            )
            dest.put_file(key, path, sha256=sha256)
            dest.put_bytes(f"{spec.service.name}/config/{name}.json", meta.to_json())
        records.finish_row(store, row_id, meta, finished=clock.now(), actor=actor)
        with store.session() as session:
            row = session.get(Backup, row_id)
            assert row is not None
            row.detail = {**row.detail, "content": digest, "secret_names": secrets}
    except Exception as exc:
        records.fail_row(store, row_id, str(exc), finished=clock.now(), actor=actor)
        raise
    finally:
        if destination is None:
            dest.close()
    return BackupResult(
        name=name,
        kind="config",
        ok=True,
        size=size,
        sha256=sha256,
        location=dest.describe(key),
        version=version,
        heartbeat_error="",
    )


def read_bundle(data: bytes) -> dict[str, bytes]:
    """The files inside a configuration backup (``secrets.json`` among them)."""
    out: dict[str, bytes] = {}
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        for member in tar.getmembers():
            handle = tar.extractfile(member)
            if handle is not None:
                out[member.name] = handle.read()
    return out

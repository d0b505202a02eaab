"""What travels with every backup: its checksum and a metadata file beside it."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from controltower.exceptions import BackupError

FORMAT = "controltower-backup/1"
_CHUNK = 1024 * 1024


class BackupCorrupt(BackupError):
    """A backup file does not match the checksum recorded when it was written."""


@dataclass
class BackupMeta:
    """The metadata JSON stored next to a backup file."""

    name: str
    kind: str
    service: str
    environment: str
    file: str
    size: int
    sha256: str
    started_at: str
    finished_at: str
    duration: float
    source: str = ""
    database: str = ""
    server_version: str = ""
    pg_dump_version: int = 0
    compress: int = 0
    version: int = 0
    tables: dict[str, dict[str, Any]] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)
    secret_names: list[str] = field(default_factory=list)
    encryption: str = ""
    recipients: list[str] = field(default_factory=list)
    plain_sha256: str = ""
    plain_size: int = 0
    format: str = FORMAT

    def to_json(self) -> bytes:
        return (json.dumps(asdict(self), indent=2, sort_keys=True) + "\n").encode()

    @classmethod
    def from_json(cls, data: bytes, *, where: str) -> BackupMeta:
        try:
            raw = json.loads(data)
            if raw.get("format") != FORMAT:
                raise ValueError(f"format {raw.get('format')!r} is not {FORMAT}")
            known = {k: raw[k] for k in cls.__dataclass_fields__ if k in raw}
            return cls(**known)
        except (ValueError, TypeError, AttributeError) as exc:
            raise BackupError(f"{where} is not backup metadata: {exc}") from None


def hash_file(path: Path) -> tuple[str, int]:
    """The SHA-256 and size of a file, read in chunks."""
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as handle:
        while block := handle.read(_CHUNK):
            digest.update(block)
            size += len(block)
    return digest.hexdigest(), size


def check_file(path: Path, meta: BackupMeta) -> None:
    """Raise ``BackupCorrupt`` unless ``path`` has the size and checksum ``meta`` recorded."""
    sha256, size = hash_file(path)
    if size != meta.size or sha256 != meta.sha256:
        raise BackupCorrupt(
            f"backup {meta.name} is corrupt: {meta.file} has sha256 {sha256[:12]}… and "
            f"{size} bytes, but {meta.sha256[:12]}… and {meta.size} bytes were recorded",
            hint="do not restore it; verify an older backup with `tower backup verify <name>`",
        )

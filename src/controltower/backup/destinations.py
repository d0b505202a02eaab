"""Where backups are kept: a local folder or an S3 bucket, behind one small interface."""

from __future__ import annotations

import os
import shutil
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from controltower.backup.s3 import S3Client
from controltower.exceptions import BackupError
from controltower.spec.backup import DestinationSpec


@dataclass(frozen=True)
class StoredObject:
    key: str
    size: int


class Destination(ABC):
    """Keys are ``/``-separated names relative to the destination's root."""

    @abstractmethod
    def describe(self, key: str = "") -> str: ...

    @abstractmethod
    def put_file(self, key: str, path: Path, *, sha256: str) -> None:
        """Store the file at ``path`` under ``key`` (the file may be moved away)."""

    @abstractmethod
    def put_bytes(self, key: str, data: bytes) -> None: ...

    @abstractmethod
    def get_file(self, key: str, path: Path) -> None: ...

    @abstractmethod
    def get_bytes(self, key: str) -> bytes: ...

    @abstractmethod
    def delete(self, key: str) -> None: ...

    @abstractmethod
    def list(self, prefix: str = "") -> list[StoredObject]: ...

    def local_path(self, key: str) -> Path | None:
        """A path the object can be read from in place, if there is one."""
        return None

    def staging_dir(self) -> Path | None:
        """A folder on the same file system as the destination, for atomic renames."""
        return None

    def close(self) -> None:
        return None


class LocalDestination(Destination):
    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if self.root.resolve() not in path.parents:
            raise BackupError(f"backup key {key!r} leaves the backup folder {self.root}")
        return path

    def describe(self, key: str = "") -> str:
        return str(self.root / key) if key else str(self.root)

    def put_file(self, key: str, path: Path, *, sha256: str) -> None:
        target = self._path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(path), target)
        _fsync_dir(target.parent)

    def put_bytes(self, key: str, data: bytes) -> None:
        target = self._path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        temp = target.with_name(f".{target.name}.partial")
        with temp.open("wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temp, target)
        _fsync_dir(target.parent)

    def get_file(self, key: str, path: Path) -> None:
        source = self._require(key)
        shutil.copyfile(source, path)

    def get_bytes(self, key: str) -> bytes:
        return self._require(key).read_bytes()

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def list(self, prefix: str = "") -> list[StoredObject]:
        if not self.root.is_dir():
            return []
        found = []
        for path in sorted(self.root.rglob("*")):
            if not path.is_file() or path.name.startswith("."):
                continue
            key = path.relative_to(self.root).as_posix()
            if key.startswith(prefix):
                found.append(StoredObject(key, path.stat().st_size))
        return found

    def local_path(self, key: str) -> Path | None:
        return self._require(key)

    def staging_dir(self) -> Path | None:
        self.root.mkdir(parents=True, exist_ok=True)
        return self.root

    def _require(self, key: str) -> Path:
        path = self._path(key)
        if not path.is_file():
            raise BackupError(
                f"{path} is missing", hint="run `tower backup list` to see the backups that exist"
            )
        return path


class S3Destination(Destination):
    def __init__(self, client: S3Client, prefix: str = "") -> None:
        self.client = client
        self.prefix = prefix.strip("/")

    def _key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def describe(self, key: str = "") -> str:
        return self.client.describe(self._key(key) if key else self.prefix)

    def put_file(self, key: str, path: Path, *, sha256: str) -> None:
        self.client.put_file(self._key(key), path, sha256=sha256)

    def put_bytes(self, key: str, data: bytes) -> None:
        self.client.put_bytes(self._key(key), data)

    def get_file(self, key: str, path: Path) -> None:
        self.client.get_file(self._key(key), path)

    def get_bytes(self, key: str) -> bytes:
        return self.client.get_bytes(self._key(key))

    def delete(self, key: str) -> None:
        self.client.delete(self._key(key))

    def list(self, prefix: str = "") -> list[StoredObject]:
        strip = len(self.prefix) + 1 if self.prefix else 0
        return [
            StoredObject(item.key[strip:], item.size)
            for item in self.client.list(self._key(prefix))
        ]

    def close(self) -> None:
        self.client.close()


def open_destination(
    spec: DestinationSpec, *, root: Path | None = None, environ: Mapping[str, str] | None = None
) -> Destination:
    """The destination ``[backup.destination]`` describes; relative paths are from ``root``."""
    if spec.type == "s3":
        return S3Destination(S3Client.from_spec(spec, environ), spec.prefix)
    path = Path(spec.path)
    if not path.is_absolute():
        path = (root or Path.cwd()) / path
    return LocalDestination(path)


def _fsync_dir(path: Path) -> None:
    try:
        handle = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(handle)
    finally:
        os.close(handle)

"""Release artifacts of the local driver: content-addressed snapshots of the app folder.

A snapshot is taken at deploy time from ``[deploy.local] cwd`` (less ``.git``,
``.tower``, ``__pycache__`` and the driver's own state folder), or from the
paths ``[deploy.local] artifact`` names (``.next/``, ``public/``,
``package.json``). Each file is stored once under ``objects/`` by the SHA-256
of its content and linked (a hard link where the filesystem allows, a copy
elsewhere) into ``snapshots/<digest>/``, the folder the release's processes run
from. The snapshot's digest is the SHA-256 of its manifest (every path, its
content hash, its executable bit, a symlink's target), so the same tree gives
the same digest and the same folder.

With ``artifact`` set, the top-level entries it does not name (``node_modules``
say) are symbolic links to the working folder: they resolve, but they are not
part of the release.

Stored files are read-only: a process cannot change its release by writing to
a file it was shipped with (new files, such as caches, can still be created).
A hash cache keyed by path, size, mtime and inode makes a new snapshot of an
unchanged tree cost a ``stat`` per file.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import stat
import sys
import uuid
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from controltower.exceptions import DriverError

ALWAYS_EXCLUDED = frozenset({".git", ".tower"})
EXCLUDED_ANYWHERE = frozenset({"__pycache__"})
_CHUNK = 1 << 20


@dataclass(frozen=True)
class Snapshot:
    digest: str
    path: Path
    files: int
    size: int
    linked: int


@dataclass(frozen=True)
class _Entry:
    rel: str
    kind: str  # file | link
    value: str  # content hash | link target
    executable: bool = False
    size: int = 0
    source: str = ""


class SnapshotStore:
    """``<state_dir>/artifacts``: objects by content hash and snapshots that link them."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.objects = root / "objects"
        self.snapshots = root / "snapshots"
        self._index_path = root / "hash-index.json"

    # ---- taking a snapshot -------------------------------------------------------------

    def snapshot(
        self,
        source: Path,
        *,
        include: Collection[str] = (),
        exclude: Collection[Path] = (),
    ) -> Snapshot:
        source = source.resolve()
        if not source.is_dir():
            raise DriverError(
                f"[deploy.local] cwd {source} is not a folder",
                hint="cwd names the folder the app runs from, relative to tower.toml",
            )
        self.objects.mkdir(parents=True, exist_ok=True)
        self.snapshots.mkdir(parents=True, exist_ok=True)
        skip = {p.resolve() for p in exclude} | {self.root.resolve()}
        index = self._load_index()
        entries = sorted(self._entries(source, include, skip, index), key=lambda e: e.rel)
        links = self._outside(source, include, skip) if include else []
        manifest = [[e.rel, e.kind, e.value, e.executable] for e in entries]
        manifest += [[rel, "outside", "", False] for rel in links]
        digest = hashlib.sha256(json.dumps(manifest, separators=(",", ":")).encode()).hexdigest()
        self._save_index(index)
        target = self.snapshots / digest[:32]
        size = sum(e.size for e in entries)
        files = sum(1 for e in entries if e.kind == "file")
        if (target / ".tower-artifact.json").is_file():
            return Snapshot(f"sha256:{digest}", target, files, size, 0)
        building = self.snapshots / f".building-{uuid.uuid4().hex[:8]}"
        building.mkdir()
        linked = 0
        try:
            for entry in entries:
                dest = building / entry.rel
                dest.parent.mkdir(parents=True, exist_ok=True)
                if entry.kind == "link":
                    os.symlink(entry.value, dest)
                    continue
                obj = self._store_object(entry)
                try:
                    os.link(obj, dest)
                    linked += 1
                except OSError:
                    shutil.copyfile(obj, dest)
                    os.chmod(dest, 0o555 if entry.executable else 0o444)
            for rel in links:
                os.symlink(source / rel, building / rel)
            (building / ".tower-artifact.json").write_text(
                json.dumps({"digest": f"sha256:{digest}", "source": str(source), "files": files})
            )
            try:
                os.rename(building, target)
            except OSError:
                if not (target / ".tower-artifact.json").is_file():
                    raise
                _remove(building)
        except BaseException:
            _remove(building)
            raise
        return Snapshot(f"sha256:{digest}", target, files, size, linked)

    def _entries(
        self, source: Path, include: Collection[str], skip: set[Path], index: dict[str, Any]
    ) -> Iterator[_Entry]:
        roots: list[Path] = []
        for raw in include:
            rel = raw.strip().rstrip("/")
            path = (source / rel).resolve() if rel else source
            if not path.is_relative_to(source) or rel.startswith(".."):
                raise DriverError(
                    f"[deploy.local] artifact path {raw!r} is outside {source}",
                    hint="name paths inside the app folder, such as .next/ or package.json",
                )
            if not path.exists():
                raise DriverError(
                    f"[deploy.local] artifact path {raw!r} does not exist in {source}",
                    hint="build the app first (e.g. `next build`), or fix the path",
                )
            roots.append(source / rel)
        if not include:
            roots.append(source)
        seen: set[str] = set()
        for root in roots:
            if root.is_file() or root.is_symlink():
                entry = self._entry(source, root, index)
                if entry is not None and entry.rel not in seen:
                    seen.add(entry.rel)
                    yield entry
                continue
            for folder, dirs, names in os.walk(root):
                here = Path(folder)
                dirs[:] = sorted(
                    d
                    for d in dirs
                    if d not in EXCLUDED_ANYWHERE
                    and not (here == source and d in ALWAYS_EXCLUDED)
                    and (here / d).resolve() not in skip
                    and not (here / d).is_symlink()
                )
                links = [d for d in os.listdir(here) if (here / d).is_symlink()]
                for name in sorted(set(names) | set(links)):
                    entry = self._entry(source, here / name, index)
                    if entry is not None and entry.rel not in seen:
                        seen.add(entry.rel)
                        yield entry

    def _entry(self, source: Path, path: Path, index: dict[str, Any]) -> _Entry | None:
        rel = path.relative_to(source).as_posix()
        info = path.lstat()
        if stat.S_ISLNK(info.st_mode):
            return _Entry(rel, "link", os.readlink(path))
        if not stat.S_ISREG(info.st_mode):
            return None
        key = f"{info.st_dev}:{info.st_ino}:{info.st_size}:{info.st_mtime_ns}"
        cached = index.get(rel)
        if isinstance(cached, list) and len(cached) == 2 and cached[0] == key:
            content = str(cached[1])
        else:
            content = _hash(path)
            index[rel] = [key, content]
        executable = bool(info.st_mode & stat.S_IXUSR)
        return _Entry(rel, "file", content, executable, info.st_size, str(path))

    def _outside(self, source: Path, include: Collection[str], skip: set[Path]) -> list[str]:
        named = {raw.strip().strip("/").split("/")[0] for raw in include}
        return sorted(
            entry.name
            for entry in source.iterdir()
            if entry.name not in named
            and entry.name not in ALWAYS_EXCLUDED
            and entry.resolve() not in skip
        )

    def _store_object(self, entry: _Entry) -> Path:
        name = entry.value + ("-x" if entry.executable else "")
        obj = self.objects / name[:2] / name
        if obj.exists():
            return obj
        obj.parent.mkdir(parents=True, exist_ok=True)
        tmp = obj.with_name(f".{name}.{uuid.uuid4().hex[:6]}")
        shutil.copyfile(entry.source, tmp)
        if _hash(tmp) != entry.value:
            tmp.unlink()
            raise DriverError(
                f"{entry.source} changed while its snapshot was taken",
                hint="finish the build before `tower deploy`",
            )
        os.chmod(tmp, 0o555 if entry.executable else 0o444)
        os.replace(tmp, obj)
        return obj

    # ---- reading and pruning -----------------------------------------------------------

    def exists(self, ref: str) -> bool:
        path = Path(ref)
        return path.parent == self.snapshots and (path / ".tower-artifact.json").is_file()

    def prune(self, keep: Collection[str]) -> list[str]:
        """Delete every snapshot not in ``keep`` (folders), then the objects none links."""
        kept = {Path(k).resolve() for k in keep if k}
        removed: list[str] = []
        if not self.snapshots.is_dir():
            return removed
        for folder in sorted(self.snapshots.iterdir()):
            if folder.resolve() in kept or not folder.is_dir():
                continue
            if folder.name.startswith(".building-"):
                continue
            _remove(folder)
            removed.append(str(folder))
        if removed and self.objects.is_dir():
            for obj in self.objects.glob("*/*"):
                with contextlib.suppress(OSError):
                    if obj.stat().st_nlink <= 1:
                        obj.unlink()
        return removed

    def _load_index(self) -> dict[str, Any]:
        try:
            data = json.loads(self._index_path.read_text())
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def _save_index(self, index: dict[str, Any]) -> None:
        tmp = self._index_path.with_name(f".hash-index.{uuid.uuid4().hex[:6]}")
        tmp.write_text(json.dumps(index, separators=(",", ":")))
        os.replace(tmp, self._index_path)


def _hash(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _remove(path: Path) -> None:
    """Delete a snapshot folder (its files are read-only, its folders are not)."""

    def retry(function: Any, name: str, _exc: Any) -> None:
        with contextlib.suppress(OSError):
            os.chmod(os.path.dirname(name), 0o755)
            function(name)

    if sys.version_info >= (3, 12):
        shutil.rmtree(path, onexc=retry)
    else:
        shutil.rmtree(path, onerror=retry)

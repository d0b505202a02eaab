"""A generated file, and how it meets the file already on disk: diff, TOML merge, write.

Nothing on disk is replaced silently. A new file is written only with
``write=True``; an existing one is compared with what tower would write and the
unified diff is shown. TOML files are merged with tomlkit: the keys tower
manages take the generated values, everything else (other keys, comments,
order) stays as the user wrote it.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomlkit
from tomlkit.container import Container
from tomlkit.exceptions import TOMLKitError
from tomlkit.items import AoT, Table

from controltower.exceptions import GenerateError
from controltower.files import write_file


@dataclass(frozen=True)
class GeneratedFile:
    path: str
    content: str
    merge_toml: bool = False
    notes: tuple[str, ...] = ()


@dataclass
class Outcome:
    path: str
    state: str  # created | unchanged | changed | would-create | would-change
    diff: str = ""
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def merge_toml(existing: str, generated: str) -> str:
    """``existing`` with every key of ``generated`` set to the generated value."""
    try:
        document = tomlkit.parse(existing)
    except TOMLKitError as exc:
        raise GenerateError(
            f"the existing file is not valid TOML: {exc}",
            hint="fix it or move it away, then generate again",
        ) from None
    _merge(document, tomlkit.parse(generated))
    return tomlkit.dumps(document)


def _merge(target: Container | Table | Any, source: Container | Table | Any) -> None:
    for key, value in source.items():
        if isinstance(value, Table) and key in target and isinstance(target[key], Table):
            _merge(target[key], value)
        elif isinstance(value, AoT) or key not in target or target[key] != value:
            target[key] = value


def diff(old: str, new: str, path: str) -> str:
    return "".join(
        difflib.unified_diff(
            old.splitlines(keepends=True),
            new.splitlines(keepends=True),
            fromfile=f"{path} (on disk)",
            tofile=f"{path} (generated)",
        )
    )


def apply(file: GeneratedFile, root: Path, *, write: bool) -> Outcome:
    """Compare ``file`` with what is on disk under ``root``; write it if asked."""
    target = root / file.path
    notes = list(file.notes)
    if not target.exists():
        if write:
            _write(target, file.content)
            return Outcome(file.path, "created", notes=notes)
        return Outcome(file.path, "would-create", notes=notes)
    try:
        existing = target.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise GenerateError(f"{target} cannot be read: {exc}") from None
    wanted = merge_toml(existing, file.content) if file.merge_toml else file.content
    if wanted == existing:
        return Outcome(file.path, "unchanged", notes=notes)
    change = diff(existing, wanted, file.path)
    if write:
        _write(target, wanted)
        return Outcome(file.path, "changed", change, notes)
    return Outcome(file.path, "would-change", change, notes)


def _write(path: Path, text: str) -> None:
    write_file(path, text)

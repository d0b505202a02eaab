"""A generated file, and how it meets the file already on disk: diff, TOML merge, write.

Nothing on disk is replaced silently. A new file is written only with
``write=True``; an existing one is compared with what tower would write and the
unified diff is shown. TOML files are merged with tomlkit: the keys tower
manages take the generated values, everything else (other keys, comments,
order) stays as the user wrote it.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomlkit
from tomlkit.container import Container
from tomlkit.exceptions import TOMLKitError
from tomlkit.items import AoT, Table
from tomlkit.toml_document import TOMLDocument

from controltower.exceptions import GenerateError
from controltower.files import write_file


@dataclass(frozen=True)
class Reconciled:
    """An existing file brought in line: the text, why each value changed, what to hide."""

    text: str
    notes: list[str] = field(default_factory=list)
    redact: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class GeneratedFile:
    """A file tower would write. ``reconcile`` (given the text on disk) decides what changes in
    an existing file; otherwise TOML is merged (``merge_toml``), lists of lines are completed
    (``merge_lines``), and anything else is replaced."""

    path: str
    content: str
    merge_toml: bool = False
    notes: tuple[str, ...] = ()
    merge_lines: bool = False
    reconcile: Callable[[str], Reconciled] | None = field(default=None, compare=False)
    generator: str = ""
    """Set for files replaced whole (Dockerfile, workflow): ``generate all`` keeps such a
    file when tower did not write it; ``tower generate <generator>`` replaces it."""
    keep: Callable[[str], Reconciled] | None = field(default=None, compare=False)
    """What must change in such a file even when it is kept (a secret moved out)."""


@dataclass
class Outcome:
    path: str
    state: str  # created | unchanged | changed | would-create | would-change | kept
    diff: str = ""
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def parse_existing(text: str, name: str = "the existing file") -> TOMLDocument:
    """A TOML file on disk, or a GenerateError saying it cannot be merged into."""
    try:
        return tomlkit.parse(text)
    except TOMLKitError as exc:
        raise GenerateError(
            f"{name} is not valid TOML: {exc}",
            hint="fix it or move it away, then generate again",
        ) from None


def merge_toml(existing: str, generated: str) -> str:
    """``existing`` with every key of ``generated`` set to the generated value."""
    document = parse_existing(existing)
    _merge(document, tomlkit.parse(generated))
    return tomlkit.dumps(document)


def _merge(target: Container | Table | Any, source: Container | Table | Any) -> None:
    for key, value in source.items():
        if isinstance(value, Table) and key in target and isinstance(target[key], Table):
            _merge(target[key], value)
        elif isinstance(value, AoT) or key not in target or target[key] != value:
            target[key] = value


def merge_lines(existing: str, generated: str) -> str:
    """``existing`` with the lines of ``generated`` it lacks appended (comments aside)."""
    have = {line.strip() for line in existing.splitlines()}
    missing = [
        line
        for line in generated.splitlines()
        if line.strip() and not line.startswith("#") and line.strip() not in have
    ]
    if not missing:
        return existing
    head = existing if existing.endswith("\n") or not existing else existing + "\n"
    return head + "# added by `tower generate`\n" + "\n".join(missing) + "\n"


def _redacted(change: str, names: list[str]) -> str:
    """The diff with the value of every line assigning one of ``names`` hidden."""
    if not names:
        return change
    pattern = re.compile(
        r"^([-+ ].*?\b(?:" + "|".join(re.escape(n) for n in names) + r")\s*[= ]\s*).*$", re.M
    )
    return pattern.sub(lambda m: m.group(1) + "<redacted>", change)


def diff(old: str, new: str, path: str) -> str:
    return "".join(
        difflib.unified_diff(
            old.splitlines(keepends=True),
            new.splitlines(keepends=True),
            fromfile=f"{path} (on disk)",
            tofile=f"{path} (generated)",
        )
    )


MARKER = "written by `tower generate"  # compared in lower case


def apply(file: GeneratedFile, root: Path, *, write: bool, replace_yours: bool = True) -> Outcome:
    """Compare ``file`` with what is on disk under ``root``; write it if asked. With
    ``replace_yours=False`` (``generate all``), a file tower replaces whole (a Dockerfile, a
    workflow) that tower did not write is kept: only an explicit ``generate <name>`` replaces it."""
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
    kept = file.generator and not replace_yours and MARKER not in existing.lower()
    if kept:
        notes.append(
            f"yours (not written by tower): kept; `tower generate {file.generator}` shows the "
            "difference, with --write it replaces the file"
        )
        if file.keep is None:
            return Outcome(file.path, "kept", notes=notes)
    redact: list[str] = []
    if kept and file.keep is not None:
        result = file.keep(existing)
        wanted, redact = result.text, result.redact
        notes += result.notes
        if wanted == existing:
            return Outcome(file.path, "kept", notes=notes)
    elif file.reconcile is not None:
        result = file.reconcile(existing)
        wanted, redact = result.text, result.redact
        notes += result.notes
    elif file.merge_toml:
        wanted = merge_toml(existing, file.content)
    elif file.merge_lines:
        wanted = merge_lines(existing, file.content)
    else:
        wanted = file.content
    if wanted == existing:
        return Outcome(file.path, "unchanged", notes=notes)
    change = _redacted(diff(existing, wanted, file.path), redact)
    if write:
        _write(target, wanted)
        return Outcome(file.path, "changed", change, notes)
    return Outcome(file.path, "would-change", change, notes)


def _write(path: Path, text: str) -> None:
    write_file(path, text)

"""The spool: events still buffered at shutdown, kept on disk and written at the next start.

A stop that cannot write the whole buffer in time (the store is down, or the
deadline is near) writes what is left to ``<dir>/<time>-<pid>.jsonl`` (written to
a temporary name, synced, then renamed, so a file is whole or absent), one
parsed event per line. At start the writer claims each file (renames it to
``.replaying-<pid>``, so two workers never replay one file), writes its events
like any batch and deletes it; if the store cannot take them the file is put
back for the next attempt. A claimed file left by a process that died is
claimed again at the next start.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from controltower.ingest.event import ParsedEvent

_TIMES = ("timestamp", "received_at")
_FIELDS = {f.name for f in dataclasses.fields(ParsedEvent)}


def event_to_json(event: ParsedEvent) -> dict[str, Any]:
    data = {name: getattr(event, name) for name in _FIELDS}
    for name in _TIMES:
        data[name] = data[name].isoformat()
    return data


def event_from_json(data: dict[str, Any]) -> ParsedEvent:
    values = {name: value for name, value in data.items() if name in _FIELDS}
    for name in _TIMES:
        values[name] = datetime.fromisoformat(values[name])
    return ParsedEvent(**values)


def _dumps(event: ParsedEvent) -> str:
    return json.dumps(event_to_json(event), ensure_ascii=True, separators=(",", ":"))


class Spool:
    """A folder of spooled events."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def write(self, events: list[ParsedEvent]) -> Path:
        """Persist ``events`` in one new file; returns its path."""
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        name = f"{time.time_ns()}-{os.getpid()}.jsonl"
        partial = self.directory / f".{name}.partial"
        with partial.open("w", encoding="ascii") as handle:
            for event in events:
                handle.write(_dumps(event))
                handle.write("\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(partial, 0o600)
        final = self.directory / name
        partial.rename(final)
        return final

    def claim(self) -> list[Path]:
        """Take every waiting file (and any left claimed by a dead process) for replay."""
        if not self.directory.is_dir():
            return []
        claimed: list[Path] = []
        for path in sorted(self.directory.iterdir()):
            if path.suffix == ".jsonl" or (
                ".replaying-" in path.name and not _alive(path.name.rsplit("-", 1)[-1])
            ):
                stem = path.name.split(".", 1)[0]
                target = self.directory / f"{stem}.replaying-{os.getpid()}"
                try:
                    path.rename(target)
                except FileNotFoundError:  # another worker claimed it first
                    continue
                claimed.append(target)
        return claimed

    @staticmethod
    def read(path: Path) -> list[ParsedEvent]:
        with path.open(encoding="ascii") as handle:
            return [event_from_json(json.loads(line)) for line in handle if line.strip()]

    def release(self, path: Path) -> None:
        """Give a claimed file back (its events could not be written now)."""
        stem = path.name.split(".", 1)[0]
        path.rename(self.directory / f"{stem}.jsonl")

    def pending(self) -> int:
        """Spooled events waiting in this folder (for reports)."""
        if not self.directory.is_dir():
            return 0
        total = 0
        for path in self.directory.iterdir():
            if path.suffix == ".jsonl":
                with path.open("rb") as handle:
                    total += sum(1 for line in handle if line.strip())
        return total


def _alive(pid: str) -> bool:
    if not pid.isdigit():
        return False
    if int(pid) == os.getpid():
        return True
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True

"""Find the line of every key in a TOML text, so errors can say where they are.

Runs only on text that ``tomllib`` has already accepted; on anything it does not
understand it stops and keeps what it found.
"""

from __future__ import annotations

import bisect
import re

from controltower.typing import KeyPath

_BARE = re.compile(r"[A-Za-z0-9_-]+")


class _Scanner:
    def __init__(self, text: str) -> None:
        self.text = text
        self.n = len(text)
        self.newlines = [m.start() for m in re.finditer("\n", text)]
        self.lines: dict[KeyPath, int] = {}

    def line(self, pos: int) -> int:
        return bisect.bisect_left(self.newlines, pos) + 1

    def record(self, path: KeyPath, pos: int) -> None:
        self.lines.setdefault(path, self.line(pos))

    def skip(self, i: int, newlines: bool = True) -> int:
        while i < self.n:
            c = self.text[i]
            if c in " \t\r" or (newlines and c == "\n"):
                i += 1
            elif c == "#":
                while i < self.n and self.text[i] != "\n":
                    i += 1
            else:
                break
        return i

    def key(self, i: int) -> tuple[list[str], int]:
        parts: list[str] = []
        while i < self.n:
            i = self.skip(i, newlines=False)
            c = self.text[i] if i < self.n else ""
            if c == '"':
                end = i + 1
                while end < self.n and self.text[end] != '"':
                    end += 2 if self.text[end] == "\\" else 1
                parts.append(self.text[i + 1 : end].encode().decode("unicode_escape", "ignore"))
                i = end + 1
            elif c == "'":
                end = self.text.find("'", i + 1)
                end = self.n if end < 0 else end
                parts.append(self.text[i + 1 : end])
                i = end + 1
            else:
                match = _BARE.match(self.text, i)
                if not match:
                    break
                parts.append(match.group(0))
                i = match.end()
            i = self.skip(i, newlines=False)
            if i < self.n and self.text[i] == ".":
                i += 1
                continue
            break
        return parts, i

    def value(self, i: int, path: KeyPath) -> int:
        i = self.skip(i, newlines=False)
        self.record(path, i)
        text = self.text
        for quote in ('"""', "'''"):
            if text.startswith(quote, i):
                end = i + 3
                while True:
                    end = text.find(quote, end)
                    if end < 0:
                        return self.n
                    if quote == '"""' and text[end - 1] == "\\" and text[end - 2] != "\\":
                        end += 1
                        continue
                    while text.startswith(quote[0], end + 3):
                        end += 1
                    return end + 3
        c = text[i] if i < self.n else ""
        if c == '"':
            end = i + 1
            while end < self.n and text[end] not in '"\n':
                end += 2 if text[end] == "\\" else 1
            return end + 1
        if c == "'":
            end = text.find("'", i + 1)
            return self.n if end < 0 else end + 1
        if c == "[":
            i, index = i + 1, 0
            while i < self.n:
                i = self.skip(i)
                if i >= self.n or text[i] == "]":
                    return i + 1
                i = self.value(i, (*path, index))
                i = self.skip(i)
                if i < self.n and text[i] == ",":
                    index += 1
                    i += 1
            return i
        if c == "{":
            i += 1
            while i < self.n:
                i = self.skip(i)
                if i >= self.n or text[i] == "}":
                    return i + 1
                parts, i = self.key(i)
                if not parts or i >= self.n or text[i] != "=":
                    return self.n
                self.record((*path, *parts), i)
                i = self.value(i + 1, (*path, *parts))
                i = self.skip(i)
                if i < self.n and text[i] == ",":
                    i += 1
            return i
        while i < self.n and text[i] not in ",]}\n#":
            i += 1
        return i

    def scan(self) -> dict[KeyPath, int]:
        table: KeyPath = ()
        arrays: dict[tuple[str, ...], int] = {}
        i = 0
        while i < self.n:
            i = self.skip(i)
            if i >= self.n:
                break
            start = i
            if self.text[i] == "[":
                double = self.text.startswith("[[", i)
                parts, i = self.key(i + (2 if double else 1))
                close = self.text.find("]]" if double else "]", i)
                i = self.n if close < 0 else close + (2 if double else 1)
                keys = tuple(parts)
                if double:
                    arrays[keys] = arrays.get(keys, -1) + 1
                    for nested in [
                        k for k in arrays if len(k) > len(keys) and k[: len(keys)] == keys
                    ]:
                        del arrays[nested]
                table = self._resolve(keys, arrays)
                self.record(table, start)
                continue
            parts, i = self.key(i)
            if not parts or i >= self.n or self.text[i] != "=":
                break
            self.record((*table, *parts), start)
            i = self.value(i + 1, (*table, *parts))
        return self.lines

    @staticmethod
    def _resolve(keys: tuple[str, ...], arrays: dict[tuple[str, ...], int]) -> KeyPath:
        path: list[str | int] = []
        for depth in range(1, len(keys) + 1):
            path.append(keys[depth - 1])
            if keys[:depth] in arrays:
                path.append(arrays[keys[:depth]])
        return tuple(path)


def key_lines(text: str) -> dict[KeyPath, int]:
    """Map each key path (``("deploy", "strategy")``, ``("monitors", 0, "url")``) to its line."""
    scanner = _Scanner(text)
    try:
        return scanner.scan()
    except (IndexError, ValueError, RecursionError):
        return scanner.lines


def line_of(lines: dict[KeyPath, int], path: KeyPath) -> int:
    """The line of ``path``, or of its nearest located parent; 1 when nothing is known."""
    for end in range(len(path), 0, -1):
        if path[:end] in lines:
            return lines[path[:end]]
    return 1

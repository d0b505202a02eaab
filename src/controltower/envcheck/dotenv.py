"""Read and lint ``.env`` files.

The lint covers every dotenv-linter rule that applies to a single file, under
the same names: DuplicatedKey, EndingBlankLine, ExtraBlankLine,
IncorrectDelimiter, KeyWithoutValue, LeadingCharacter, LowercaseKey,
QuoteCharacter, SpaceCharacter, SubstitutionKey, TrailingWhitespace,
UnorderedKey (a warning) and ValueWithoutQuotes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@dataclass(frozen=True)
class Entry:
    key: str
    value: str
    line: int


@dataclass(frozen=True)
class LintProblem:
    file: str
    line: int
    rule: str
    message: str
    warning: bool = False

    def __str__(self) -> str:
        return f"{self.file}:{self.line} {self.rule}: {self.message}"


def _strip_export(text: str) -> str:
    return text[len("export ") :].lstrip() if text.startswith("export ") else text


def _unquote(raw: str) -> str:
    raw = raw.strip()
    if len(raw) >= 2 and raw[0] == raw[-1] and raw[0] in "'\"":
        return raw[1:-1]
    if " #" in raw:
        raw = raw.split(" #", 1)[0]
    return raw.strip()


def parse(text: str) -> list[Entry]:
    """Entries in file order (later duplicates included); comments and junk skipped."""
    entries = []
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = _strip_export(line.strip())
        if not stripped or stripped.startswith("#") or "=" not in stripped:
            continue
        key, _, raw = stripped.partition("=")
        entries.append(Entry(key.strip(), _unquote(raw), number))
    return entries


def read(path: Path) -> dict[str, Entry]:
    """The file's variables; the last occurrence of a key wins, as dotenv loaders do."""
    return {e.key: e for e in parse(path.read_text(encoding="utf-8", errors="replace"))}


def lint(text: str, file: str) -> list[LintProblem]:
    problems: list[LintProblem] = []

    def add(line: int, rule: str, message: str, warning: bool = False) -> None:
        problems.append(LintProblem(file, line, rule, message, warning))

    lines = text.split("\n")
    seen: dict[str, int] = {}
    previous_key = ""
    blank_run = 0
    for number, line in enumerate(lines, start=1):
        if number == len(lines) and line == "":
            break
        if line.rstrip() != line:
            add(number, "TrailingWhitespace", "trailing whitespace")
        stripped = line.strip()
        if not stripped:
            blank_run += 1
            if blank_run == 2:
                add(number, "ExtraBlankLine", "extra blank line")
            continue
        blank_run = 0
        if stripped.startswith("#"):
            continue
        body = _strip_export(line.rstrip())
        if "=" not in body:
            add(number, "KeyWithoutValue", f"{body.strip()} has no '=' and no value")
            continue
        raw_key, _, raw_value = body.partition("=")
        if raw_key != raw_key.rstrip() or raw_value != raw_value.lstrip():
            add(number, "SpaceCharacter", "spaces around '='")
        key = raw_key.strip()
        if raw_key and not (raw_key[0].isalpha() or raw_key[0] == "_"):
            add(number, "LeadingCharacter", f"{key} must start with a letter or '_'")
        elif key and not _KEY.fullmatch(key):
            add(
                number,
                "IncorrectDelimiter",
                f"{key} has characters other than letters, digits and '_'",
            )
        if key != key.upper():
            add(number, "LowercaseKey", f"{key} should be in uppercase")
        if key in seen:
            add(number, "DuplicatedKey", f"{key} is already defined on line {seen[key]}")
        else:
            seen[key] = number
        if previous_key and key and key.upper() < previous_key.upper():
            add(number, "UnorderedKey", f"{key} should go before {previous_key}", warning=True)
        previous_key = key or previous_key
        value = raw_value.strip()
        quoted = len(value) >= 2 and value[0] == value[-1] and value[0] in "'\""
        inner = value[1:-1] if quoted else value
        if quoted and not re.search(r"\s|#", inner):
            add(number, "QuoteCharacter", f"{key}: the value needs no quotes")
        elif not quoted and ('"' in value or "'" in value):
            add(number, "QuoteCharacter", f"{key}: unbalanced or stray quote characters")
        if not quoted and re.search(r"\s", value.split(" #", 1)[0].strip()):
            add(number, "ValueWithoutQuotes", f"{key}: a value with spaces must be quoted")
        if re.search(r"\$\{[^}]*$|\$\{[^}]*[^A-Za-z0-9_}][^}]*\}", inner) and not (
            quoted and value[0] == "'"
        ):
            add(number, "SubstitutionKey", f"{key}: malformed ${{...}} substitution")
    if text and not text.endswith("\n"):
        add(len(lines), "EndingBlankLine", "no blank line at the end of the file")
    return problems

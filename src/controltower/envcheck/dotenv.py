"""Read and lint ``.env`` files.

``lint`` runs every dotenv-linter check (3.x) with its name, its semantics and its
message: DuplicatedKey, EndingBlankLine, ExtraBlankLine, IncorrectDelimiter,
KeyWithoutValue, LeadingCharacter, LowercaseKey, QuoteCharacter, SpaceCharacter,
SubstitutionKey, TrailingWhitespace, UnorderedKey and ValueWithoutQuotes, plus
SchemaViolation against the ``[env.vars]`` catalog (the role dotenv-linter's
``--schema`` file plays). Lines are read as dotenv-linter reads them: CRLF line
ends accepted, a quoted value may run over several lines, ``export`` is allowed,
and ``# dotenv-linter:off Rule, Rule`` / ``# dotenv-linter:on Rule`` switch
checks off and on from that line. UnorderedKey is a warning (a group of keys
ends at a blank line, a control comment, or a key whose value substitutes one
of the group); everything else is a problem.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from controltower.spec.envcatalog import EnvVarSpec

RULES = (
    "DuplicatedKey",
    "EndingBlankLine",
    "ExtraBlankLine",
    "IncorrectDelimiter",
    "KeyWithoutValue",
    "LeadingCharacter",
    "LowercaseKey",
    "QuoteCharacter",
    "SchemaViolation",
    "SpaceCharacter",
    "SubstitutionKey",
    "TrailingWhitespace",
    "UnorderedKey",
    "ValueWithoutQuotes",
)
WARNINGS = frozenset({"UnorderedKey"})


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

    def to_dict(self) -> dict[str, object]:
        return {
            "file": self.file,
            "line": self.line,
            "rule": self.rule,
            "message": self.message,
            "warning": self.warning,
        }


@dataclass(frozen=True)
class Line:
    """One entry as dotenv-linter sees it: a physical line, or a multi-line quoted value."""

    number: int
    raw: str
    last: bool

    @property
    def empty(self) -> bool:
        return not self.raw.strip()

    @property
    def comment(self) -> bool:
        return self.raw.strip().startswith("#")

    @property
    def key(self) -> str | None:
        if self.empty or self.comment:
            return None
        stripped = self.raw.strip()
        if stripped.startswith("export "):
            stripped = stripped[len("export ") :].strip()
        return stripped.split("=", 1)[0]

    @property
    def value(self) -> str | None:
        if self.empty or self.comment or "=" not in self.raw:
            return None
        return self.raw.split("=", 1)[1]

    def substitutions(self) -> list[str]:
        """Names this value substitutes (``$A``, ``${B}``), as dotenv-linter finds them."""
        value = (self.value or "").strip()
        if not value or value.startswith("'"):
            return []
        if value.startswith('"'):
            if len(value) > 1 and value.endswith('"') and not _escaped(value[:-1]):
                value = value[1:-1]
            else:
                return []
        keys: list[str] = []
        while (index := value.find("$")) != -1:
            prefix, rest = value[:index], value[index + 1 :]
            if _escaped(prefix):
                value = rest
                continue
            if rest.startswith("{") and "}" in rest:
                key, value = rest[1 : rest.index("}")], rest[rest.index("}") :]
            else:
                end = next(
                    (
                        i
                        for i, c in enumerate(rest)
                        if not (c.isascii() and (c.isalnum() or c == "_"))
                    ),
                    len(rest),
                )
                key, value = rest[:end], rest[end:]
            if not key:
                return keys
            keys.append(key)
        return keys


def _escaped(prefix: str) -> bool:
    return (len(prefix) - len(prefix.rstrip("\\"))) % 2 == 1


def _quote_opens(value: str) -> str | None:
    """The quote that starts a value continuing on the next lines, or None."""
    for quote in ("'", '"'):
        if value.startswith(quote) and (
            len(value) == 1 or not value.endswith(quote) or _escaped(value[:-1])
        ):
            return quote
    return None


def lines(text: str) -> list[Line]:
    """The file's entries: CRLF accepted, multi-line quoted values joined, a final LF kept."""
    physical = text.split("\n")
    if text.endswith("\n"):
        physical.pop()
    physical = [p[:-1] if p.endswith("\r") else p for p in physical]
    if text.endswith("\n"):
        physical.append("\n")
    total = len(physical)
    out: list[Line] = []
    index = 0
    while index < total:
        start = index
        raw = physical[index]
        probe = Line(index + 1, raw, False)
        value = probe.value
        quote = _quote_opens(value.strip()) if value is not None else None
        if quote is not None:
            end = index + 1
            while end < total:
                position = physical[end].find(quote)
                if position != -1 and not _escaped(physical[end][:position]):
                    break
                end += 1
            if end < total:
                raw = "\n".join(physical[index : end + 1])
                index = end
        out.append(Line(start + 1, raw, index + 1 == total))
        index += 1
    return out


def is_dotenv(name: str) -> bool:
    """dotenv-linter's file pattern: ``.env*`` or ``*.env``, not ``.envrc`` or ``*.bak``."""
    return (
        (name.startswith(".env") or name.endswith(".env"))
        and name != ".envrc"
        and not name.endswith(".bak")
    )


def _unquote(raw: str) -> str:
    raw = raw.strip()
    if len(raw) >= 2 and raw[0] == raw[-1] and raw[0] in "'\"":
        return raw[1:-1]
    if " #" in raw:
        raw = raw.split(" #", 1)[0]
    return raw.strip()


def parse(text: str) -> list[Entry]:
    """Entries in file order (later duplicates included); comments and malformed lines skipped."""
    entries = []
    for line in lines(text):
        key, value = line.key, line.value
        if key is None or value is None:
            continue
        entries.append(Entry(key.strip(), _unquote(value), line.number))
    return entries


def read(path: Path) -> dict[str, Entry]:
    """The file's variables; the last occurrence of a key wins, as dotenv loaders do."""
    return {e.key: e for e in parse(path.read_text(encoding="utf-8", errors="replace"))}


# -- the checks ------------------------------------------------------------------------

Report = Callable[..., None]


def _control(line: Line) -> tuple[bool, list[str]] | None:
    """A ``# dotenv-linter:on|off Rule, Rule`` comment: (disable?, rules)."""
    if not line.comment:
        return None
    body = line.raw.strip()[1:].strip()
    if not body.startswith("dotenv-linter:"):
        return None
    words = body[len("dotenv-linter:") :].split()
    if not words or words[0] not in ("on", "off"):
        return None
    rules = [r for w in words[1:] for r in w.split(",") if r in RULES]
    return words[0] == "off", rules


def _incorrect_delimiter(key: str) -> bool:
    cleaned = key.lstrip()
    while cleaned and not (cleaned[0].isalpha() or cleaned[0] == "_"):
        cleaned = cleaned[1:]
    return any(not (c.isalnum() or c == "_") for c in cleaned.strip())


def _substitution_broken(value: str) -> bool:
    value = value.strip()
    if value.startswith("'"):
        return False
    while (index := value.find("$")) != -1:
        prefix, raw_key = value[:index], value[index + 1 :]
        next_dollar = raw_key.find("$")
        initial, rest = (
            (raw_key[:next_dollar], raw_key[next_dollar:]) if next_dollar != -1 else (raw_key, "")
        )
        end = initial.find("}")
        start_brace, end_brace = initial.startswith("{"), end != -1
        bad_name = end_brace and any(
            not (c.isascii() and (c.isalnum() or c == "_")) for c in initial[1:end]
        )
        if (start_brace != end_brace or bad_name) and not _escaped(prefix):
            return True
        value = rest
    return False


def _check_line(line: Line, report: Report, seen: set[str]) -> None:
    """Every single-line check on ``line`` (comment and blank lines handled by the caller)."""
    key, value, raw = line.key, line.value, line.raw
    assert key is not None
    if key in seen:
        report(line.number, "DuplicatedKey", f"The {key} key is duplicated")
    seen.add(key)
    if _incorrect_delimiter(key):
        report(line.number, "IncorrectDelimiter", f"The {key} key has incorrect delimiter")
    if "=" not in raw:
        report(
            line.number,
            "KeyWithoutValue",
            f"The {key} key should be with a value or have an equal sign",
        )
    if not (raw[:1].isalpha() or raw[:1] == "_"):
        report(line.number, "LeadingCharacter", "Invalid leading character detected")
    if key.upper() != key:
        report(line.number, "LowercaseKey", f"The {key} key should be in uppercase")
    if value is not None:
        calm = any(c in value for c in ("\\n", "$", "#", "&", "=")) or any(
            c.isspace() for c in value
        )
        if not calm and ('"' in value or "'" in value):
            report(line.number, "QuoteCharacter", "The value has quote characters (', \")")
        trimmed = value.strip()
        quoted = len(trimmed) >= 2 and trimmed[0] == trimmed[-1] and trimmed[0] in "'\""
        if any(c.isspace() for c in trimmed) and not quoted:
            report(line.number, "ValueWithoutQuotes", "This value needs to be surrounded in quotes")
        if _substitution_broken(value):
            report(line.number, "SubstitutionKey", f"The {key} key is not assigned properly")
    parts = raw.split("=")
    if len(parts) == 2 and (parts[0].endswith(" ") or parts[1].startswith(" ")):
        report(line.number, "SpaceCharacter", "The line has spaces around equal sign")
    if raw.endswith(" "):
        report(line.number, "TrailingWhitespace", "Trailing whitespace detected")


def lint(
    text: str,
    file: str,
    *,
    catalog: Mapping[str, EnvVarSpec] | None = None,
    skip: frozenset[str] = frozenset(),
) -> list[LintProblem]:
    """Every problem in ``text``; with ``catalog``, values are also checked against their format."""
    problems: list[LintProblem] = []
    disabled: set[str] = set(skip)

    def report(number: int, rule: str, message: str, warning: bool | None = None) -> None:
        if rule not in disabled:
            flag = rule in WARNINGS if warning is None else warning
            problems.append(LintProblem(file, number, rule, message, flag))

    seen: set[str] = set()
    group: list[str] = []
    last_blank = 0
    for line in lines(text):
        control = _control(line)
        if control is not None:
            disable, rules = control
            disabled = disabled | set(rules) if disable else disabled - set(rules)
        if line.last and not line.raw.endswith("\n"):
            report(line.number, "EndingBlankLine", "No blank line at the end of the file")
        if line.empty or control is not None:
            group = []
        if line.empty:
            if last_blank and last_blank + 1 == line.number:
                report(line.number, "ExtraBlankLine", "Extra blank line detected")
            last_blank = line.number
            continue
        if line.comment:
            continue
        key = line.key
        assert key is not None
        if any(k in group for k in line.substitutions()):
            group = []
        else:
            group.append(key)
            ordered = sorted(group)
            if ordered != group:
                after = ordered[ordered.index(key) + 1 :]
                if after:
                    report(
                        line.number,
                        "UnorderedKey",
                        f"The {key} key should go before the {after[0]} key",
                    )
        _check_line(line, report, seen)
        if catalog is not None and line.value is not None:
            _schema(line, key.strip(), catalog, report)
    return problems


def _schema(line: Line, key: str, catalog: Mapping[str, EnvVarSpec], report: Report) -> None:
    """SchemaViolation: a value that breaks its declared format; an unknown key is a warning."""
    from controltower.envcheck.rules import format_problem, is_placeholder

    var = catalog.get(key)
    if var is None:
        if catalog:
            report(
                line.number, "SchemaViolation", f"The {key} key is not defined in the schema", True
            )
        return
    value = _unquote(line.value or "")
    if is_placeholder(value):
        return
    reason = format_problem(key, var, value)
    if reason:
        report(
            line.number, "SchemaViolation", f"The {key} key {reason} (format {var.format.value})"
        )


def _fixed(raw: str, rules: set[str]) -> str:
    """``raw`` with the line-local problems corrected, as dotenv-linter's fixers would."""
    line = raw.rstrip(" ") if "TrailingWhitespace" in rules else raw
    export = ""
    body = line.strip() if "LeadingCharacter" in rules else line
    if body.startswith("export "):
        export, body = "export ", body[len("export ") :]
    key, sep, value = body.partition("=")
    if "LeadingCharacter" in rules:
        key = key.lstrip(" \t.*-0123456789")
    if "SpaceCharacter" in rules:
        key, value = key.rstrip(), value.lstrip()
    if "IncorrectDelimiter" in rules:
        key = "".join(c if c.isalnum() or c == "_" else "_" for c in key.strip())
    if "LowercaseKey" in rules:
        key = key.upper()
    if "KeyWithoutValue" in rules:
        sep = "="
    if "QuoteCharacter" in rules:
        value = value.replace('"', "").replace("'", "")
    if "ValueWithoutQuotes" in rules:
        value = '"' + value.strip().replace('"', '\\"') + '"'
    return f"{export}{key}{sep}{value}"


def suggestions(text: str, problems: list[LintProblem]) -> list[str]:
    """One corrected line (or instruction) per problem line, ``line N: ...``."""
    by_line: dict[int, set[str]] = {}
    for problem in problems:
        by_line.setdefault(problem.line, set()).add(problem.rule)
    raw = {line.number: line.raw for line in lines(text)}
    out = []
    for number, rules in sorted(by_line.items()):
        if "DuplicatedKey" in rules:
            out.append(f"line {number}: delete it (the key is set again)")
        elif "ExtraBlankLine" in rules:
            out.append(f"line {number}: delete the blank line")
        elif "SubstitutionKey" in rules:
            out.append(f"line {number}: write each substitution as ${{NAME}} or $NAME")
        elif rules & {
            "TrailingWhitespace", "SpaceCharacter", "LeadingCharacter", "IncorrectDelimiter",
            "LowercaseKey", "KeyWithoutValue", "QuoteCharacter", "ValueWithoutQuotes",
        }:  # fmt: skip
            out.append(f"line {number}: {_fixed(raw.get(number, ''), rules)}")
        if "EndingBlankLine" in rules:
            out.append(f"line {number}: end the file with a newline")
    return out

"""A Dockerfile parser: instructions with their first line, stages, ARG defaults.

It reads files the way BuildKit does for what the checks need: continuation
lines are joined, comments between them dropped, heredoc bodies of RUN, COPY
and ADD kept with their instruction (a ``<<`` inside shell arithmetic or quotes
is not a heredoc, and a marker that is never closed opens none), and every
FROM starts a stage.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

HEREDOC_KEYWORDS = frozenset({"RUN", "COPY", "ADD"})
_MARKER = re.compile(r"(?<![<\d])<<-?\s*([\"']?)([A-Za-z_][A-Za-z0-9_]*)\1(?!<)")


@dataclass(frozen=True)
class Instruction:
    keyword: str
    args: str
    line: int
    stage: int


def _unshelled(text: str) -> str:
    """``text`` without quoted strings and ``$((...))`` / ``((...))`` arithmetic."""
    out: list[str] = []
    index, depth = 0, 0
    while index < len(text):
        char = text[index]
        if depth == 0 and char in "\"'":
            end = text.find(char, index + 1)
            if re.search(r"<<-?\s*$", "".join(out[-4:])):
                out.append(text[index : (len(text) if end < 0 else end + 1)])
                index = len(text) if end < 0 else end + 1
                continue
            index = len(text) if end < 0 else end + 1
            out.append(" ")
            continue
        if text.startswith("$((", index) or (depth == 0 and text.startswith("((", index)):
            step = 3 if char == "$" else 2
            depth += 2
            index += step
            continue
        if depth:
            if char == "(":
                depth += 1
            elif char == ")":
                depth -= 1
            index += 1
            if depth == 0:
                out.append(" ")
            continue
        out.append(char)
        index += 1
    return "".join(out)


def heredoc_markers(keyword: str, args: str) -> list[str]:
    """The heredoc terminators an instruction opens (none for other keywords)."""
    if keyword.upper() not in HEREDOC_KEYWORDS:
        return []
    return [match.group(2) for match in _MARKER.finditer(_unshelled(args))]


def parse(text: str) -> list[Instruction]:
    """Instructions with their first line: continuations joined, heredoc bodies kept, comments dropped."""
    out: list[Instruction] = []
    buffer, start, stage = "", 0, -1
    lines = text.splitlines()
    number = 0
    while number < len(lines):
        raw = lines[number]
        number += 1
        line = raw.strip()
        if not buffer and (not line or line.startswith("#")):
            continue
        if buffer and (not line or line.startswith("#")):
            continue
        if not buffer:
            start = number
        if line.endswith("\\"):
            buffer += line[:-1] + " "
            continue
        buffer += line
        keyword, _, args = buffer.partition(" ")
        for marker in heredoc_markers(keyword, args):
            end = next((n for n in range(number, len(lines)) if lines[n].strip() == marker), None)
            if end is None:
                continue
            buffer += "\n" + "\n".join(lines[number:end])
            number = end + 1
        keyword, _, args = buffer.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            stage += 1
        out.append(Instruction(keyword, args.strip(), start, stage))
        buffer = ""
    return out


def final_stage(instructions: list[Instruction]) -> list[Instruction]:
    """The instructions of the last stage: what the image that runs is made of."""
    last = max((i.stage for i in instructions), default=0)
    return [i for i in instructions if i.stage == last]


def global_args(instructions: list[Instruction]) -> dict[str, str]:
    """Default values of the ARGs declared before the first FROM (they parameterise FROM lines)."""
    found: dict[str, str] = {}
    for i in instructions:
        if i.keyword == "FROM":
            break
        if i.keyword == "ARG":
            name, _, default = i.args.partition("=")
            found[name.strip()] = default.strip().strip("\"'")
    return found


def expand(text: str, variables: dict[str, str]) -> str | None:
    """``$NAME`` / ``${NAME}`` / ``${NAME:-default}`` substituted; None when one has no value."""
    missing = False

    def one(match: re.Match[str]) -> str:
        nonlocal missing
        name = match.group(1) or match.group(2)
        default = match.group(3)
        value = variables.get(name) or default
        if value is None:
            missing = True
            return ""
        return value

    result = re.sub(
        r"\$(?:([A-Za-z_][A-Za-z0-9_]*)|\{([A-Za-z_][A-Za-z0-9_]*)(?::?-([^}]*))?\})", one, text
    )
    return None if missing else result


@dataclass(frozen=True)
class Base:
    """A FROM line: the image as written and resolved, and the stage name it opens."""

    line: int
    stage: int
    written: str
    image: str | None
    alias: str
    from_stage: bool

    @property
    def name(self) -> str:
        """The repository without registry or tag: ``node``, ``library/python`` -> ``python``."""
        if self.image is None:
            return ""
        path = self.image.split("@", 1)[0]
        last = path.rsplit("/", 1)[-1]
        repo = last.split(":", 1)[0]
        parts = path.split("/")
        if len(parts) > 1 and parts[-2] not in ("library", "docker.io") and "." not in parts[0]:
            return f"{parts[-2]}/{repo}" if len(parts) == 2 else repo
        return repo

    @property
    def tag(self) -> str:
        if self.image is None:
            return ""
        path = self.image.split("@", 1)[0]
        return path.rsplit("/", 1)[-1].partition(":")[2]

    @property
    def digest(self) -> bool:
        return self.image is not None and "@sha256:" in self.image


def bases(instructions: list[Instruction]) -> list[Base]:
    """Every FROM with its image resolved through the global ARG defaults."""
    variables = global_args(instructions)
    stages: set[str] = set()
    found = []
    for i in instructions:
        if i.keyword != "FROM":
            continue
        words = [w for w in i.args.split() if not w.startswith("--")]
        written = words[0] if words else ""
        alias = words[2].lower() if len(words) >= 3 and words[1].upper() == "AS" else ""
        found.append(
            Base(
                i.line,
                i.stage,
                written,
                expand(written, variables),
                alias,
                written.lower() in stages,
            )
        )
        if alias:
            stages.add(alias)
    return found

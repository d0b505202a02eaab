"""The name of the function that encloses a position of JavaScript or TypeScript source.

Source maps rarely name the function a frame is in: the minified name is what the stack
says, and ``symbolic`` resolves the original only when the minified source makes it
plain. This reads the original source (``sourcesContent``) instead: it walks the text up
to the position, keeping the open braces (strings, template literals and comments
skipped), and names the innermost function among them by its header:
``function name(``, ``name(...) {`` (a method), ``name = (...) =>``, ``name: (...) =>``.
Blocks of ``if``, ``for``, ``try`` and the like are passed over; an anonymous function
with no name in its header gives None.
"""

from __future__ import annotations

import re

_KEYWORDS = frozenset(
    {"if", "for", "while", "switch", "catch", "with", "return", "typeof", "await", "new", "do"}
)
_NAMED = (
    re.compile(r"function\s*\*?\s*([A-Za-z_$][\w$]*)\s*(<[^>{}]*>)?\s*\([^()]*\)\s*(:[^{}]*)?$"),
    re.compile(
        r"([A-Za-z_$][\w$]*)\s*(:\s*[^=:{}]+)?\s*[:=]\s*(async\s+)?"
        r"(function\s*\*?\s*)?(\([^()]*\)|[A-Za-z_$][\w$]*)\s*(:[^{}=]*)?(=>)?\s*$"
    ),
    re.compile(
        r"(?:^|[\s;,{}])(?:async\s+|static\s+|get\s+|set\s+)*([A-Za-z_$][\w$]*)\s*"
        r"\([^()]*\)\s*(:[^{}]*)?$"
    ),
)
_BLOCK = re.compile(r"(\b(else|try|finally|do)|\)|=>)\s*$")


def _open_braces(text: str) -> list[int]:
    """Positions of the braces still open at the end of ``text``."""
    stack: list[tuple[int, str]] = []  # (position, "{" for code or "${" for a template part)
    i, n = 0, len(text)
    template_depth: list[int] = []
    while i < n:
        char = text[i]
        if char in "\"'":
            end = i + 1
            while end < n and text[end] != char and text[end] != "\n":
                end += 2 if text[end] == "\\" else 1
            i = end + 1
            continue
        if char == "`" or (char == "}" and template_depth and template_depth[-1] == len(stack)):
            if char == "}":
                template_depth.pop()
                stack.pop()
            end = i + 1
            while end < n and text[end] != "`":
                if text[end] == "\\":
                    end += 2
                    continue
                if text.startswith("${", end):
                    stack.append((end, "${"))
                    template_depth.append(len(stack))
                    break
                end += 1
            i = end + (2 if text.startswith("${", end) else 1)
            continue
        if text.startswith("//", i):
            newline = text.find("\n", i)
            i = n if newline < 0 else newline
            continue
        if text.startswith("/*", i):
            close = text.find("*/", i + 2)
            i = n if close < 0 else close + 2
            continue
        if char == "{":
            stack.append((i, "{"))
        elif char == "}" and stack:
            stack.pop()
        i += 1
    return [position for position, kind in stack if kind == "{"]


def enclosing_function(source: str, line: int, column: int) -> str | None:
    """The name of the innermost named function around 0-based ``line``/``column``."""
    lines = source.splitlines()
    if not 0 <= line < len(lines):
        return None
    text = "\n".join([*lines[:line], lines[line][:column]])
    for position in reversed(_open_braces(text)):
        header = " ".join(text[max(0, position - 300) : position].split())
        header = re.split(r"[;{}]", header)[-1].strip()
        for pattern in _NAMED:
            match = pattern.search(header)
            if match and match.group(1) not in _KEYWORDS:
                return match.group(1)
        if _BLOCK.search(header) and not header.endswith(("=>", ")")):
            continue
        if re.search(r"\b(if|for|while|switch|catch|with)\s*\(.*\)$", header):
            continue
        if header.endswith("=>") or "function" in header:
            return None
    return None

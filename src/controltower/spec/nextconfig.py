"""Read a Next.js app as text: its ``next.config.*`` and what its code uses.

One reader for the checks, ``tower init`` and the generators. The config is
JavaScript or TypeScript, so it is read as text with comments blanked out
(line numbers kept), never executed; a key counts as set when it appears as
an object property (``deploymentId: ...``) or a shorthand (``{ deploymentId }``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

CONFIG_NAMES = (
    "next.config.js",
    "next.config.mjs",
    "next.config.ts",
    "next.config.cjs",
    "next.config.mts",
)
MAX_BYTES = 1_000_000

_USE_SERVER = re.compile(r"""^[ \t]*["']use server["'];?[ \t]*$""", re.MULTILINE)
# Incremental Static Regeneration and the data cache: what writes Next's cache at run time.
_ISR = (
    re.compile(r"""^[ \t]*export\s+const\s+revalidate\s*=\s*(?!0\b|false\b)\d""", re.MULTILINE),
    re.compile(r"""\b(?:revalidatePath|revalidateTag|unstable_cache|unstable_expireTag)\s*\("""),
    re.compile(r"""\brevalidate\s*:\s*(?!0\b|false\b)\d"""),  # fetch's next: {}, getStaticProps
    re.compile(r"""^[ \t]*["']use cache(?::\s*\w+)?["'];?[ \t]*$""", re.MULTILINE),
)


def strip_comments(text: str) -> str:
    """``text`` with ``/* */`` and ``//`` comments blanked, line numbers kept (``://`` stays)."""
    text = re.sub(r"/\*.*?\*/", lambda m: "\n" * m.group(0).count("\n"), text, flags=re.DOTALL)
    return re.sub(r"(?m)(^|[^:])//.*$", r"\1", text)


def read(path: Path) -> str | None:
    try:
        if path.stat().st_size > MAX_BYTES:
            return None
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None


@dataclass(frozen=True)
class NextConfig:
    """A ``next.config.*`` file: ``name`` relative to the app, ``text`` without comments."""

    name: str
    text: str

    def key(self, name: str) -> int:
        """The line where ``name`` is set as a property or shorthand; 0 when it is not."""
        match = re.search(rf"(?<![\w$.]){re.escape(name)}\s*(?::|,|\}}|\n\s*\}})", self.text)
        return self.text.count("\n", 0, match.start()) + 1 if match else 0

    def has(self, pattern: str) -> bool:
        return re.search(pattern, self.text) is not None

    @cached_property
    def standalone(self) -> bool:
        return self.has(r"""\boutput\s*:\s*["']standalone["']""")

    @property
    def deployment_id(self) -> int:
        return self.key("deploymentId")

    @property
    def cache_handler(self) -> int:
        """The line of ``cacheHandler`` (ISR, Next 14+) or ``cacheHandlers`` ("use cache")."""
        return self.key("cacheHandler") or self.key("cacheHandlers")


def find(root: Path) -> NextConfig | None:
    """The app's ``next.config.*`` (the first of CONFIG_NAMES that exists), read as text."""
    for name in CONFIG_NAMES:
        text = read(root / name)
        if text is not None:
            return NextConfig(name, strip_comments(text))
    return None


def _code(root: Path) -> list[tuple[str, str]]:
    from controltower.spec.detect import code_files

    out = []
    for path in code_files(root):
        if path.suffix in (".py",) or path.name.startswith("next.config."):
            continue
        text = read(path)
        if text:
            out.append((path.relative_to(root).as_posix(), strip_comments(text)))
    return out


def _where(relative: str, text: str, match: re.Match[str]) -> str:
    return f"{relative}:{text.count(chr(10), 0, match.start()) + 1}"


def server_actions(root: Path) -> list[str]:
    """``file:line`` of each ``"use server"`` directive: the app has Server Actions."""
    return [
        _where(relative, text, match)
        for relative, text in _code(root)
        for match in _USE_SERVER.finditer(text)
    ]


def cache_writes(root: Path) -> list[str]:
    """``file:line`` of each use of ISR or the data cache (``revalidate``, ``revalidatePath``,
    ``revalidateTag``, ``unstable_cache``, ``"use cache"``): what needs a shared cache when
    several instances serve."""
    found: list[str] = []
    for relative, text in _code(root):
        for pattern in _ISR:
            for match in pattern.finditer(text):
                where = _where(relative, text, match)
                if where not in found:
                    found.append(where)
    return sorted(found)

"""End-of-life dates of the base images Dockerfiles start from, and how far a tag must go.

The table is dated: ``AS_OF`` is when it was last compared with its sources
(https://endoflife.date/nodejs, /python, /debian, /ubuntu, /alpine, which
follow each project's own release calendar). A release is end-of-life on the
day after its date. Update the table (and ``AS_OF``) when a project publishes a
new release line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

AS_OF = date(2026, 11, 30)

NODE = {
    "10": date(2021, 4, 30),
    "12": date(2022, 4, 30),
    "14": date(2023, 4, 30),
    "16": date(2023, 9, 11),
    "17": date(2022, 6, 1),
    "18": date(2025, 4, 30),
    "19": date(2023, 6, 1),
    "20": date(2026, 4, 30),
    "21": date(2024, 6, 1),
    "22": date(2027, 4, 30),
    "23": date(2025, 6, 1),
    "24": date(2028, 4, 30),
    "25": date(2026, 6, 1),
}
PYTHON = {
    "2.7": date(2020, 1, 1),
    "3.6": date(2021, 12, 23),
    "3.7": date(2023, 6, 27),
    "3.8": date(2024, 10, 7),
    "3.9": date(2025, 10, 31),
    "3.10": date(2026, 10, 31),
    "3.11": date(2027, 10, 31),
    "3.12": date(2028, 10, 31),
    "3.13": date(2029, 10, 31),
    "3.14": date(2030, 10, 31),
}
# Debian's dates include LTS, the last security support a free image still gets.
DEBIAN = {
    "jessie": date(2020, 6, 30),
    "stretch": date(2022, 6, 30),
    "buster": date(2024, 6, 30),
    "bullseye": date(2026, 8, 31),
    "bookworm": date(2028, 6, 30),
    "trixie": date(2030, 6, 30),
}
DEBIAN_NUMBERS = {
    "8": "jessie",
    "9": "stretch",
    "10": "buster",
    "11": "bullseye",
    "12": "bookworm",
    "13": "trixie",
}
UBUNTU = {
    "16.04": date(2021, 4, 30),
    "18.04": date(2023, 5, 31),
    "20.04": date(2025, 5, 31),
    "22.04": date(2027, 6, 1),
    "24.04": date(2029, 5, 31),
}
UBUNTU_NAMES = {
    "xenial": "16.04",
    "bionic": "18.04",
    "focal": "20.04",
    "jammy": "22.04",
    "noble": "24.04",
}
ALPINE = {
    "3.14": date(2023, 5, 1),
    "3.15": date(2023, 11, 1),
    "3.16": date(2024, 5, 23),
    "3.17": date(2024, 11, 22),
    "3.18": date(2025, 5, 9),
    "3.19": date(2025, 11, 1),
    "3.20": date(2026, 4, 1),
    "3.21": date(2026, 11, 1),
    "3.22": date(2027, 5, 1),
    "3.23": date(2027, 11, 1),
}

# How many parts of the version a tag must name so that it stays on one release line:
# node:22 is one line, python:3 floats from 3.12 to 3.13.
PIN_DEPTH = {"python": 2, "ruby": 2, "golang": 2, "php": 2, "alpine": 2, "ubuntu": 2}
FLOATING_WORDS = frozenset(
    {"latest", "lts", "current", "stable", "alpine", "slim", "edge", "rolling", "mainline"}
)
# Tags that only name a variant (no version): node:alpine, python:slim-bookworm.
VARIANT_ONLY = re.compile(
    r"^(alpine|slim|bookworm|bullseye|buster|trixie|jammy|noble|focal)([-.].*)?$"
)


@dataclass(frozen=True)
class Release:
    """One release line a tag stands on and the day its support ends."""

    what: str
    ends: date


def short(name: str) -> str:
    return name.rsplit("/", 1)[-1]


def floating(name: str, tag: str) -> str:
    """Why a tag moves to other release lines over time ("" when it stays on one)."""
    if not tag:
        return "no tag (it means latest)"
    first = tag.split("-", 1)[0].lower()
    if first in FLOATING_WORDS or tag.lower() in FLOATING_WORDS:
        return f"'{tag}' moves to each new release"
    version = re.match(r"^v?(\d+(?:\.\d+)*)", tag)
    if version is None:
        if name in ("debian", "ubuntu") or not VARIANT_ONLY.match(tag.lower()):
            return ""
        return f"'{tag}' names no version: it moves to each new release"
    depth = PIN_DEPTH.get(name.rsplit("/", 1)[-1], 1)
    if len(version.group(1).split(".")) < depth:
        return f"'{tag}' names only {version.group(1)}: it moves to each new {short(name)} {version.group(1)}.x release"
    return ""


def releases(name: str, tag: str) -> list[Release]:
    """The release lines an image tag stands on: the language or OS, and the distribution under it."""
    short = name.rsplit("/", 1)[-1]
    lowered = tag.lower()
    found: list[Release] = []
    version = re.match(r"^v?(\d+)(?:\.(\d+))?", lowered)
    if short == "node" and version and version.group(1) in NODE:
        found.append(Release(f"Node.js {version.group(1)}", NODE[version.group(1)]))
    if short == "python" and version and version.group(2) is not None:
        line = f"{version.group(1)}.{version.group(2)}"
        if line in PYTHON:
            found.append(Release(f"Python {line}", PYTHON[line]))
    if short == "debian":
        codename = DEBIAN_NUMBERS.get(version.group(1), "") if version else ""
        codename = codename or next((c for c in DEBIAN if lowered.startswith(c)), "")
        if codename:
            found.append(Release(f"Debian {codename}", DEBIAN[codename]))
    elif short != "ubuntu":
        for codename, ends in DEBIAN.items():
            if re.search(rf"(^|-){codename}($|-)", lowered):
                found.append(Release(f"Debian {codename}", ends))
    if short == "ubuntu":
        number = UBUNTU_NAMES.get(lowered.split("-")[0], "")
        if not number and version and version.group(2) is not None:
            number = f"{version.group(1)}.{version.group(2).zfill(2)}"
        if number in UBUNTU:
            found.append(Release(f"Ubuntu {number}", UBUNTU[number]))
    if short == "alpine" and version and version.group(2) is not None:
        line = f"{version.group(1)}.{version.group(2)}"
        if line in ALPINE:
            found.append(Release(f"Alpine {line}", ALPINE[line]))
    elif short != "alpine":
        match = re.search(r"alpine(\d+\.\d+)", lowered)
        if match and match.group(1) in ALPINE:
            found.append(Release(f"Alpine {match.group(1)}", ALPINE[match.group(1)]))
    return found


# Which of curl and wget an official image has, by its variant; None: not known.
def http_tools(name: str, tag: str) -> frozenset[str] | None:
    short = name.rsplit("/", 1)[-1]
    lowered = tag.lower()
    if "distroless" in name or name.startswith("cgr.dev/"):
        return frozenset()
    if short in ("alpine",) or "alpine" in lowered:
        return frozenset({"wget"})
    if short in ("node", "python", "ruby", "golang", "php"):
        if "slim" in lowered:
            return frozenset()
        return frozenset({"curl", "wget"})
    if short in ("debian", "ubuntu"):
        return frozenset()
    return None

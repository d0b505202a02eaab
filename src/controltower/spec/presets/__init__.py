"""Commented tower.toml presets that ``tower init`` writes."""

from __future__ import annotations

import json
import re
from importlib import resources

from controltower.spec.detect import Detected
from controltower.units import parse_size

PRESETS = ("nextjs", "nextjs-fly", "python-asgi")
NEXTJS_PRESETS = ("nextjs", "nextjs-fly")


def _string(value: str) -> str:
    """``value`` as a TOML basic string, quotes included."""
    return json.dumps(value, ensure_ascii=False).replace("\x7f", "\\u007f")


def _quoted(value: str) -> str:
    """``value`` escaped for a TOML basic string whose quotes the template supplies."""
    return _string(value)[1:-1]


def _memory(found: Detected, preset: str) -> str:
    default = "1gb" if preset in NEXTJS_PRESETS else "512mb"
    text = found.memory.strip().lower()
    if text.isdigit():
        text += "mb"
    try:
        size = parse_size(text) if text else 0
    except ValueError:
        return default
    megabytes = size / (1024 * 1024)
    # a size Fly refuses (steps of 256 MB, 256 MB to 2 GB on the one shared CPU the
    # presets start with) would make the rendered spec invalid: the default instead
    fits = megabytes == int(megabytes) and int(megabytes) % 256 == 0 and 256 <= megabytes <= 2048
    return text if fits else default


def render(preset: str, found: Detected) -> str:
    """The preset's text with the detected values filled in; always a valid spec."""
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
    text = resources.files(__name__).joinpath(f"{preset}.toml").read_text(encoding="utf-8")
    fly_app = found.fly_app or found.name
    stack = found.stack
    if stack == "other":
        stack = "nextjs" if preset in NEXTJS_PRESETS else "python-asgi"
    values = {
        "name": found.name,
        "stack": stack,
        "target": "fly" if preset == "nextjs-fly" else found.target,
        "port": str(found.port if 1 <= found.port <= 65535 else 8080),
        "memory": _quoted(_memory(found, preset)),
        "fly_app": _quoted(fly_app),
        "fly_host": re.sub(r"[^a-z0-9-]+", "-", fly_app.lower()).strip("-") or "app",
        "env_files": ", ".join(_string(name) for name in (found.base_env_files or [".env"])),
        "command": _quoted(found.serve_command),
    }
    for key, value in values.items():
        text = text.replace("{{" + key + "}}", value)
    from controltower.spec.tailor import tailor

    return tailor(text, found)[0]

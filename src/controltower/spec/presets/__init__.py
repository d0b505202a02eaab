"""Commented tower.toml presets that ``tower init`` writes."""

from __future__ import annotations

from importlib import resources

from controltower.spec.detect import Detected

PRESETS = ("nextjs-fly", "python-asgi")


def render(preset: str, found: Detected) -> str:
    """The preset's text with the detected values filled in."""
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
    text = resources.files(__name__).joinpath(f"{preset}.toml").read_text(encoding="utf-8")
    env_files = ", ".join(f'"{name}"' for name in (found.env_files or [".env"]))
    values = {
        "name": found.name,
        "stack": found.stack
        if found.stack != "other"
        else ("nextjs" if preset == "nextjs-fly" else "python-asgi"),
        "target": found.target if preset == "python-asgi" else "fly",
        "port": str(found.port),
        "memory": found.memory or ("1gb" if preset == "nextjs-fly" else "512mb"),
        "fly_app": found.fly_app or found.name,
        "env_files": env_files,
    }
    for key, value in values.items():
        text = text.replace("{{" + key + "}}", value)
    return text

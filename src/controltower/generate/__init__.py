"""Generators of the files a production app needs, from tower.toml.

``build(spec, target, root)`` returns the files (pure: nothing touches the
disk); ``apply`` compares each with what is on disk, shows the diff, merges
TOML, and writes only when asked.
"""

from __future__ import annotations

from pathlib import Path

from controltower.exceptions import GenerateError
from controltower.generate.common import App, app_facts
from controltower.generate.dockerfile import dockerfile
from controltower.generate.envexample import env_example
from controltower.generate.files import GeneratedFile, Outcome, apply, merge_toml
from controltower.generate.flytoml import fly_toml
from controltower.generate.nextjs import nextjs_files
from controltower.generate.workflow import github_actions
from controltower.spec import Spec

TARGETS = ("fly-toml", "dockerfile", "github-actions", "env-example", "nextjs")


def build(
    spec: Spec,
    target: str,
    root: Path,
    *,
    release_command: str | None = None,
    python_entry: str = "app:app",
) -> list[GeneratedFile]:
    """The files ``target`` (one of ``TARGETS``, or ``all``) stands for."""
    app = app_facts(spec, root, migration=release_command, python_entry=python_entry)
    if target == "all":
        files: list[GeneratedFile] = []
        for name in TARGETS:
            if name == "nextjs" and not app.is_node:
                continue
            files += build(
                spec, name, root, release_command=release_command, python_entry=python_entry
            )
        return files
    if target == "fly-toml":
        return [fly_toml(spec, app)]
    if target == "dockerfile":
        return [dockerfile(spec, app, root)]
    if target == "github-actions":
        return [github_actions(spec, app)]
    if target == "env-example":
        return [env_example(spec)]
    if target == "nextjs":
        return nextjs_files(spec)
    raise GenerateError(
        f"unknown generator {target!r}", hint=f"choose one of {', '.join(TARGETS)} or all"
    )


__all__ = [
    "TARGETS",
    "App",
    "GeneratedFile",
    "Outcome",
    "app_facts",
    "apply",
    "build",
    "merge_toml",
]

"""Generators of the files a production app needs, from tower.toml.

``build(spec, target, root)`` returns the files (pure: nothing touches the
disk); ``apply`` compares each with what is on disk, shows the diff, merges
TOML, and writes only when asked.
"""

from __future__ import annotations

import difflib
from pathlib import Path

from controltower.exceptions import UsageError
from controltower.generate.common import App, app_facts
from controltower.generate.dockerfile import dockerfile, dockerignore
from controltower.generate.envexample import env_example
from controltower.generate.files import GeneratedFile, Outcome, apply, merge_toml
from controltower.generate.flytoml import fly_toml
from controltower.generate.nextjs import nextjs_files
from controltower.generate.workflow import github_actions
from controltower.spec import Spec
from controltower.spec.service import Stack, Target

TARGETS = ("fly-toml", "dockerfile", "dockerignore", "github-actions", "env-example", "nextjs")


def targets_for(spec: Spec, app: App) -> list[str]:
    """What ``all`` generates for the spec's platform: Fly gets fly.toml; Vercel builds the app
    itself (no Dockerfile); every container platform gets a Dockerfile and .dockerignore."""
    platform = spec.service.target
    chosen = ["github-actions", "env-example"]
    if platform is not Target.VERCEL:
        chosen[:0] = ["dockerfile", "dockerignore"]
    if platform is Target.FLY:
        chosen.insert(0, "fly-toml")
    if app.stack is Stack.NEXTJS:
        chosen.append("nextjs")
    return chosen


def build(
    spec: Spec,
    target: str,
    root: Path,
    *,
    release_command: str | None = None,
    python_entry: str | None = None,
) -> list[GeneratedFile]:
    """The files ``target`` (one of ``TARGETS``, or ``all``) stands for."""
    if target != "all" and target not in TARGETS:
        close = difflib.get_close_matches(target, TARGETS, n=1)
        raise UsageError(
            f"unknown generator {target!r}"
            + (f" (did you mean {close[0]}?)" if close else "")
            + f"; choose one of {', '.join(TARGETS)} or all"
        )
    app = app_facts(spec, root, migration=release_command, python_entry=python_entry)
    if target == "all":
        files: list[GeneratedFile] = []
        for name in targets_for(spec, app):
            files += build(
                spec, name, root, release_command=release_command, python_entry=python_entry
            )
        return files
    if target == "fly-toml":
        return [fly_toml(spec, app)]
    if target == "dockerfile":
        return [dockerfile(spec, app, root)]
    if target == "dockerignore":
        return [dockerignore(spec, app)]
    if target == "github-actions":
        return [github_actions(spec, app)]
    if target == "env-example":
        return [env_example(spec)]
    return nextjs_files(spec, root)


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

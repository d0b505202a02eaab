"""``.env.example`` from the spec's env catalog: every variable, secrets left empty."""

from __future__ import annotations

import re

from controltower.generate.files import GeneratedFile, Reconciled
from controltower.spec import Spec
from controltower.spec.envcatalog import EnvVarSpec, VarFormat


def _hint(var: EnvVarSpec) -> str:
    if var.format is VarFormat.ENUM:
        return "one of " + ", ".join(var.values)
    if var.format is VarFormat.PREFIX:
        prefixes = [var.prefix] if isinstance(var.prefix, str) else var.prefix
        return "starts with " + " or ".join(prefixes)
    if var.format is VarFormat.REGEX:
        return f"matches {var.pattern}"
    if var.format is VarFormat.STRING:
        return ""
    return f"a {var.format.value}"


def env_example(spec: Spec, *, path: str = ".env.example") -> GeneratedFile:
    lines = [
        f"# Environment of {spec.service.name}, written by `tower generate env-example`.",
        "# Copy to .env and fill in. Secrets are left empty: never commit their values.",
        "",
    ]
    for name, var in sorted(spec.env.vars.items()):
        about = [var.description] if var.description else []
        hint = _hint(var)
        if hint:
            about.append(hint)
        flags = ["required" if var.required else "optional"]
        if var.secret:
            flags.append("secret: set it in the environment or with `fly secrets set`")
        if var.environments:
            flags.append("only in " + ", ".join(var.environments))
        lines.append("# " + "; ".join([*about, *flags]))
        value = "" if var.secret else var.example
        lines.append(f"{name}={value}")
        lines.append("")
    text = "\n".join(lines).rstrip("\n") + "\n"
    return GeneratedFile(path, text, reconcile=lambda existing: _complete(spec, existing))


_ASSIGNED = re.compile(r"^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=", re.MULTILINE)


def _complete(spec: Spec, existing: str) -> Reconciled:
    """The user's .env.example as written, with the catalog's variables it lacks appended."""
    have = set(_ASSIGNED.findall(existing))
    missing = [name for name in sorted(spec.env.vars) if name not in have]
    if not missing:
        return Reconciled(existing)
    lines = (
        [existing.rstrip("\n"), "", "# added by `tower generate env-example`"]
        if existing.strip()
        else []
    )
    for name in missing:
        var = spec.env.vars[name]
        lines.append(f"{name}={'' if var.secret else var.example}")
    return Reconciled(
        "\n".join(lines).lstrip("\n") + "\n",
        [f"added {', '.join(missing)}: in tower.toml [env.vars], missing here"],
    )

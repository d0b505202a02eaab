"""``.env.example`` from the spec's env catalog: every variable, secrets left empty."""

from __future__ import annotations

from controltower.generate.files import GeneratedFile
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
    return GeneratedFile(path, "\n".join(lines).rstrip("\n") + "\n")

"""Fit a rendered preset to what detection found in the repository.

The preset gives the structure and the comments; the repository gives the
facts. Working on the text keeps every comment of the preset:

* ``[service]``: target, entry point, region, memory raised to what tower's own
  checks require (``fly.memory``: at least 512 MB on Fly);
* ``[deploy]``: the driver that fits the platform (fly, exec for Vercel and
  others, local only when asked), with its section;
* ``[health]``: the routes the app declares, and the fields its health route answers;
* ``[backup]`` only when the repository uses a database, ``[alerts]`` by Resend only
  when it uses Resend (otherwise a commented example);
* ``[env.vars]``: exactly the variables the code and ``.env*`` files use. A
  preset entry for a variable the repository uses keeps its knowledge (format,
  prefix, description); preset entries the repository does not use are dropped.
"""

from __future__ import annotations

import json
import re

from controltower.spec.detect import Detected
from controltower.units import format_size, parse_size

FLY_MIN_MEMORY_MB = 512  # the floor of the fly.memory check
_BLOCK = re.compile(r"^\[([^\[\]]+)\][^\n]*\n", re.MULTILINE)


def _string(value: str) -> str:
    return json.dumps(value, ensure_ascii=False).replace("\x7f", "\\u007f")


def _blocks(text: str) -> list[tuple[str, int, int]]:
    """(table name, start, end) of every ``[table]`` block; ``[[array]]`` blocks end one."""
    heads = [
        (m.group(1).strip(), m.start()) for m in re.finditer(r"^\[([^\n]*)\][^\n]*$", text, re.M)
    ]
    out = []
    for i, (name, start) in enumerate(heads):
        end = heads[i + 1][1] if i + 1 < len(heads) else len(text)
        out.append((name, start, end))
    return out


def _block(text: str, name: str) -> tuple[int, int] | None:
    for table, start, end in _blocks(text):
        if table == name:
            return start, end
    return None


def _set_key(text: str, table: str, key: str, value: str) -> str:
    """Set ``key = value`` in ``[table]`` (replacing the line, or adding it at the end)."""
    span = _block(text, table)
    if span is None:
        return text.rstrip("\n") + f"\n\n[{table}]\n{key} = {value}\n"
    start, end = span
    body = text[start:end]
    pattern = re.compile(
        rf"^{re.escape(key)}\s*=\s*(\"[^\"\n]*\"|'[^'\n]*'|[^#\n]*?)(\s*#.*)?$", re.M
    )
    if pattern.search(body):
        body = pattern.sub(lambda m: f"{key} = {value}{m.group(2) or ''}", body, count=1)
    else:
        stripped = body.rstrip("\n")
        trailing = body[len(stripped) :]
        body = f"{stripped}\n{key} = {value}{trailing or chr(10)}"
    return text[:start] + body + text[end:]


def _drop(text: str, prefix: str) -> str:
    """Remove ``[prefix]`` and every ``[prefix.*]`` block."""
    for table, start, end in reversed(_blocks(text)):
        bare = table.strip("[]")
        if bare == prefix or bare.startswith(prefix + "."):
            text = text[:start] + text[end:]
    return text


def _insert_after(text: str, prefix: str, block: str) -> str:
    """Insert ``block`` after the last block whose table starts with ``prefix``."""
    last = None
    for table, _start, end in _blocks(text):
        if table.strip("[]") == prefix or table.strip("[]").startswith(prefix + "."):
            last = end
    if last is None:
        return text.rstrip("\n") + "\n\n" + block
    head = text[:last].rstrip("\n") + "\n\n"
    return head + block + ("\n" + text[last:].lstrip("\n") if text[last:].strip() else "")


def _vercel_block(found: Detected) -> str:
    """[deploy.vercel]: the linked project, deploying what `vercel build --prod` wrote."""
    lines = [
        "[deploy.vercel]",
        f"project = {_string(found.vercel_project or found.name)}",
    ]
    if found.vercel_team:
        lines.append(f"team_id = {_string(found.vercel_team)}")
    lines += ['source = "prebuilt"', 'token_env = "VERCEL_TOKEN"']
    return "\n".join(lines) + "\n"


def _exec_block(found: Detected) -> str:
    if found.target == "vercel":
        return (
            "[deploy.exec]\n"
            "# Vercel builds and serves; tower starts the deployment, promotes it, watches it.\n"
            "# VERCEL_TOKEN comes from the environment (a CI secret), never from this file.\n"
            'deploy = "npx --yes vercel@39 deploy --prod=false --yes --token \\"$VERCEL_TOKEN\\""\n'
            'switch = "npx --yes vercel@39 promote \\"$TOWER_URL\\" --yes --token \\"$VERCEL_TOKEN\\""\n'
            'rollback = "npx --yes vercel@39 rollback \\"$TOWER_URL\\" --yes --token \\"$VERCEL_TOKEN\\""\n'
        )
    return (
        "[deploy.exec]\n"
        "# No platform was found in this repository: say how a release starts (deploy) and\n"
        "# takes traffic (switch). Each command gets TOWER_RELEASE_ID, TOWER_IMAGE, TOWER_URL.\n"
        'deploy = ""\n'
        'switch = ""\n'
    )


def _env_var_block(found: Detected, name: str) -> str:
    use = found.env_vars[name]
    lines = [f"[env.vars.{name}]"]
    where = ", ".join(use.sources[:3]) + (" ..." if len(use.sources) > 3 else "")
    lines.append(f"description = {_string('used in ' + where)}")
    if use.secret:
        lines.append("secret = true")
    if not use.required:
        lines.append("required = false")
    return "\n".join(lines) + "\n"


def _env(text: str, found: Detected) -> str:
    present = {
        table.removeprefix("env.vars."): (start, end)
        for table, start, end in _blocks(text)
        if table.startswith("env.vars.")
    }
    for name, (start, end) in sorted(present.items(), key=lambda item: -item[1][0]):
        if name not in found.env_vars:
            text = text[:start] + text[end:]
        elif not found.env_vars[name].required:
            block = text[start:end]
            if not re.search(r"^required\s*=", block, re.M):
                stripped = block.rstrip("\n")
                text = text[:start] + stripped + "\nrequired = false\n\n" + text[end:]
    new = [name for name in found.env_vars if name not in present]
    if new:
        text = _insert_after(text, "env", "\n".join(_env_var_block(found, n) for n in new))
    return re.sub(r"\n{3,}", "\n\n", text)


def raised(found: Detected) -> list[str]:
    """What ``tailor`` raises above the repository's own values, and which check requires it."""
    if found.target != "fly" or not found.memory:
        return []
    try:
        mb = parse_size(found.memory if not found.memory.isdigit() else found.memory + "mb")
    except ValueError:
        return []
    if mb // (1024 * 1024) >= FLY_MIN_MEMORY_MB:
        return []
    return [
        f"memory raised from {found.memory} (fly.toml) to "
        f"{format_size(FLY_MIN_MEMORY_MB * 1024 * 1024)}: the fly.memory check requires at least "
        f"{FLY_MIN_MEMORY_MB} MB on Fly"
    ]


def _memory(text: str, found: Detected, notes: list[str]) -> str:
    match = re.search(r'^memory = "([^"]*)"', text, re.M)
    if not match or found.target != "fly":
        return text
    try:
        mb = parse_size(match.group(1)) // (1024 * 1024)
    except ValueError:
        return text
    if mb >= FLY_MIN_MEMORY_MB:
        return text
    raised = format_size(FLY_MIN_MEMORY_MB * 1024 * 1024)
    notes.append(
        f"[service] memory raised from {match.group(1)} to {raised}: the fly.memory check "
        f"requires at least {FLY_MIN_MEMORY_MB} MB on Fly"
    )
    return text[: match.start()] + f'memory = "{raised}"' + text[match.end() :]


def tailor(text: str, found: Detected) -> tuple[str, list[str]]:
    """``text`` (a rendered preset) fitted to ``found``; and notes on what was raised."""
    notes: list[str] = []
    if not found.scanned:
        return text, notes
    text = re.sub(r'^target = "[^"]*"', f'target = "{found.target}"', text, count=1, flags=re.M)
    if found.entrypoint:
        text = _set_key(text, "service", "entrypoint", _string(found.entrypoint))
    if found.region:
        text = _set_key(text, "service", "region", _string(found.region))
    text = _memory(text, found, notes)
    driver = found.driver
    text = re.sub(r'^driver = "[^"]*"', f'driver = "{driver}"', text, count=1, flags=re.M)
    if driver != "local":
        text = _drop(text, "deploy.local")
    if driver != "fly":
        text = _drop(text, "deploy.fly")
    if driver == "fly" and _block(text, "deploy.fly") is None:
        block = f'[deploy.fly]\napp = {_string(found.fly_app or found.name)}\ntoken_env = "FLY_API_TOKEN"\n'
        text = _insert_after(text, "deploy", block)
    if driver == "vercel" and _block(text, "deploy.vercel") is None:
        text = _insert_after(text, "deploy", _vercel_block(found))
    if driver == "exec":
        text = _insert_after(text, "deploy", _exec_block(found))
    if found.target == "vercel":
        text = re.sub(r'^strategy = "\w+"', 'strategy = "immediate"', text, flags=re.M)
        text = re.sub(r"^\[\[deploy\.steps\]\]\n(?:[^\[\n][^\n]*\n|\n)*", "", text, flags=re.M)
    if found.health_paths:
        ready = next((p for p in found.health_paths if "live" not in p), found.health_paths[0])
        live = next((p for p in found.health_paths if "live" in p), ready)
        for key, value in (("liveness", live), ("readiness", ready), ("simple", ready)):
            text = _set_key(text, "health", key, _string(value))
        text = re.sub(r'(\[\[deploy\.smoke\]\]\npath = )"[^"]*"', rf'\1"{ready}"', text)
        text = text.replace('/api/health"\ninterval', f'{ready}"\ninterval')
        text = text.replace(
            'name = "health"\npath = "/api/health"', f'name = "health"\npath = "{ready}"'
        )
        if ready in found.health_fields:
            fields = found.health_fields[ready]
            text = _set_key(text, "health", "required_fields", json.dumps(fields))
            if "status" not in fields:
                text = text.replace(""", 'body.status == "pass"'""", "")
    text = _env(text, found)
    if not _uses(found, "DATABASE_URL", "SUPABASE_DB_PASSWORD", "POSTGRES_URL"):
        text = _drop(text, "backup")  # no database in the repository: nothing to back up
    if _block(text, "alerts.channels.email") and not _uses(found, "RESEND_API_KEY"):
        text = _drop(text, "alerts")
        text = text.rstrip("\n") + "\n\n" + _ALERTS_HINT
    return re.sub(r"\n{3,}", "\n\n", text), notes


_ALERTS_HINT = """\
# Alerts: add a channel when you have one, e.g.
# [alerts]
# default_channels = ["ops"]
# [alerts.channels.ops]
# type = "slack"
# url = "${SLACK_WEBHOOK_URL}"
"""


def _uses(found: Detected, *names: str) -> bool:
    return any(name in found.env_vars for name in names)

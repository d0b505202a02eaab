"""Rules over the env catalog and the values found. Messages never hold a value."""

from __future__ import annotations

import re
from dataclasses import dataclass

from controltower.envcheck.sources import Value
from controltower.spec import Spec
from controltower.spec.envcatalog import EnvVarSpec, VarFormat

PLACEHOLDERS = re.compile(
    r"^(\[.*\]|<.*>|\{\{.*\}\}|changeme|change[-_]?me|xxx+|todo|tbd|replace[-_ ]?me|"
    r"your[-_ ].*|placeholder|example|dummy|secret|password|none|null|undefined)$",
    re.IGNORECASE,
)
SECRET_NAME = re.compile(
    r"SECRET|PRIVATE|PASSWORD|PASSWD|SERVICE_ROLE|WEBHOOK_SIGNING|_TOKEN$|API_KEY$"
)
SERVER_KEY_SHAPES = ("sk_live_", "sk_test_", "rk_live_", "rk_test_", "whsec_", "phx_")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_URL = re.compile(r"^[a-z][a-z0-9+.-]*://[^\s/]+", re.IGNORECASE)
_SUPABASE = re.compile(r"^https://[a-z0-9]{20}\.supabase\.co/?$")
_SUPABASE_LOCAL = re.compile(r"^http://(localhost|127\.0\.0\.1|kong|host\.docker\.internal):\d+/?$")


@dataclass(frozen=True)
class Problem:
    rule: str
    name: str
    message: str
    where: str = ""

    def __str__(self) -> str:
        return f"{self.name}: {self.message}" + (f" ({self.where})" if self.where else "")


def applies(var: EnvVarSpec, environment: str | None) -> bool:
    return not var.environments or (environment or "development") in var.environments


def is_placeholder(value: str) -> bool:
    return not value.strip() or bool(PLACEHOLDERS.match(value.strip()))


def shape(value: str | None) -> str:
    """A value's kind, safe to print: never the value itself."""
    if value is None:
        return "set (value unknown)"
    if not value.strip():
        return "empty"
    for prefix in (*SERVER_KEY_SHAPES, "pk_live_", "pk_test_", "phc_"):
        if value.startswith(prefix):
            return f"{prefix}…"
    if value.lower() in ("true", "false", "1", "0", "yes", "no"):
        return "bool"
    if re.fullmatch(r"-?\d+", value):
        return "int"
    if _URL.match(value):
        return f"{value.split('://', 1)[0]} url"
    if _EMAIL.match(value):
        return "email"
    return "string"


def format_problem(name: str, var: EnvVarSpec, value: str) -> str | None:
    """Why ``value`` does not fit the variable's format, or None."""
    fmt = var.format
    if fmt is VarFormat.URL and not _URL.match(value):
        return "is not a URL (scheme://host...)"
    if fmt is VarFormat.EMAIL and not _EMAIL.match(value):
        return "is not an email address"
    if fmt is VarFormat.INT and not re.fullmatch(r"-?\d+", value.strip()):
        return "is not an integer"
    if fmt is VarFormat.BOOL and value.strip().lower() not in (
        "true",
        "false",
        "1",
        "0",
        "yes",
        "no",
    ):
        return "is not a boolean (true/false/1/0/yes/no)"
    if fmt is VarFormat.ENUM and value not in var.values:
        return f"is not one of {', '.join(var.values)}"
    if fmt is VarFormat.REGEX and not re.fullmatch(var.pattern, value):
        return f"does not match /{var.pattern}/"
    if fmt is VarFormat.PREFIX:
        prefixes = [var.prefix] if isinstance(var.prefix, str) else var.prefix
        if not any(value.startswith(p) for p in prefixes):
            return f"does not start with {' or '.join(prefixes)}"
    return None


def missing(spec: Spec, values: dict[str, Value], environment: str | None) -> list[Problem]:
    return [
        Problem("required", name, "is required but set nowhere")
        for name, var in spec.env.vars.items()
        if var.required and applies(var, environment) and name not in values
    ]


def formats(spec: Spec, values: dict[str, Value]) -> list[Problem]:
    problems = []
    for name, var in spec.env.vars.items():
        found = values.get(name)
        if found is None or found.value is None or is_placeholder(found.value):
            continue
        reason = format_problem(name, var, found.value)
        if reason:
            problems.append(
                Problem("format", name, f"{reason} (format {var.format.value})", found.where)
            )
    return problems


def placeholders(spec: Spec, values: dict[str, Value]) -> list[Problem]:
    problems = []
    for name, found in values.items():
        if found.value is None or not is_placeholder(found.value):
            continue
        var = spec.env.vars.get(name)
        if var is not None and not var.required and not found.value.strip():
            continue
        kind = "is empty" if not found.value.strip() else "holds a placeholder"
        problems.append(Problem("placeholder", name, kind, found.where))
    return problems


def client_prefix(spec: Spec, name: str) -> str | None:
    return next((p for p in spec.env.client_prefixes if p and name.startswith(p)), None)


def client_secrets(spec: Spec, values: dict[str, Value]) -> list[Problem]:
    """A secret reaches the browser when its name carries a client prefix."""
    problems = []
    names = set(values) | set(spec.env.vars)
    for name in sorted(names):
        prefix = client_prefix(spec, name)
        if prefix is None:
            continue
        var = spec.env.vars.get(name) or spec.env.vars.get(name[len(prefix) :])
        found = values.get(name)
        value = found.value if found else None
        reason = ""
        if var is not None and var.secret and var.client:
            reason = "is marked both secret and client in [env.vars]"
        elif var is not None and var.secret:
            reason = "is a secret in [env.vars]"
        elif SECRET_NAME.search(name[len(prefix) :]):
            reason = "has a secret's name"
        elif value and value.startswith(SERVER_KEY_SHAPES):
            reason = f"holds a server-side key ({shape(value)})"
        if reason:
            where = found.where if found else "tower.toml [env.vars]"
            problems.append(
                Problem(
                    "client_secret", name, f"{reason} but {prefix} exposes it to the browser", where
                )
            )
    return problems


def key_shapes(values: dict[str, Value], production: bool) -> list[Problem]:
    """Stripe live keys only in production and test keys elsewhere; PostHog and Supabase forms."""
    problems = []
    for name, found in sorted(values.items()):
        value = found.value
        if value is None or is_placeholder(value):
            continue
        upper = name.upper()
        for live, test in (
            ("sk_live_", "sk_test_"),
            ("pk_live_", "pk_test_"),
            ("rk_live_", "rk_test_"),
        ):
            if production and value.startswith(test):
                problems.append(
                    Problem("key_shape", name, f"a {test}… key in production", found.where)
                )
            if not production and value.startswith(live):
                problems.append(
                    Problem("key_shape", name, f"a {live}… key outside production", found.where)
                )
        is_webhook = "WEBHOOK" in upper
        if (
            "STRIPE" in upper
            and "SECRET" in upper
            and not is_webhook
            and not value.startswith(("sk_", "rk_"))
        ):
            problems.append(
                Problem("key_shape", name, "is not a Stripe secret key (sk_…)", found.where)
            )
        if "STRIPE" in upper and is_webhook and not value.startswith("whsec_"):
            problems.append(
                Problem("key_shape", name, "is not a Stripe webhook secret (whsec_…)", found.where)
            )
        if "POSTHOG" in upper and "KEY" in upper and not value.startswith(("phc_", "phx_")):
            problems.append(
                Problem("key_shape", name, "is not a PostHog project key (phc_…)", found.where)
            )
        if "SUPABASE" in upper and upper.endswith("URL"):
            ok = _SUPABASE.match(value) or (not production and _SUPABASE_LOCAL.match(value))
            if not ok:
                problems.append(
                    Problem(
                        "key_shape",
                        name,
                        "is not a Supabase URL (https://<project-ref>.supabase.co)",
                        found.where,
                    )
                )
    return problems


def check_all(
    spec: Spec, values: dict[str, Value], environment: str | None, production: bool
) -> dict[str, list[Problem]]:
    return {
        "required": missing(spec, values, environment),
        "format": formats(spec, values),
        "placeholder": placeholders(spec, values),
        "client_secret": client_secrets(spec, values),
        "key_shape": key_shapes(values, production),
    }

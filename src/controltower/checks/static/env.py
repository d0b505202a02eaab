"""The env catalog as checks: required, formats, placeholders, client secrets, key shapes, lint."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from controltower.checks.base import Check, CheckContext, register
from controltower.checks.model import (
    Category,
    Fix,
    Gate,
    Location,
    Outcome,
    Severity,
    failed,
    passed,
    skipped,
    warned,
)
from controltower.envcheck import dotenv, rules
from controltower.envcheck.catalog import example
from controltower.envcheck.sources import Value, collect, env_files
from controltower.spec.service import Target


async def values(ctx: CheckContext) -> dict[str, Value]:
    async def load() -> dict[str, Value]:
        return collect(ctx.spec, ctx.root, ctx.environment, ctx.environ)

    found: dict[str, Value] = await ctx.once("env.values", load)
    return found


class RuleCheck(Check):
    """A rule of the env catalog; a failure names each variable and shows the lines to set."""

    rule: ClassVar[str]
    fix_file: ClassVar[str] = ".env"

    async def run(self, ctx: CheckContext) -> Outcome:
        found = await values(ctx)
        problems = rules.check_all(ctx.spec, found, ctx.environment, ctx.is_production)[self.rule]
        if not problems:
            return passed(self.ok(ctx, found))
        first = next((p.where for p in problems if p.where and ":" in p.where), "")
        location = (
            Location(first.rsplit(":", 1)[0], int(first.rsplit(":", 1)[1])) if first else None
        )
        files = sorted({p.where.rsplit(":", 1)[0] for p in problems if ":" in p.where})
        return failed(
            "; ".join(str(p) for p in problems[:5])
            + (f" (+{len(problems) - 5} more)" if len(problems) > 5 else ""),
            Fix(
                self.summary(ctx),
                files[0] if len(files) == 1 else self.fix_file,
                "\n".join(dict.fromkeys(self.line(ctx, p) for p in problems)),
            ),
            location=location,
            details=[str(p) for p in problems],
        )

    def line(self, ctx: CheckContext, problem: rules.Problem) -> str:
        return f"{problem.name}=<the real value>"

    def summary(self, ctx: CheckContext) -> str:
        return self.remedy

    def ok(self, ctx: CheckContext, found: dict[str, Value]) -> str:
        sources = sorted({v.source for v in found.values()})
        where = f" from {', '.join(sources)}" if sources else ""
        return f"{len(found)} variable{'s' if len(found) != 1 else ''} checked{where}"


def _hint(ctx: CheckContext, name: str) -> str:
    var = ctx.spec.env.vars.get(name)
    if var is None:
        return "<value>"
    fmt = var.format.value
    if fmt == "enum":
        return "|".join(var.values)
    if fmt == "prefix":
        prefixes = [var.prefix] if isinstance(var.prefix, str) else var.prefix
        return f"{prefixes[0]}..."
    return {
        "url": "<https://host/...>",
        "email": "<name@example.com>",
        "int": "<integer>",
        "bool": "true",
        "regex": f"<matching {var.pattern}>",
    }.get(fmt, "<value>")


@register
class Required(RuleCheck):
    """Every required variable of [env.vars] that applies to this environment is set in the
    process environment, a .env file or fly secrets."""

    id = "env.required"
    title = "Every required variable is set"
    category = Category.CONFIG
    gate = Gate.CORE
    severity = Severity.HIGH
    rule = "required"
    remedy = "Set each missing variable: fly secrets set NAME=... for secrets, the .env file or [env] in fly.toml for the rest."

    def summary(self, ctx: CheckContext) -> str:
        if ctx.target is Target.FLY:
            return self.remedy
        return (
            "Set each missing variable where the app runs: the platform's secrets for secrets, "
            "the .env file for the rest."
        )

    def line(self, ctx: CheckContext, problem: rules.Problem) -> str:
        var = ctx.spec.env.vars.get(problem.name)
        value = _hint(ctx, problem.name)
        if var is not None and var.secret and ctx.spec.service.target.value == "fly":
            return f"fly secrets set {problem.name}={value}"
        return f"{problem.name}={value}"

    def ok(self, ctx: CheckContext, found: dict[str, Value]) -> str:
        return f"{sum(1 for v in ctx.spec.env.vars.values() if v.required)} required variables set"


@register
class Formats(RuleCheck):
    """Every value found fits its declared format: url, email, int, bool, enum, regex or
    prefix."""

    id = "env.format"
    title = "Values fit their declared format"
    category = Category.CONFIG
    gate = Gate.PRODUCTION
    severity = Severity.MEDIUM
    rule = "format"
    remedy = "Correct each value; its format is declared in [env.vars.<NAME>] of tower.toml."

    def line(self, ctx: CheckContext, problem: rules.Problem) -> str:
        return f"{problem.name}={_hint(ctx, problem.name)}"


@register
class Placeholders(RuleCheck):
    """No value is a placeholder: empty (for required variables), [YOUR_KEY], <...>, {{...}},
    changeme, xxx, todo, your-..., example, dummy, none."""

    id = "env.placeholder"
    title = "No placeholder or empty values"
    category = Category.SECURITY
    gate = Gate.PRODUCTION
    severity = Severity.HIGH
    rule = "placeholder"
    remedy = "Put the real value in the .env file or in fly secrets."

    def line(self, ctx: CheckContext, problem: rules.Problem) -> str:
        return f"{problem.name}=<the real value, from the provider's dashboard>"


@register
class ClientSecrets(RuleCheck):
    """No variable carrying a client prefix (NEXT_PUBLIC_ or [env] client_prefixes) is a
    catalog secret, has a secret's name, or holds a server-side key (sk_live_, rk_, whsec_,
    phx_)."""

    id = "env.client_secret"
    title = "No secret is exposed to the browser"
    category = Category.SECURITY
    gate = Gate.PRODUCTION
    severity = Severity.CRITICAL
    rule = "client_secret"
    remedy = "Drop the client prefix and read the value on the server only; rotate the key, it has shipped in browser bundles."

    def line(self, ctx: CheckContext, problem: rules.Problem) -> str:
        prefix = rules.client_prefix(ctx.spec, problem.name) or ""
        server = problem.name[len(prefix) :]
        return f"{server}=<a new key; rotate the exposed one>   # instead of {problem.name}"


@register
class KeyShapes(RuleCheck):
    """Stripe keys are live in production and test elsewhere, secret keys are sk_/rk_, webhook
    secrets whsec_, PostHog keys phc_, Supabase URLs https://<ref>.supabase.co."""

    id = "env.key_shapes"
    title = "Keys have the right shape: live in production, test elsewhere"
    category = Category.SECURITY
    gate = Gate.PRODUCTION
    severity = Severity.HIGH
    rule = "key_shape"
    remedy = "Use the key of the right kind and environment from the provider's dashboard."

    def line(self, ctx: CheckContext, problem: rules.Problem) -> str:
        name, upper = problem.name, problem.name.upper()
        prefix = rules.client_prefix(ctx.spec, name)
        if prefix and any(s in problem.message for s in ("sk_", "rk_", "whsec_")):
            name = name[len(prefix) :]  # a server key never belongs under a client prefix
        live = ctx.is_production
        if "STRIPE" in upper and "WEBHOOK" in upper:
            return f"{name}=whsec_..."
        if "STRIPE" in upper or "sk_" in problem.message or "pk_" in problem.message:
            kind = "pk" if "pk_" in problem.message or "PUBLISHABLE" in upper else "sk"
            return f"{name}={kind}_{'live' if live else 'test'}_..."
        if "POSTHOG" in upper:
            return f"{name}=phc_..."
        if "SUPABASE" in upper:
            return f"{name}=https://<project-ref>.supabase.co"
        return f"{name}=<a key of the right kind>"


def dotenv_files(ctx: CheckContext) -> list[str]:
    names = set(env_files(ctx.spec, ctx.environment))
    names |= {p.name for p in ctx.root.iterdir() if p.is_file() and dotenv.is_dotenv(p.name)}
    return sorted(n for n in names if (ctx.root / n).is_file())


@register
class Lint(Check):
    """.env files pass dotenv-linter's checks, and their values fit the catalog
    (SchemaViolation). UnorderedKey alone is a warning."""

    id = "env.lint"
    title = ".env files are well formed (dotenv-linter rules)"
    category = Category.CONFIG
    gate = Gate.DEPLOY
    severity = Severity.LOW
    remedy = "Fix each line listed; `tower env lint` shows them with the rule and line."

    async def run(self, ctx: CheckContext) -> Outcome:
        files = dotenv_files(ctx)
        if not files:
            return skipped("no .env files")
        problems: list[dotenv.LintProblem] = []
        fixes: list[str] = []
        for f in files:
            text = (ctx.root / f).read_text(encoding="utf-8", errors="replace")
            found = dotenv.lint(text, f, catalog=ctx.spec.env.vars if f != ".env.example" else None)
            problems += found
            fixes += [
                f"{f} {s}" for s in dotenv.suggestions(text, [p for p in found if not p.warning])
            ]
        if not problems:
            return passed(f"{len(files)} file{'s' if len(files) != 1 else ''} clean")
        errors = [p for p in problems if not p.warning]
        make = failed if errors else warned
        first = (errors or problems)[0]
        return make(
            f"{len(errors)} problem{'s' if len(errors) != 1 else ''}, {len(problems) - len(errors)} warning{'s' if len(problems) - len(errors) != 1 else ''}",
            Fix(self.remedy, first.file, "\n".join(fixes)),
            location=Location(first.file, first.line),
            details=[str(p) for p in problems],
        )


@register
class Example(Check):
    """.env.example exists and lists every variable of [env.vars]."""

    id = "env.example"
    title = ".env.example lists every variable of the catalog"
    category = Category.DELIVERY
    gate = Gate.DEPLOY
    severity = Severity.LOW
    remedy = "Run `tower env example` to write it from the catalog."

    async def run(self, ctx: CheckContext) -> Outcome:
        if not ctx.spec.env.vars:
            return skipped("no [env.vars] in tower.toml")
        path: Path = ctx.root / ".env.example"
        fix = Fix("Write it from the catalog", ".env.example", "tower env example")
        if not path.is_file():
            return failed("no .env.example", fix)
        listed = {e.key for e in dotenv.parse(path.read_text(encoding="utf-8", errors="replace"))}
        missing = sorted(set(ctx.spec.env.vars) - listed)
        if missing:
            return warned(
                f".env.example lacks {', '.join(missing)}",
                Fix("Regenerate it", ".env.example", example(ctx.spec)),
            )
        return passed(f"{len(listed)} variables listed")

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


async def values(ctx: CheckContext) -> dict[str, Value]:
    async def load() -> dict[str, Value]:
        return collect(ctx.spec, ctx.root, ctx.environment, ctx.environ)

    found: dict[str, Value] = await ctx.once("env.values", load)
    return found


class RuleCheck(Check):
    rule: ClassVar[str]
    fix: ClassVar[Fix]

    async def run(self, ctx: CheckContext) -> Outcome:
        found = await values(ctx)
        problems = rules.check_all(ctx.spec, found, ctx.environment, ctx.is_production)[self.rule]
        if not problems:
            return passed(self.ok(ctx, found))
        first = next((p.where for p in problems if p.where and ":" in p.where), "")
        location = (
            Location(first.rsplit(":", 1)[0], int(first.rsplit(":", 1)[1])) if first else None
        )
        return failed(
            "; ".join(str(p) for p in problems[:5])
            + (f" (+{len(problems) - 5} more)" if len(problems) > 5 else ""),
            self.fix,
            location=location,
            details=[str(p) for p in problems],
        )

    def ok(self, ctx: CheckContext, found: dict[str, Value]) -> str:
        return "ok"


@register
class Required(RuleCheck):
    id = "env.required"
    title = "Every required variable is set"
    category = Category.CONFIG
    gate = Gate.CORE
    severity = Severity.HIGH
    rule = "required"
    fix = Fix(
        "Set the missing variables (fly secrets set NAME=... or the .env file)",
        "",
        "fly secrets set NAME=value",
    )

    def ok(self, ctx: CheckContext, found: dict[str, Value]) -> str:
        return f"{sum(1 for v in ctx.spec.env.vars.values() if v.required)} required variables set"


@register
class Formats(RuleCheck):
    id = "env.format"
    title = "Values fit their declared format"
    category = Category.CONFIG
    gate = Gate.PRODUCTION
    severity = Severity.MEDIUM
    rule = "format"
    fix = Fix("Correct the values; the format is in [env.vars.<NAME>] of tower.toml")


@register
class Placeholders(RuleCheck):
    id = "env.placeholder"
    title = "No placeholder or empty values"
    category = Category.SECURITY
    gate = Gate.PRODUCTION
    severity = Severity.HIGH
    rule = "placeholder"
    fix = Fix(
        "Replace placeholders ([YOUR_KEY], changeme, xxx, empty) with real values",
        ".env",
        "STRIPE_SECRET_KEY=<the real key from the Stripe dashboard>",
    )


@register
class ClientSecrets(RuleCheck):
    id = "env.client_secret"
    title = "No secret is exposed to the browser"
    category = Category.SECURITY
    gate = Gate.PRODUCTION
    severity = Severity.CRITICAL
    rule = "client_secret"
    fix = Fix(
        "Drop the client prefix and read the secret on the server only; rotate the key, it has shipped in bundles",
        ".env",
        "STRIPE_SECRET_KEY=sk_...   # server only, no NEXT_PUBLIC_",
    )


@register
class KeyShapes(RuleCheck):
    id = "env.key_shapes"
    title = "Keys have the right shape: live in production, test elsewhere"
    category = Category.SECURITY
    gate = Gate.PRODUCTION
    severity = Severity.HIGH
    rule = "key_shape"
    fix = Fix(
        "Use sk_live_/pk_live_ keys in production only, sk_test_/pk_test_ elsewhere; phc_ for PostHog; https://<ref>.supabase.co for Supabase"
    )


def dotenv_files(ctx: CheckContext) -> list[str]:
    names = set(env_files(ctx.spec, ctx.environment))
    names |= {p.name for p in ctx.root.iterdir() if p.is_file() and dotenv.is_dotenv(p.name)}
    return sorted(n for n in names if (ctx.root / n).is_file())


@register
class Lint(Check):
    id = "env.lint"
    title = ".env files are well formed (dotenv-linter rules)"
    category = Category.CONFIG
    gate = Gate.DEPLOY
    severity = Severity.LOW

    async def run(self, ctx: CheckContext) -> Outcome:
        files = dotenv_files(ctx)
        if not files:
            return skipped("no .env files")
        problems = [
            p
            for f in files
            for p in dotenv.lint(
                (ctx.root / f).read_text(encoding="utf-8", errors="replace"),
                f,
                catalog=ctx.spec.env.vars if f != ".env.example" else None,
            )
        ]
        if not problems:
            return passed(f"{len(files)} file{'s' if len(files) != 1 else ''} clean")
        errors = [p for p in problems if not p.warning]
        make = failed if errors else warned
        first = (errors or problems)[0]
        return make(
            f"{len(errors)} problem{'s' if len(errors) != 1 else ''}, {len(problems) - len(errors)} warning{'s' if len(problems) - len(errors) != 1 else ''}",
            Fix("Fix each line listed (`tower env lint` shows them)", first.file),
            location=Location(first.file, first.line),
            details=[str(p) for p in problems],
        )


@register
class Example(Check):
    id = "env.example"
    title = ".env.example lists every variable of the catalog"
    category = Category.DELIVERY
    gate = Gate.DEPLOY
    severity = Severity.LOW

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

"""Every registered check as a Markdown table: the reference in docs/check.md is this output."""

from __future__ import annotations

from controltower.checks.base import ALL_TARGETS, registered
from controltower.checks.model import Gate


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def check_table() -> str:
    """One section per gate; a row per check with what it looks for, its fix and where it applies."""
    checks = registered()
    out: list[str] = []
    for gate in Gate:
        rows = [c for c in checks.values() if c.gate is gate]
        out += [
            f"#### Gate {int(gate)}",
            "",
            "| id | category | severity | kind | applies to | looks for | fix |",
            "| --- | --- | --- | --- | --- | --- | --- |",
        ]
        for cls in rows:
            targets = (
                "all targets"
                if cls.targets == ALL_TARGETS
                else ", ".join(sorted(t.value for t in cls.targets))
            )
            if cls.advice_on:
                advice = ", ".join(sorted(t.value for t in cls.advice_on))
                targets += f"; advice on {advice}: {_cell(cls.advice_reason)}"
            if cls.production_only:
                targets += "; production only"
            looks = _cell(cls.__doc__ or cls.title)
            if cls.hadolint:
                looks += f" (hadolint {cls.hadolint.replace(',', ', ')})"
            out.append(
                f"| `{cls.id}` | {cls.category.value} | {cls.severity.value} | {cls.kind} "
                f"| {targets} | {looks} | {_cell(cls.remedy)} |"
            )
        out.append("")
    return "\n".join(out).rstrip() + "\n"

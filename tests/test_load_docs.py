"""docs/load.md stays true: its tower.toml loads, its options exist, its budget names resolve."""

from __future__ import annotations

import re
from pathlib import Path

import click
import typer.main

from controltower.cli.main import app
from controltower.load.budgets import context
from controltower.load.plan import plan_from_budgets
from controltower.load.results import LatencyStats
from controltower.spec import parse_spec

DOC = Path(__file__).resolve().parent.parent / "docs" / "load.md"


def _blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)


def _load_options() -> set[str]:
    command = typer.main.get_command(app)
    load = command.get_command(click.Context(command), "load")  # type: ignore[attr-defined]
    assert load is not None
    return {name for param in load.params for name in getattr(param, "opts", [])} | {
        name for param in load.params for name in getattr(param, "secondary_opts", [])
    }


class TestLoadDocs:
    def test_the_example_tower_toml_loads_into_a_plan(self) -> None:
        """The [budgets] example parses and gives three weighted scenarios, one a two-step flow."""
        (text,) = _blocks("toml")
        spec = parse_spec(text, environ={"LOAD_PASSWORD": "x"})
        plan = plan_from_budgets(spec.budgets, "https://staging.shop.example")
        assert [(s.name, s.weight, len(s.steps)) for s in plan.scenarios] == [
            ("landing", 3, 1),
            ("items", 1, 1),
            ("login", 0.5, 2),
        ]
        assert plan.conditions == ("p95 < 200ms", "error_rate < 0.1%", "rps >= 50")
        assert plan.scenarios[2].steps[0].capture == (("token", "body.token"),)

    def test_every_option_shown_exists(self) -> None:
        """Each --option in the examples and the option table is an option of tower load."""
        options = _load_options()
        text = "\n".join(_blocks("sh")) + DOC.read_text(encoding="utf-8").split("## Budgets")[0]
        shown = set(re.findall(r"(--[a-z][a-z-]+)", text))
        assert shown, "no options found in the docs"
        assert shown <= options, shown - options

    def test_every_budget_name_in_the_table_resolves(self) -> None:
        """The names the budget table lists are all in the context a budget sees."""
        section = DOC.read_text(encoding="utf-8").split("### What a budget can name")[1]
        table = section.split("\n\n")[2]
        names = set(re.findall(r"`([a-z_][a-z0-9_.]*)", table))
        stats = LatencyStats(requests=3)  # no errors: every kind still resolves, as 0
        stats.histogram.record_value(1000)
        seen = context(stats, {"login": stats}, elapsed=1.0)
        for name in names:
            value: object = seen
            for part in name.split("."):
                assert isinstance(value, dict) and part in value, name
                value = value[part]

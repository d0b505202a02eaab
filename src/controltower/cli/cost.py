"""``tower cost``: the monthly cost of each environment, from the spec and a dated price table."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from controltower.cli.common import Format, FormatOption, SpecOption, console, emit_json, epilog
from controltower.cost import PriceTable, estimate_all
from controltower.spec import find_spec_file, load_spec


def cost(
    spec: SpecOption = None,
    env: Annotated[
        list[str] | None,
        typer.Option("--env", "-e", help="Environment(s) to price (default: all of them)."),
    ] = None,
    format: FormatOption = Format.TEXT,
) -> None:
    """Estimate the monthly cost per environment: machines x price, volumes, extras."""
    path = str(spec or find_spec_file())
    estimates = estimate_all(path, env or None)
    table_info = PriceTable.from_spec(load_spec(path))
    total = round(sum(e.monthly for e in estimates), 2)
    warnings = table_info.warnings(dt.datetime.now(dt.UTC).date())
    if format is Format.JSON:
        emit_json(
            {
                "currency": table_info.currency,
                "prices_as_of": table_info.as_of.isoformat(),
                "price_source": table_info.source,
                "region": table_info.region,
                "region_multiplier": table_info.region_multiplier,
                "environments": [e.to_dict() for e in estimates],
                "total": total,
                "warnings": warnings,
            }
        )
        return
    table = Table("environment", "item", "qty", "unit / month", "month", "price source")
    for item in estimates:
        for line in item.lines:
            table.add_row(
                escape(item.environment),
                escape(line.item),
                f"{line.quantity:g}",
                f"{line.unit_price:.2f}",
                f"{line.monthly:.2f}",
                escape(line.source),
            )
        table.add_row(
            escape(item.environment), "total", "", "", f"{item.monthly:.2f}", "", style="bold"
        )
    console.print(table)
    console.print(
        f"{total:.2f} {table_info.currency} a month for {len(estimates)} environment"
        f"{'s' if len(estimates) != 1 else ''}, machines running all month (30 days) in "
        f"{table_info.region} (x{table_info.region_multiplier:.3f} of iad); prices as of "
        f"{table_info.as_of.isoformat()} from {table_info.source} (override them in [cost])",
        markup=False,
        soft_wrap=True,
    )
    for warning in warnings:
        console.print(f"warning: {warning}", style="yellow", markup=False, soft_wrap=True)


def register(app: typer.Typer) -> None:
    app.command(
        "cost",
        epilog=epilog(
            ["tower cost", "tower cost --env production --format json"],
            "Exit codes: 0 the estimate was printed; 2 bad usage or an invalid tower.toml.",
        ),
    )(cost)

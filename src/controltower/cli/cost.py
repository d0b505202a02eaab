"""``tower cost``: the monthly cost of each environment, from the spec and a dated price table."""

from __future__ import annotations

from typing import Annotated

import typer
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
    if format is Format.JSON:
        emit_json(
            {
                "currency": table_info.currency,
                "prices_as_of": table_info.as_of.isoformat(),
                "environments": [e.to_dict() for e in estimates],
                "total": total,
            }
        )
        return
    table = Table("environment", "item", "qty", "unit / month", "month")
    for item in estimates:
        for line in item.lines:
            table.add_row(
                item.environment,
                line.item,
                f"{line.quantity:g}",
                f"{line.unit_price:.2f}",
                f"{line.monthly:.2f}",
            )
        table.add_row(item.environment, "total", "", "", f"{item.monthly:.2f}", style="bold")
    console.print(table)
    console.print(
        f"{total:.2f} {table_info.currency} a month for {len(estimates)} environment"
        f"{'s' if len(estimates) != 1 else ''}, machines running all month; prices as of "
        f"{table_info.as_of.isoformat()} (override them in [cost])",
        markup=False,
        soft_wrap=True,
    )


def register(app: typer.Typer) -> None:
    app.command(
        "cost",
        epilog=epilog(
            ["tower cost", "tower cost --env production --format json"],
            "Exit codes: 0 the estimate was printed; 2 bad usage or an invalid tower.toml.",
        ),
    )(cost)

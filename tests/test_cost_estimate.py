from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from pathlib import Path

import pytest

from controltower.cost import (
    PRICE_SOURCE,
    PRICES_AS_OF,
    PUBLISHED,
    PriceTable,
    estimate,
    estimate_all,
)
from controltower.spec import load_spec, parse_spec

SPEC = """
[service]
name = "shop"
memory = "512mb"
cpus = 1

[deploy]
instances = 2

[environments.staging]
[environments.staging.overrides.deploy]
instances = 1

[environments.production]
[environments.production.overrides.service]
memory = "2gb"
cpus = 2
[environments.production.overrides.deploy]
instances = 3
"""


def _table(extra: str = "") -> PriceTable:
    return PriceTable.from_spec(parse_spec('[service]\nname = "x"\n' + extra, environ={}))


class TestPriceTable:
    def test_rule_reproduces_the_published_table(self) -> None:
        """The CPU + RAM rule lands within two cents of every figure the pricing page prints."""
        table = _table("[cost]\nram_gb_month = 6.0\n")
        for key, published in PUBLISHED.items():
            preset, size = key.split(":")
            kind = "shared" if preset.startswith("shared") else "performance"
            cpus = int(preset.rsplit("-", 1)[1].rstrip("x"))
            memory_mb = int(size[:-2]) * (1024 if size.endswith("gb") else 1)
            _, price, _ = table.machine(kind, cpus, memory_mb)
            assert abs(price - published) <= 0.02, key

    def test_region_markup(self) -> None:
        """A machine in fra costs what the page's own three-region example says ($7.73 for
        shared-cpu-1x 1gb, $6.70 in iad, $8.50 in sin); an unknown region is priced as iad
        with a warning."""
        assert _table().machine("shared", 1, 1024)[1] == 6.70
        fra = PriceTable.from_spec(
            parse_spec('[service]\nname = "x"\nregion = "fra"\n', environ={})
        )
        sin = PriceTable.from_spec(
            parse_spec('[service]\nname = "x"\nregion = "sin"\n', environ={})
        )
        assert fra.machine("shared", 1, 1024)[1] == 7.73
        assert sin.machine("shared", 1, 1024)[1] == 8.50
        assert "fra" in fra.machine("shared", 1, 1024)[2]
        odd = PriceTable.from_spec(
            parse_spec('[service]\nname = "x"\nregion = "xyz"\n', environ={})
        )
        assert odd.region_multiplier == 1.0
        assert any("region xyz is not in the price table" in w for w in odd.warnings(PRICES_AS_OF))

    def test_overrides(self) -> None:
        """A preset price, the date and a region multiplier can be set in [cost]."""
        table = _table(
            "[cost]\nprices_as_of = 2026-01-01\nregion_multiplier = 1.5\n"
            '[cost.machines]\n"shared-cpu-1x:512mb" = 4.0\n'
        )
        assert table.as_of.isoformat() == "2026-01-01"
        assert table.machine("shared", 1, 512)[1:] == (4.0, "tower.toml [cost.machines]")
        assert table.machine("shared", 1, 1024)[1] == round(6.70 * 1.5, 2)

    def test_stale_prices_warn(self) -> None:
        """Past six months the estimate says its prices are old and where to check them."""
        table = _table()
        assert table.warnings(PRICES_AS_OF + dt.timedelta(days=100)) == []
        (warning,) = table.warnings(PRICES_AS_OF + dt.timedelta(days=200))
        assert PRICES_AS_OF.isoformat() in warning and PRICE_SOURCE in warning


class TestEstimate:
    def test_per_environment(self, tmp_path: Path) -> None:
        """Each environment is priced with its own overlay: size and machine count; volumes,
        dedicated IPv4 and outbound data at the page's flat prices."""
        path = tmp_path / "tower.toml"
        path.write_text(
            SPEC
            + '\n[cost]\ndedicated_ipv4 = 1\negress_gb = 100\n[[cost.volumes]]\nsize = "10gb"\n'
        )
        costs = {c.environment: c for c in estimate_all(str(path))}
        assert costs["staging"].preset == "shared-cpu-1x:512mb"
        assert costs["staging"].machines == 1
        assert costs["staging"].monthly == round(3.69 + 1.5 + 2.0 + 2.0, 2)
        assert costs["production"].preset == "shared-cpu-2x:2gb"
        assert costs["production"].monthly == round(3 * 13.39 + 3 * 1.5 + 2.0 + 2.0, 2)

    def test_egress_by_region_group(self) -> None:
        """Outbound data costs $0.04/GB from Asia Pacific, $0.12/GB from India."""
        spec = parse_spec(
            '[service]\nname = "x"\nregion = "bom"\n[cost]\negress_gb = 10\n', environ={}
        )
        (line,) = [line for line in estimate(spec, "default").lines if "outbound" in line.item]
        assert (line.unit_price, line.monthly) == (0.12, 1.2)

    def test_no_environments(self) -> None:
        """A spec without environments is one estimate at the default size."""
        spec = parse_spec('[service]\nname = "x"\n', environ={})
        cost = estimate(spec, "default")
        assert cost.machines == 2 and cost.monthly == round(2 * 3.69, 2)

    def test_cli_json(self, tmp_path: Path) -> None:
        """--format json carries the date, the source URL, the region and the total."""
        path = tmp_path / "tower.toml"
        path.write_text(SPEC)
        done = subprocess.run(
            [sys.executable, "-m", "controltower", "cost", "--spec", str(path), "--format", "json"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        data = json.loads(done.stdout)
        assert data["prices_as_of"] == PRICES_AS_OF.isoformat() and data["currency"] == "USD"
        assert (data["price_source"], data["region"]) == (PRICE_SOURCE, "iad")
        assert [e["environment"] for e in data["environments"]] == ["staging", "production"]
        assert data["total"] == pytest.approx(3.69 + 3 * 13.39)
        assert load_spec(path).cost.volumes == []

    def test_cli_text_dates_the_prices(self, tmp_path: Path) -> None:
        """The text output names the date, the source and the region of its prices."""
        path = tmp_path / "tower.toml"
        path.write_text(SPEC.replace("cpus = 1\n", 'cpus = 1\nregion = "fra"\n', 1))
        done = subprocess.run(
            [sys.executable, "-m", "controltower", "cost", "--spec", str(path)],
            capture_output=True,
            text=True,
            timeout=60,
            env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"},
        )
        assert done.returncode == 0, done.stderr
        assert f"prices as of {PRICES_AS_OF.isoformat()} from {PRICE_SOURCE}" in done.stdout
        assert "in fra (x1.154 of iad)" in done.stdout

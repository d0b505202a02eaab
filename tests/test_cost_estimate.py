from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from controltower.cost import PUBLISHED, PriceTable, estimate, estimate_all
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


class TestPriceTable:
    def test_rule_reproduces_the_published_table(self) -> None:
        """The CPU + RAM rule lands within a tenth of a percent (and two cents) of every published preset price."""
        table = PriceTable.from_spec(
            parse_spec('[service]\nname = "x"\n[cost]\nram_gb_month = 5.0\n', environ={})
        )
        for key, published in PUBLISHED.items():
            preset, size = key.split(":")
            kind = "shared" if preset.startswith("shared") else "performance"
            cpus = int(preset.rsplit("-", 1)[1].rstrip("x"))
            memory_mb = int(size[:-2]) * (1024 if size.endswith("gb") else 1)
            _, price, _ = table.machine(kind, cpus, memory_mb)
            assert abs(price - published) <= 0.02 + published / 1000, key

    def test_overrides(self) -> None:
        """A preset price, the date and a region multiplier can be set in [cost]."""
        spec = parse_spec(
            '[service]\nname = "x"\n[cost]\nprices_as_of = 2026-01-01\nregion_multiplier = 1.5\n'
            '[cost.machines]\n"shared-cpu-1x:512mb" = 4.0\n',
            environ={},
        )
        table = PriceTable.from_spec(spec)
        assert table.as_of.isoformat() == "2026-01-01"
        assert table.machine("shared", 1, 512)[1:] == (4.0, "tower.toml [cost.machines]")
        assert table.machine("shared", 1, 1024)[1] == round(5.70 * 1.5, 2)


class TestEstimate:
    def test_per_environment(self, tmp_path: Path) -> None:
        """Each environment is priced with its own overlay: size and machine count."""
        path = tmp_path / "tower.toml"
        path.write_text(SPEC + '\n[[cost.volumes]]\nsize = "10gb"\n\n[cost.extra]\nipv4 = 2.0\n')
        costs = {c.environment: c for c in estimate_all(str(path))}
        assert costs["staging"].preset == "shared-cpu-1x:512mb"
        assert costs["staging"].machines == 1
        assert costs["staging"].monthly == round(3.19 + 1.5 + 2.0, 2)
        assert costs["production"].preset == "shared-cpu-2x:2gb"
        assert costs["production"].monthly == round(3 * 11.39 + 3 * 1.5 + 2.0, 2)

    def test_no_environments(self) -> None:
        spec = parse_spec('[service]\nname = "x"\n', environ={})
        cost = estimate(spec, "default")
        assert cost.machines == 2 and cost.monthly == round(2 * 3.19, 2)

    def test_cli_json(self, tmp_path: Path) -> None:
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
        assert data["prices_as_of"] == "2024-10-01" and data["currency"] == "USD"
        assert [e["environment"] for e in data["environments"]] == ["staging", "production"]
        assert data["total"] == pytest.approx(3.19 + 3 * 11.39)
        assert load_spec(path).cost.volumes == []

"""The spec loader: variable expansion, environment overlays, files and key lines."""

from __future__ import annotations

from pathlib import Path

import pytest

from controltower.exceptions import SpecError
from controltower.spec import load_spec, parse_spec, validate_spec
from controltower.spec.deploy import Strategy
from controltower.spec.tomlscan import key_lines

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "app" / "tower.toml"

SPEC = """
[service]
name = "shop"
memory = "1gb"

[environments.staging]
url = "https://staging.shop.test"

[environments.production]
url = "${PROD_URL:-https://shop.test}"
[environments.production.overrides.deploy]
strategy = "canary"
instances = 3
[environments.production.overrides.health]
latency_budget = "50ms"

[deploy]
strategy = "rolling"
instances = 2
drain_timeout = "10s"

[alerts.channels.ops]
type = "slack"
url = "${SLACK_URL:-https://hooks.slack.test/x}"
"""


class TestExpansion:
    def test_variables_and_defaults(self) -> None:
        """${VAR} takes the environment's value; ${VAR:-default} falls back to the default."""
        spec = parse_spec(SPEC, environ={"PROD_URL": "https://prod.shop.test"})
        assert spec.environments["production"].url == "https://prod.shop.test"
        assert spec.alerts.channels["ops"].url is not None
        assert spec.alerts.channels["ops"].url.get_secret_value() == "https://hooks.slack.test/x"

    def test_default_when_empty_or_unset(self) -> None:
        """${VAR:-default} uses the default when VAR is unset or empty, as the shell does;
        ${VAR} set to an empty string is an empty string."""
        text = '[service]\nname = "a"\ndescription = "${D:-none}"\nregion = "${R}"\n'
        assert parse_spec(text, environ={"D": "", "R": ""}).service.description == "none"
        assert parse_spec(text, environ={"R": ""}).service.region == ""
        assert parse_spec(text, environ={"D": "x", "R": "fra"}).service.description == "x"

    def test_variables_inside_text(self) -> None:
        """Several variables may sit inside one string, beside literal text."""
        text = '[service]\nname = "a"\ndescription = "${A}-${B:-b} at $${C}"\n'
        assert parse_spec(text, environ={"A": "x"}).service.description == "x-b at ${C}"

    def test_every_unset_variable_is_reported(self) -> None:
        """Each unset variable is its own issue, at its own line."""
        text = '[service]\nname = "a"\ndescription = "${ONE}"\nregion = "${TWO}"\n'
        with pytest.raises(SpecError) as caught:
            parse_spec(text, environ={})
        assert [(i.line, i.message.split(" is ")[0]) for i in caught.value.issues] == [
            (3, "environment variable ONE"),
            (4, "environment variable TWO"),
        ]

    def test_dollar_escape(self) -> None:
        """$$ writes a literal dollar sign."""
        spec = parse_spec('[service]\nname = "a"\ndescription = "costs $$5"\n', environ={})
        assert spec.service.description == "costs $5"

    def test_secret_is_hidden_in_repr(self) -> None:
        """Secret fields print as stars wherever the model is shown."""
        spec = parse_spec(SPEC, environ={"SLACK_URL": "https://hooks.slack.test/SECRETVALUE"})
        assert "SECRETVALUE" not in repr(spec)
        assert "SECRETVALUE" not in spec.model_dump_json()


class TestOverlays:
    def test_base_without_env(self) -> None:
        """Without --env the base spec loads as written and names no environment."""
        spec = parse_spec(SPEC, environ={})
        assert spec.deploy.strategy is Strategy.ROLLING
        assert spec.environment is None

    def test_overlay_merges_deeply(self) -> None:
        """Overrides replace only the keys they name; the rest of the table stays."""
        spec = parse_spec(SPEC, env="production", environ={})
        assert spec.deploy.strategy is Strategy.CANARY
        assert spec.deploy.instances == 3
        assert spec.deploy.drain_timeout == 10
        assert spec.health.latency_budget == pytest.approx(0.05)
        assert spec.url == "https://shop.test"
        assert spec.is_production

    def test_lists_are_replaced_not_merged(self) -> None:
        """An override of a list replaces the base list entirely."""
        text = (
            '[service]\nname = "a"\n[deploy]\ngates = [1, 2]\n'
            "[environments.production.overrides.deploy]\ngates = [3]\n"
        )
        assert parse_spec(text, env="production", environ={}).deploy.gates == [3]
        assert parse_spec(text, environ={}).deploy.gates == [1, 2]

    def test_overlay_adds_a_section_the_base_lacks(self) -> None:
        """An override may add a whole table (or array of tables) the base spec does not have."""
        text = (
            '[service]\nname = "a"\n[environments.production.overrides]\n'
            'monitors = [{name = "prod-site", url = "https://a.test"}]\n'
        )
        spec = parse_spec(text, env="production", environ={})
        assert [m.name for m in spec.monitors] == ["prod-site"]
        assert parse_spec(text, environ={}).monitors == []

    def test_production_is_inferred_or_declared(self) -> None:
        """Environments named production or prod are production unless they say otherwise."""
        text = (
            '[service]\nname = "a"\n[environments.prod]\n[environments.live]\nproduction = true\n'
            "[environments.production]\nproduction = false\n"
        )
        assert parse_spec(text, env="prod", environ={}).is_production
        assert parse_spec(text, env="live", environ={}).is_production
        assert not parse_spec(text, env="production", environ={}).is_production
        assert not parse_spec(text, environ={}).is_production

    def test_unknown_environment(self) -> None:
        """An unknown --env names the environments that exist and suggests the closest."""
        with pytest.raises(SpecError) as caught:
            parse_spec(SPEC, env="prod", environ={})
        assert 'no environment "prod" (staging, production) (did you mean "production"?)' in str(
            caught.value
        )

    def test_overlay_error_points_at_overlay_line(self) -> None:
        """An invalid override is reported at its own line, not the base table's."""
        bad = SPEC.replace('strategy = "canary"', 'strategy = "canry"')
        with pytest.raises(SpecError) as caught:
            parse_spec(bad, env="production", environ={})
        (issue,) = caught.value.issues
        assert issue.line == 12
        assert issue.path == "deploy.strategy"

    def test_validate_checks_every_overlay(self) -> None:
        """validate_spec reports problems that only appear under one environment."""
        bad = SPEC.replace("instances = 3", "instances = 0")
        issues = validate_spec(bad, environ={})
        assert [str(i) for i in issues] == [
            "tower.toml:13: deploy.instances: must be at least 1 (got 0)"
        ]


class TestFiles:
    def test_missing_file(self, tmp_path: Path) -> None:
        """A missing file is a SpecError that says to run tower init."""
        with pytest.raises(SpecError, match="file not found; run `tower init`"):
            load_spec(tmp_path / "tower.toml")

    def test_example_spec_is_valid(self) -> None:
        """The example app's spec loads, base and overlay."""
        spec = load_spec(EXAMPLE, environ={})
        assert spec.service.name == "example"
        assert load_spec(EXAMPLE, env="local", environ={}).url == "http://127.0.0.1:8000"


class TestKeyLines:
    def test_arrays_of_tables_and_inline_tables(self) -> None:
        """Key lines follow arrays of tables, inline tables and multi-line arrays."""
        text = (
            '[service]\nname = "a"\n[[monitors]]\nname = "x"\n[[monitors]]\nname = "y"\n'
            '[deploy]\nsteps = [\n  {weight = 5},\n  {weight = 50, pause = "1m"},\n]\n'
        )
        lines = key_lines(text)
        assert lines[("monitors", 1, "name")] == 6
        assert lines[("deploy", "steps", 1, "pause")] == 10

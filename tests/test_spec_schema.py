"""`tower schema`: a JSON Schema of tower.toml, generated from the models, that editors can use."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import jsonschema
import pytest
from typer.testing import CliRunner

from controltower.cli.main import app
from controltower.spec.schema import render, spec_schema

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft202012Validator:
    schema = spec_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def errors(validator: jsonschema.Draft202012Validator, text: str) -> list[str]:
    """Where each error is, including the branches of an `anyOf` (an optional table)."""
    found: list[str] = []
    pending = list(validator.iter_errors(tomllib.loads(text)))
    while pending:
        error = pending.pop()
        found.append(".".join(str(part) for part in error.absolute_path) or "<root>")
        pending.extend(error.context or [])
    return found


class TestSchema:
    def test_published_schema_is_the_generated_one(self) -> None:
        """docs/tower.schema.json is exactly what `tower schema` prints (regenerate it on change)."""
        published = (ROOT / "docs" / "tower.schema.json").read_text(encoding="utf-8")
        assert published == render(spec_schema()), "run: tower schema -o docs/tower.schema.json"

    def test_real_specs_are_valid(self, validator: jsonschema.Draft202012Validator) -> None:
        """The example app's spec, with units and conditions written as strings, passes."""
        text = (ROOT / "examples" / "app" / "tower.toml").read_text(encoding="utf-8")
        assert errors(validator, text) == []

    def test_mistakes_are_flagged_where_they_are(
        self, validator: jsonschema.Draft202012Validator
    ) -> None:
        """An unknown key, a wrong type and a Slack channel without `url` are each located."""
        text = '[service]\nname = 5\nporty = 3\n[alerts.channels.ops]\ntype = "slack"\n'
        found = errors(validator, text)
        assert "service" in found  # porty: additional property
        assert "service.name" in found
        assert "alerts.channels.ops" in found

    def test_interpolated_numbers_are_allowed(
        self, validator: jsonschema.Draft202012Validator
    ) -> None:
        """`port = "${SMTP_PORT}"` is valid to the editor, as the loader expands it."""
        text = (
            '[service]\nname = "shop"\n[alerts.channels.mail]\ntype = "smtp"\n'
            'host = "smtp.example.com"\nport = "${SMTP_PORT}"\nfrom = "a@b.co"\nto = ["c@d.co"]\n'
        )
        assert errors(validator, text) == []


class TestCommand:
    def test_prints_and_writes_the_schema(self, tmp_path: Path) -> None:
        """`tower schema` prints JSON; `--output` writes the same text to a file."""
        runner = CliRunner()
        printed = runner.invoke(app, ["schema"])
        assert printed.exit_code == 0, printed.output
        assert json.loads(printed.output)["title"] == "tower.toml"
        target = tmp_path / "tower.schema.json"
        written = runner.invoke(app, ["schema", "--output", str(target)])
        assert written.exit_code == 0, written.output
        assert target.read_text(encoding="utf-8") == printed.output

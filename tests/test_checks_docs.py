"""docs/check.md stays true to the code: the check table is the registry's, every id is documented."""

from __future__ import annotations

import re
from pathlib import Path

from typer.testing import CliRunner

from controltower.checks import registered
from controltower.cli.main import app
from controltower.envcheck.dotenv import RULES
from controltower.report.checklist import check_table

DOC = Path(__file__).parent.parent / "docs" / "check.md"


class TestCheckDocs:
    def test_table_matches_the_registry(self) -> None:
        """The table between the markers is exactly what `tower check --list --format markdown` prints."""
        text = DOC.read_text()
        table = text.split("<!-- checks:begin -->\n", 1)[1].split("<!-- checks:end -->", 1)[0]
        assert table == check_table(), "regenerate: tower check --list --format markdown"
        printed = CliRunner().invoke(app, ["check", "--list", "--format", "markdown"]).stdout
        assert printed == table

    def test_every_check_and_lint_rule_is_documented(self) -> None:
        """Each check id appears once in the table; each dotenv-linter rule in the lint table."""
        text = DOC.read_text()
        for check_id in registered():
            assert len(re.findall(rf"\| `{re.escape(check_id)}` \|", text)) == 1, check_id
        for rule in RULES:
            assert re.search(rf"^\| {rule}( \(a warning\))? \|", text, re.MULTILINE), rule

    def test_architecture_section_is_written(self) -> None:
        """docs/architecture.md has the readiness checks section filled in, naming the modules."""
        text = (DOC.parent / "architecture.md").read_text()
        section = text.split("### Readiness checks", 1)[1].split("\n### ", 1)[0]
        assert "_To be written._" not in section
        for module in (
            "checks/runner.py",
            "checks/live/observatory.py",
            "envcheck/dotenv.py",
            "report/",
        ):
            assert module in section, module

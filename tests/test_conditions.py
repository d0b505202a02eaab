from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from controltower.conditions import ConditionSyntaxError, parse_condition

CONTEXT = {
    "status": 200,
    "latency": 0.150,
    "body": {"status": "pass", "items": [1, 2], "checks": {"db:ping": [{"status": "warn"}]}},
    "header": {"Content-Type": "application/json; charset=utf-8"},
    "cert_days": 30,
    "error_rate": 0.002,
    "memory": 300 * 1024**2,
}


class TestEvaluate:
    @pytest.mark.parametrize(
        ("text", "ok"),
        [
            ("status == 200", True),
            ("status != 200", False),
            ("status in [200, 204]", True),
            ("status in [500]", False),
            ("latency < 200ms", True),
            ("latency < 100ms", False),
            ("latency <= 0.15", True),
            ('body.status == "pass"', True),
            ("body.status == pass", True),
            ('body.checks["db:ping"][0].status != "fail"', True),
            ("len(body.items) >= 2", True),
            ("len(body.items) > 2", False),
            ("has(body.status)", True),
            ("has(body.version)", False),
            ('header.content-type =~ "json"', True),
            ('header.content-type !~ "html"', True),
            ('header.content-type contains "utf-8"', True),
            ("cert_days > 14", True),
            ("error_rate < 0.1%", False),
            ("error_rate < 1%", True),
            ("memory < 512mb", True),
            ("body.missing == 1", False),
        ],
    )
    def test_truth(self, text: str, ok: bool) -> None:
        """Each operator, unit and path form gives the expected verdict."""
        assert parse_condition(text).evaluate(CONTEXT).ok is ok

    def test_observed_in_units_of_the_literal(self) -> None:
        """A failed duration condition shows the observed value in the same unit."""
        result = parse_condition("latency < 100ms").evaluate(CONTEXT)
        assert result.message == "latency < 100ms: observed 150ms (failed)"
        assert result.observed == pytest.approx(0.15)

    def test_missing_path_says_so(self) -> None:
        """A condition on a missing value fails and says the value is missing."""
        result = parse_condition("body.version == 1").evaluate(CONTEXT)
        assert not result.ok
        assert "body.version is missing" in result.message

    def test_percent_rendering(self) -> None:
        """Percent conditions report what they observed in percent."""
        result = parse_condition("error_rate < 0.1%").evaluate(CONTEXT)
        assert "observed 0.2%" in result.message


class TestSyntax:
    @pytest.mark.parametrize(
        ("text", "fragment"),
        [
            ("status = 200", "use =="),
            ("status", "needs an operator"),
            ("", "empty"),
            ("== 200", "expected a name"),
            ("status in 200", "needs a list"),
            ('body =~ "("', "regular expression"),
            ("status == 200 200", "unexpected"),
            ("status ** 2", "unexpected"),
        ],
    )
    def test_errors_say_why(self, text: str, fragment: str) -> None:
        """A malformed condition raises ConditionSyntaxError saying why and where."""
        with pytest.raises(ConditionSyntaxError, match=fragment):
            parse_condition(text)

    @given(st.text(max_size=40))
    def test_never_raises_anything_else(self, text: str) -> None:
        """Any text either parses or raises ConditionSyntaxError, and evaluation never raises."""
        try:
            condition = parse_condition(text)
        except ConditionSyntaxError:
            return
        condition.evaluate(CONTEXT)

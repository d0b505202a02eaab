from __future__ import annotations

from controltower.notify.routing import channels_for, escalation_for
from controltower.spec import parse_spec

SPEC = """
[service]
name = "shop"
[alerts]
default_channels = ["email"]
[alerts.channels.email]
type = "webhook"
url = "https://hooks.example.com/email"
[alerts.channels.slack]
type = "slack"
url = "https://hooks.slack.com/x"
[alerts.channels.pager]
type = "webhook"
url = "https://hooks.example.com/pager"
[[alerts.routes]]
match = { severity = "critical" }
channels = ["slack"]
escalate_to = ["pager"]
escalate_after = "10m"
continue = true
[[alerts.routes]]
match = { team = "db" }
channels = ["email"]
"""


class TestRouting:
    def test_first_match_and_continue(self) -> None:
        """A critical db alert matches both routes because the first says continue."""
        alerts = parse_spec(SPEC, environ={}).alerts
        assert channels_for(alerts, severity="critical", labels={"team": "db"}) == [
            "slack",
            "email",
        ]

    def test_default_when_nothing_matches(self) -> None:
        alerts = parse_spec(SPEC, environ={}).alerts
        assert channels_for(alerts, severity="warning", labels={}) == ["email"]

    def test_escalation(self) -> None:
        alerts = parse_spec(SPEC, environ={}).alerts
        assert escalation_for(alerts, severity="critical", labels={}) == (["pager"], 600.0)
        assert escalation_for(alerts, severity="warning", labels={"team": "db"}) is None

"""Which channels an alert goes to: routes matched on severity and labels, in order.

A route matches when every ``match`` entry equals the alert's label of that name
(``severity`` counts as a label). The first matching route wins unless it says
``continue = true``. With no match, ``[alerts] default_channels`` apply.
"""

from __future__ import annotations

from collections.abc import Mapping

from controltower.spec.alerts import AlertsSpec, RouteSpec


def matching_routes(
    alerts: AlertsSpec, *, severity: str, labels: Mapping[str, str]
) -> list[RouteSpec]:
    facts = {**labels, "severity": severity}
    chosen: list[RouteSpec] = []
    for route in alerts.routes:
        if all(facts.get(key) == value for key, value in route.match.items()):
            chosen.append(route)
            if not route.continue_:
                break
    return chosen


def channels_for(alerts: AlertsSpec, *, severity: str, labels: Mapping[str, str]) -> list[str]:
    """The channels to notify first for an alert with this severity and these labels."""
    routes = matching_routes(alerts, severity=severity, labels=labels)
    if not routes:
        return list(alerts.default_channels)
    return list(dict.fromkeys(channel for route in routes for channel in route.channels))


def escalation_for(
    alerts: AlertsSpec, *, severity: str, labels: Mapping[str, str]
) -> tuple[list[str], float] | None:
    """Channels to escalate to when unacknowledged, and after how many seconds; None if none."""
    for route in matching_routes(alerts, severity=severity, labels=labels):
        if route.escalate_to:
            return list(route.escalate_to), route.escalate_after
    return None

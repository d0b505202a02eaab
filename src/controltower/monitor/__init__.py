"""Monitoring: monitors, the scheduler, results and rollups, alert rules, incidents,
silences, maintenance windows and dependency suppression."""

from __future__ import annotations

from controltower.monitor.heartbeat import heartbeat_routes, record_ping
from controltower.monitor.incidents import (
    IncidentView,
    acknowledge,
    get_incident,
    list_incidents,
    resolve,
)
from controltower.monitor.probes import CheckOutcome, ProbeEnv, check, judge
from controltower.monitor.runner import MonitorRunner, RunnerOptions
from controltower.monitor.silences import add_silence, expire_silence, list_silences

__all__ = [
    "CheckOutcome",
    "IncidentView",
    "MonitorRunner",
    "ProbeEnv",
    "RunnerOptions",
    "acknowledge",
    "add_silence",
    "check",
    "expire_silence",
    "get_incident",
    "heartbeat_routes",
    "judge",
    "list_incidents",
    "list_silences",
    "record_ping",
    "resolve",
]

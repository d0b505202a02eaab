"""Channels: Slack, Resend, SMTP, signed webhook and Apprise, behind one small base class."""

from __future__ import annotations

from typing import Any

from controltower.clock import system_clock
from controltower.exceptions import NotifyError
from controltower.notify.channels.apprise import AppriseChannel
from controltower.notify.channels.base import (
    Channel,
    Delivery,
    DeliveryFailed,
    HttpChannel,
    HttpRequest,
)
from controltower.notify.channels.resend import ResendChannel
from controltower.notify.channels.slack import SlackChannel
from controltower.notify.channels.smtp import SmtpChannel
from controltower.notify.channels.webhook import WebhookChannel
from controltower.spec.alerts import AlertsSpec, ChannelSpec
from controltower.typing import Clock

CHANNEL_TYPES: dict[str, type[Channel[Any]]] = {
    "slack": SlackChannel,
    "resend": ResendChannel,
    "smtp": SmtpChannel,
    "webhook": WebhookChannel,
    "apprise": AppriseChannel,
}


def build_channel(name: str, spec: ChannelSpec, *, clock: Clock = system_clock) -> Channel[Any]:
    """The channel for ``[alerts.channels.<name>]``; ``NotifyError`` if a key it needs is missing."""
    return CHANNEL_TYPES[spec.type.value](name, spec, clock=clock)


def build_channels(
    alerts: AlertsSpec, *, clock: Clock = system_clock
) -> tuple[dict[str, Channel[Any]], dict[str, str]]:
    """Every configured channel that can be built, and why the others cannot."""
    built: dict[str, Channel[Any]] = {}
    problems: dict[str, str] = {}
    for name, spec in alerts.channels.items():
        try:
            built[name] = build_channel(name, spec, clock=clock)
        except NotifyError as exc:
            problems[name] = str(exc)
    return built, problems


__all__ = [
    "CHANNEL_TYPES",
    "AppriseChannel",
    "Channel",
    "Delivery",
    "DeliveryFailed",
    "HttpChannel",
    "HttpRequest",
    "ResendChannel",
    "SlackChannel",
    "SmtpChannel",
    "WebhookChannel",
    "build_channel",
    "build_channels",
]

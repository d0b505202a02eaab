"""Notifications: messages, the persisted outbox, channels and delivery."""

from __future__ import annotations

from controltower.notify.channels import (
    Channel,
    Delivery,
    DeliveryFailed,
    build_channel,
    build_channels,
)
from controltower.notify.dispatch import Dispatcher, DispatchReport, RetryPolicy
from controltower.notify.message import Notification
from controltower.notify.outbox import enqueue, list_messages, retry

__all__ = [
    "Channel",
    "Delivery",
    "DeliveryFailed",
    "DispatchReport",
    "Dispatcher",
    "Notification",
    "RetryPolicy",
    "build_channel",
    "build_channels",
    "enqueue",
    "list_messages",
    "retry",
]

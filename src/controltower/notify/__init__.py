"""Notifications: messages, the persisted outbox, channels and delivery."""

from __future__ import annotations

from controltower.notify.message import Notification
from controltower.notify.outbox import enqueue

__all__ = ["Notification", "enqueue"]

"""Alert rules for errors: a new or regressed issue at a minimum level, and spikes.

Notifications go through ``controltower.notify.enqueue`` in the writer's
transaction with keys ``error:<issue>:new``, ``error:<issue>:regressed:<n>`` and
``error:<issue>:spike:<window start>``, so a retried batch notifies once.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from controltower.spec import Spec
from controltower.spec.alerts import ChannelType
from controltower.spec.server import LEVEL_ORDER, parse_spike


@dataclass(frozen=True)
class ErrorAlertRules:
    channels: list[str] = field(default_factory=list)
    min_level: str = "error"
    spike_count: int = 0
    spike_window: float = 0.0
    public_url: str = ""

    @property
    def enabled(self) -> bool:
        return bool(self.channels)

    def notifies(self, level: str) -> bool:
        return LEVEL_ORDER.get(level, 3) >= LEVEL_ORDER.get(self.min_level, 3)

    @classmethod
    def from_spec(cls, spec: Spec) -> ErrorAlertRules:
        """Rules from ``[server.error_alerts]``; channels default to the first resend channel."""
        config = spec.server.error_alerts
        if not config.enabled:
            return cls()
        channels = list(config.channels)
        if not channels:
            resend = [
                name
                for name, channel in spec.alerts.channels.items()
                if channel.type is ChannelType.RESEND
            ]
            channels = resend[:1] or list(spec.alerts.default_channels)
        count, window = parse_spike(config.spike) if config.spike else (0, 0.0)
        return cls(
            channels=channels,
            min_level=config.min_level.value,
            spike_count=count,
            spike_window=window,
            public_url=spec.server.public_url,
        )

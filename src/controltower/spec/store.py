from __future__ import annotations

from pydantic import SecretStr

from controltower.spec.base import Section
from controltower.units import Duration


class StoreSpec(Section):
    """``[store]``: where tower keeps its state. SQLite under .tower/ unless a URL is given.

    The ``retention_*`` keys say how long monitor results live: raw checks (also
    capped per monitor by its ``keep_results``), and the per-minute, per-hour and
    per-day rollups. Minutes serve the 1 h uptime window and hours the 24 h, 7 d
    and 30 d ones, so they are kept at least 2 h and 31 d whatever is set here.
    """

    url: SecretStr | None = None
    retention_raw: Duration = 7 * 86400.0
    retention_minute: Duration = 2 * 3600.0
    retention_hour: Duration = 35 * 86400.0
    retention_day: Duration = 400 * 86400.0

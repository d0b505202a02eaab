from __future__ import annotations

from pydantic import SecretStr

from controltower.spec.base import Section
from controltower.units import Duration


class StoreSpec(Section):
    """``[store]``: where tower keeps its state. SQLite under .tower/ unless a URL is given."""

    url: SecretStr | None = None
    retention_raw: Duration = 7 * 86400.0
    retention_minute: Duration = 30 * 86400.0
    retention_hour: Duration = 400 * 86400.0

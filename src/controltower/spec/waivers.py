from __future__ import annotations

import datetime as dt

from pydantic import Field

from controltower.spec.base import Section


class WaiverSpec(Section):
    """``[[waivers]]``: a check accepted as failing, with a reason and an expiry date."""

    check: str
    reason: str = Field(min_length=3)
    expires: dt.date
    environments: list[str] = Field(default_factory=list)

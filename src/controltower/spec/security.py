from __future__ import annotations

from typing import Literal

from pydantic import Field

from controltower.spec.base import Section
from controltower.units import Duration


class SecuritySpec(Section):
    """``[security]``: the headers and grade the app must reach."""

    min_grade: Literal["A+", "A", "A-", "B+", "B", "B-", "C+", "C", "C-", "D+", "D", "D-", "F"] = (
        "B"
    )
    hsts_max_age: Duration = 63072000.0
    csp: str = ""
    csp_report_only: bool = False
    report_uri: str = ""
    trusted_types: bool = False
    permissions_policy: str = "camera=(), microphone=(), geolocation=()"
    referrer_policy: str = "strict-origin-when-cross-origin"
    frame_ancestors: str = "'none'"
    cert_min_days: int = Field(default=14, ge=0)
    rate_limit_path: str = ""
    rate_limit_burst: int = Field(default=60, ge=1, le=1000)

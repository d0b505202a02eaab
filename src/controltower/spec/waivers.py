from __future__ import annotations

import datetime as dt
import re

from pydantic import Field, model_validator
from pydantic_core import PydanticCustomError

from controltower.spec.base import Section

ADVISORY_CHECK = "deps.vulnerabilities"
_ADVISORY = re.compile(r"^[A-Za-z][A-Za-z0-9]*-[A-Za-z0-9][A-Za-z0-9._:-]*$")


class WaiverSpec(Section):
    """``[[waivers]]``: a check accepted as failing, with a reason and an expiry date.

    With ``advisory`` (a ``GHSA-...``, ``PYSEC-...``, ``CVE-...`` id) only that
    advisory of ``deps.vulnerabilities`` is waived; the check still fails for any other.
    """

    check: str
    reason: str = Field(min_length=3)
    expires: dt.date
    environments: list[str] = Field(default_factory=list)
    advisory: str = ""

    @model_validator(mode="after")
    def _advisory(self) -> WaiverSpec:
        if not self.advisory:
            return self
        if self.check != ADVISORY_CHECK:
            raise PydanticCustomError(
                "waiver",
                'an advisory waiver is for check = "{check}" (got "{got}")',
                {"check": ADVISORY_CHECK, "got": self.check},
            )
        if not _ADVISORY.match(self.advisory):
            raise PydanticCustomError(
                "waiver",
                'advisory is an id such as "GHSA-xxxx-xxxx-xxxx" or "PYSEC-2024-1" (got "{got}")',
                {"got": self.advisory},
            )
        return self

    @property
    def label(self) -> str:
        return f"{self.check} {self.advisory}" if self.advisory else self.check

    def matches(self, rule: str, message: str) -> bool:
        """An advisory waiver covers an item whose id, or an alias in its message, is it."""
        wanted = self.advisory.upper()
        return rule.upper() == wanted or wanted in message.upper().replace(",", " ").split()

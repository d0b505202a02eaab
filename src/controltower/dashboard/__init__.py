"""The dashboard and public status page that ``tower serve`` shows."""

from __future__ import annotations

"""``tower demo``: the example app checked, shipped and watched on this machine."""

from __future__ import annotations

from controltower.demo.run import Demo, DemoError, DemoSummary, StepResult

__all__ = ["Demo", "DemoError", "DemoSummary", "StepResult"]

"""controltower: make a web application production-ready and keep it there.

The top-level names are loaded on first use (PEP 562), so importing a light
submodule such as ``controltower.appkit`` does not load the spec models,
pydantic or the CLI.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from controltower.__about__ import __version__

if TYPE_CHECKING:
    from controltower.conditions import Condition, ConditionResult, parse_condition
    from controltower.exceptions import SpecError, SpecIssue, TowerError
    from controltower.spec import Spec, load_spec, parse_spec

_LAZY = {
    "Condition": "controltower.conditions",
    "ConditionResult": "controltower.conditions",
    "parse_condition": "controltower.conditions",
    "SpecError": "controltower.exceptions",
    "SpecIssue": "controltower.exceptions",
    "TowerError": "controltower.exceptions",
    "Spec": "controltower.spec",
    "load_spec": "controltower.spec",
    "parse_spec": "controltower.spec",
}

__all__ = [
    "Condition",
    "ConditionResult",
    "Spec",
    "SpecError",
    "SpecIssue",
    "TowerError",
    "__version__",
    "load_spec",
    "parse_condition",
    "parse_spec",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'controltower' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)

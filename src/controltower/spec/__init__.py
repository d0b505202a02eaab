"""The tower.toml spec: models, loader and presets."""

from __future__ import annotations

from controltower.spec.loader import (
    DEFAULT_SPEC_FILE,
    find_spec_file,
    load_spec,
    parse_spec,
    validate_spec,
)
from controltower.spec.model import Spec

__all__ = [
    "DEFAULT_SPEC_FILE",
    "Spec",
    "find_spec_file",
    "load_spec",
    "parse_spec",
    "validate_spec",
]

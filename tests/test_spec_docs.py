"""docs/spec.md documents every table and key of tower.toml exactly as the models define them."""

from __future__ import annotations

import re
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from controltower.spec import Spec, parse_spec
from controltower.spec.loader import _unwrap

ROOT = Path(__file__).resolve().parent.parent
DOC = (ROOT / "docs" / "spec.md").read_text(encoding="utf-8")
PLACEHOLDERS = {"environments": "<name>", "vars": "<NAME>", "channels": "<name>"}


def _models(annotation: Any) -> Iterator[tuple[type[BaseModel], str]]:
    """The section models inside a field's type, with how they nest: table, array or map."""
    for kind in _unwrap(annotation):
        origin, args = typing.get_origin(kind), typing.get_args(kind)
        if isinstance(kind, type) and issubclass(kind, BaseModel):
            yield kind, "table"
        elif origin is list and args:
            for inner in _unwrap(args[0]):
                if isinstance(inner, type) and issubclass(inner, BaseModel):
                    yield inner, "array"
        elif origin is dict and len(args) == 2:
            for inner in _unwrap(args[1]):
                if isinstance(inner, type) and issubclass(inner, BaseModel):
                    yield inner, "map"


def tables() -> dict[str, set[str]]:
    """Every table header of tower.toml (``[deploy.health]``, ``[[monitors]]``) with its keys."""
    found: dict[str, set[str]] = {}

    def walk(model: type[BaseModel], dotted: str, header: str) -> None:
        keys = {f.alias or n for n, f in model.model_fields.items() if not f.exclude}
        if header:  # the members of a tagged union (alert channels) share one table
            found[header] = found.get(header, set()) | keys
        for name, field in model.model_fields.items():
            if field.exclude:
                continue
            key = field.alias or name
            path = f"{dotted}.{key}" if dotted else key
            for child, nesting in _models(field.annotation):
                if nesting == "table":
                    walk(child, path, f"[{path}]")
                elif nesting == "array":
                    walk(child, path, f"[[{path}]]")
                else:
                    walk(child, f"{path}.{PLACEHOLDERS[key]}", f"[{path}.{PLACEHOLDERS[key]}]")

    walk(Spec, "", "")
    return found


def documented() -> dict[str, set[str]]:
    """The tables of docs/spec.md: ``### `[header]` `` followed by rows ``| `key` | ...``."""
    found: dict[str, set[str]] = {}
    header = ""
    for line in DOC.splitlines():
        heading = re.match(r"^### `(\[\[?[^`]+\]\]?)`$", line)
        if heading:
            header = heading.group(1)
            found[header] = set()
        elif line.startswith("## "):
            header = ""
        elif header and (row := re.match(r"^\| `([^`]+)` \|", line)):
            found[header].add(row.group(1))
    return found


TABLES = tables()


class TestReference:
    def test_walk_finds_the_sections(self) -> None:
        """The model walk sees every top-level section and nested tables (guards the test itself)."""
        assert {"[service]", "[[monitors]]", "[env.vars.<NAME>]", "[deploy.fly]"} <= set(TABLES)
        assert len(TABLES) >= 35

    @pytest.mark.parametrize("header", sorted(TABLES))
    def test_every_key_is_documented(self, header: str) -> None:
        """Each table of the models has a section in docs/spec.md listing exactly its keys."""
        docs = documented()
        assert header in docs, f"docs/spec.md has no section ### `{header}`"
        assert docs[header] == TABLES[header], (
            f"{header}: undocumented {sorted(TABLES[header] - docs[header])}, "
            f"not in the model {sorted(docs[header] - TABLES[header])}"
        )

    def test_no_section_for_a_table_that_does_not_exist(self) -> None:
        """docs/spec.md documents no table the models lack."""
        assert set(documented()) - set(TABLES) == set()

    def test_top_level_sections_in_order(self) -> None:
        """The reference lists the top-level sections in the order of the Spec model."""
        order = [h for h in documented() if h.strip("[]").count(".") == 0]
        expected = [h for h in TABLES if h.strip("[]").count(".") == 0]
        assert order == expected

    def test_required_keys_are_marked(self) -> None:
        """A key without a default is marked **required** in its row, and only those."""
        for header, keys in TABLES.items():
            section = DOC.split(f"### `{header}`", 1)[1].split("\n### ", 1)[0]
            models = _models_at(header)
            for key in keys:
                fields = [
                    f
                    for model in models
                    for n, f in model.model_fields.items()
                    if (f.alias or n) == key
                ]
                required = all(field.is_required() for field in fields)
                row = re.search(rf"^\| `{re.escape(key)}` \|.*$", section, re.M)
                assert row is not None
                assert ("**required**" in row.group(0)) == required, (header, key)

    def test_examples_in_the_page_are_valid(self) -> None:
        """The overlay example of docs/spec.md loads as written."""
        block = re.search(r"```toml\n(.*?)```", DOC, re.S)
        assert block is not None
        spec = parse_spec('[service]\nname = "shop"\n' + block.group(1), env="production")
        assert spec.deploy.instances == 3 and spec.is_production


def _models_at(header: str) -> list[type[BaseModel]]:
    """The model of a table, or every member of a tagged union (each channel type)."""
    path = header.strip("[]").split(".")
    models: list[type[BaseModel]] = [Spec]
    for part in path:
        if part in ("<name>", "<NAME>"):
            continue
        field = next(f for n, f in models[0].model_fields.items() if (f.alias or n) == part)
        models = [child for child, _ in _models(field.annotation)]
    return models

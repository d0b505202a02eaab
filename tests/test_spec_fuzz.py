"""Property tests: whatever the file holds, the loader raises nothing but SpecError."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from controltower.exceptions import SpecError
from controltower.spec import parse_spec, validate_spec
from controltower.spec.detect import Detected
from controltower.spec.presets import PRESETS as PRESET_NAMES
from controltower.spec.presets import render

EXAMPLE = (Path(__file__).resolve().parent.parent / "examples" / "app" / "tower.toml").read_text()
PRESETS = [render(name, Detected(name="shop")) for name in PRESET_NAMES]

keys = st.sampled_from(
    [
        "service",
        "name",
        "deploy",
        "strategy",
        "monitors",
        "url",
        "health",
        "readiness",
        "env",
        "vars",
        "budgets",
        "steps",
        "weight",
        "conditions",
        "alerts",
        "channels",
        "type",
        "memory",
        "port",
        "environments",
        "production",
        "overrides",
        "x",
        "for",
        "waivers",
        "expires",
    ]
)
scalars = st.one_of(
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=True),
    st.booleans(),
    st.text(max_size=20),
    st.sampled_from(
        [
            "30s",
            "512mb",
            "5%",
            "${HOME}",
            "${X:-1}",
            "${",
            "canary",
            "status == 200",
            "https://a.test",
            "/api/health",
        ]
    ),
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=4),
    max_leaves=20,
)


def _toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return {"nan": "nan", "inf": "inf", "-inf": "-inf"}.get(str(value), repr(value))
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False).replace("\x7f", "\\u007f")
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    assert isinstance(value, dict)
    return "{" + ", ".join(f'"{k}" = {_toml_value(v)}' for k, v in value.items()) + "}"


def _check(text: str) -> None:
    for env in (None, "production", "local"):
        try:
            parse_spec(text, env=env, environ={"HOME": "/root"})
        except SpecError as exc:
            assert all(issue.line >= 0 for issue in exc.issues)
    validate_spec(text, environ={})


class TestFuzz:
    @settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
    @given(st.text(max_size=300))
    def test_random_text(self, text: str) -> None:
        """Arbitrary text never raises anything but SpecError."""
        _check(text)

    @settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
    @given(st.dictionaries(keys, values, max_size=6))
    def test_random_documents(self, document: dict[str, object]) -> None:
        """Well-formed TOML of any shape never raises anything but SpecError."""
        text = "\n".join(f'"{k}" = {_toml_value(v)}' for k, v in document.items())
        tomllib.loads(text)
        _check(text)

    @settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
    @given(st.sampled_from([EXAMPLE, *PRESETS]), st.data())
    def test_mutated_real_files(self, base: str, data: st.DataObject) -> None:
        """Real specs with lines deleted, duplicated or changed never raise anything else."""
        lines = base.splitlines()
        for _ in range(data.draw(st.integers(1, 4))):
            index = data.draw(st.integers(0, len(lines) - 1))
            action = data.draw(st.sampled_from(["delete", "duplicate", "replace", "truncate"]))
            if action == "delete":
                del lines[index]
            elif action == "duplicate":
                lines.insert(index, lines[index])
            elif action == "truncate":
                lines[index] = lines[index][: data.draw(st.integers(0, len(lines[index])))]
            else:
                key = lines[index].split("=")[0] if "=" in lines[index] else lines[index]
                lines[index] = f"{key}= {_toml_value(data.draw(scalars))}"
            if not lines:
                break
        _check("\n".join(lines))

"""Load tower.toml: parse, expand ``${VAR}``, apply an environment overlay, validate.

Every problem is collected and raised at once as a ``SpecError`` whose issues
say file, line, key path and what is allowed. Values that came from the
environment or that sit in secret fields are never echoed.
"""

from __future__ import annotations

import copy
import difflib
import os
import re
import tomllib
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, SecretStr, ValidationError

from controltower.exceptions import SpecError, SpecIssue
from controltower.spec.model import Spec, cross_check
from controltower.spec.tomlscan import key_lines, line_of
from controltower.typing import KeyPath

__all__ = ["DEFAULT_SPEC_FILE", "find_spec_file", "load_spec", "parse_spec", "validate_spec"]

DEFAULT_SPEC_FILE = "tower.toml"
_VAR = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-(.*?))?\}|\$\{([^}]*)\}?")
_TOML_POSITION = re.compile(r"\(at line (\d+), column (\d+)\)")
_GOT = re.compile(r"\s*\(got .*\)$", re.DOTALL)


def find_spec_file(start: Path | None = None) -> Path:
    """The tower.toml in ``start`` or the nearest parent folder that has one."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        candidate = folder / DEFAULT_SPEC_FILE
        if candidate.is_file():
            return candidate
    raise SpecError(
        [
            SpecIssue(
                str(here / DEFAULT_SPEC_FILE),
                0,
                "",
                "no tower.toml here or in any parent folder; run `tower init` to write one",
            )
        ]
    )


def load_spec(
    path: str | Path | None = None,
    *,
    env: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> Spec:
    """Load and validate the spec at ``path`` (found upwards from here if not given)."""
    file = Path(path) if path is not None else find_spec_file()
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError(
            [SpecIssue(str(file), 0, "", "file not found; run `tower init` to write one")]
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError([SpecIssue(str(file), 0, "", f"cannot be read: {exc}")]) from None
    return parse_spec(text, source=str(file), env=env, environ=environ)


def validate_spec(
    text: str, *, source: str = DEFAULT_SPEC_FILE, environ: Mapping[str, str] | None = None
) -> list[SpecIssue]:
    """Every issue in the base spec and in each environment overlay, without raising."""
    issues: list[SpecIssue] = []
    try:
        spec = parse_spec(text, source=source, environ=environ)
    except SpecError as exc:
        return exc.issues
    for name in spec.environments:
        try:
            parse_spec(text, source=source, env=name, environ=environ)
        except SpecError as exc:
            issues.extend(issue for issue in exc.issues if issue not in issues)
    return sorted(set(issues))


def parse_spec(
    text: str,
    *,
    source: str = DEFAULT_SPEC_FILE,
    env: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> Spec:
    """Parse spec ``text``; ``source`` names it in errors."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        match = _TOML_POSITION.search(message)
        line = int(match.group(1)) if match else 0
        reason = _TOML_POSITION.sub("", message).strip().rstrip(".")
        col = f" (column {match.group(2)})" if match else ""
        raise SpecError([SpecIssue(source, line, "", f"invalid TOML: {reason}{col}")]) from None
    except (ValueError, RecursionError) as exc:
        raise SpecError([SpecIssue(source, 0, "", f"invalid TOML: {exc}")]) from None
    return _Loader(text, data, source, os.environ if environ is None else environ).load(env)


class _Loader:
    def __init__(self, text: str, data: dict[str, Any], source: str, environ: Mapping[str, str]):
        self.source = source
        self.data = data
        self.environ = environ
        self.lines = key_lines(text)
        self.issues: list[SpecIssue] = []
        self.expanded: dict[KeyPath, str] = {}
        self.moved: dict[KeyPath, KeyPath] = {}

    def issue(self, path: KeyPath, message: str) -> None:
        origin = self.origin(path)
        self.issues.append(
            SpecIssue(self.source, line_of(self.lines, origin), _dotted(path), message)
        )

    def origin(self, path: KeyPath) -> KeyPath:
        """Where ``path`` of the merged data was written in the file."""
        for end in range(len(path), 0, -1):
            if path[:end] in self.moved:
                return self.moved[path[:end]] + path[end:]
        return path

    def load(self, env: str | None) -> Spec:
        data = self.expand(self.data, ())
        if env is not None:
            data = self.overlay(data, env)
        spec: Spec | None = None
        if not self.issues:
            try:
                spec = Spec.model_validate(data)
            except ValidationError as exc:
                self.report(exc, data)
        if spec is not None:
            for path, message in cross_check(spec):
                self.issue(path, message)
        if self.issues or spec is None:
            raise SpecError(_dedupe(self.issues))
        spec.environment = env
        spec.source = self.source
        return spec

    def expand(self, value: Any, path: KeyPath) -> Any:
        if isinstance(value, dict):
            return {key: self.expand(item, (*path, key)) for key, item in value.items()}
        if isinstance(value, list):
            return [self.expand(item, (*path, index)) for index, item in enumerate(value)]
        if not isinstance(value, str) or "$" not in value:
            return value
        shell = _is_hook(path)

        def substitute(match: re.Match[str]) -> str:
            whole = match.group(0)
            if whole == "$$":
                return whole if shell else "$"
            name, default = match.group(1), match.group(2)
            if name is None:
                self.issue(
                    path,
                    f'"{whole}" is not a valid variable reference; '
                    "write ${NAME} or ${NAME:-default}",
                )
                return ""
            self.expanded[path] = value
            if shell and (default is not None or name in self.environ):
                return whole  # the shell expands it when the hook runs
            if default is not None:  # ${NAME:-default}: the default when unset or empty
                return self.environ.get(name) or default
            if name in self.environ:
                return self.environ[name]
            self.issue(
                path,
                f"environment variable {name} is not set "
                f"(set it, or give a default: ${{{name}:-default}})",
            )
            return ""

        return _VAR.sub(substitute, value)

    def overlay(self, data: dict[str, Any], env: str) -> dict[str, Any]:
        environments = data.get("environments")
        if not isinstance(environments, dict) or env not in environments:
            known = list(environments) if isinstance(environments, dict) else []
            hint = _suggest(env, known)
            listed = ", ".join(known) if known else "none defined"
            self.issue(("environments",), f'no environment "{env}" ({listed}){hint}')
            return data
        overrides = (
            environments[env].get("overrides", {}) if isinstance(environments[env], dict) else {}
        )
        if not isinstance(overrides, dict):
            return data
        merged = copy.deepcopy(data)
        self._merge(merged, overrides, (), ("environments", env, "overrides"))
        return merged

    def _merge(
        self, base: dict[str, Any], top: dict[str, Any], path: KeyPath, origin: KeyPath
    ) -> None:
        for key, value in top.items():
            here, there = (*path, key), (*origin, key)
            if isinstance(value, dict) and isinstance(base.get(key), dict):
                self._merge(base[key], value, here, there)
            else:
                base[key] = copy.deepcopy(value)
                self.moved[here] = there
                for expanded, text in list(self.expanded.items()):
                    if expanded[: len(there)] == there:
                        self.expanded[here + expanded[len(there) :]] = text

    def report(self, error: ValidationError, data: dict[str, Any]) -> None:
        seen: set[KeyPath] = set()
        for item in error.errors(include_url=False):
            kind = item["type"]
            loc = item["loc"]
            if kind == "union_tag_invalid":  # a tagged union (a channel's `type`): at the tag
                loc = (*loc, str((item.get("ctx") or {}).get("discriminator", "type")).strip("'"))
            path, value = _clean_path(loc, data)
            if kind == "extra_forbidden":
                parent = path[:-1]
                if parent in seen and path in seen:
                    continue
                seen.add(path)
                allowed = _fields_at(parent)
                suggestion = _suggest(str(path[-1]), allowed)
                if not suggestion and allowed:
                    suggestion = f" (allowed: {', '.join(sorted(allowed))})"
                self.issue(path, f"unknown key{suggestion}")
                continue
            if path in seen:
                continue
            seen.add(path)
            secret = path in self.expanded or _is_secret(path)
            message = _message(item, value, show=not secret)
            if path in self.expanded:
                names = re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)", self.expanded[path])
                message = _GOT.sub("", message)
                if names:
                    message += f" (got the value of ${{{names[0]}}})"
            elif secret:
                message = _GOT.sub("", message)
            self.issue(path, message)


def _is_hook(path: KeyPath) -> bool:
    """Hook commands are left to the shell: a secret they name never enters the spec."""
    if path[:2] == ("deploy", "hooks"):
        return True
    return path[:1] == ("environments",) and path[2:5] == ("overrides", "deploy", "hooks")


def _dotted(path: KeyPath) -> str:
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        elif re.fullmatch(r"[A-Za-z0-9_-]+", part):
            out += f".{part}" if out else part
        else:
            out += f'."{part}"' if out else f'"{part}"'
    return out


def _dedupe(issues: list[SpecIssue]) -> list[SpecIssue]:
    return sorted(set(issues))


def _suggest(word: str, choices: typing.Iterable[str]) -> str:
    options = list(choices)
    matches = difflib.get_close_matches(word, options, n=1, cutoff=0.6)
    if not matches and len(word) >= 3:
        matches = [c for c in options if c.startswith(word) or word.startswith(c)][:1]
    return f' (did you mean "{matches[0]}"?)' if matches else ""


def _clean_path(loc: tuple[Any, ...], data: Any) -> tuple[KeyPath, Any]:
    """Drop the parts of a pydantic location that name types, not keys."""
    path: list[str | int] = []
    current: Any = data
    missing = object()
    for index, part in enumerate(loc):
        last = index == len(loc) - 1
        if part == "[key]":  # the error is about the key itself, located at its entry
            continue
        if (isinstance(current, dict) and part in current) or (
            isinstance(current, list) and isinstance(part, int) and 0 <= part < len(current)
        ):
            path.append(part)
            current = current[part]
        elif last and isinstance(current, dict) and isinstance(part, str):
            path.append(part)
            current = missing
        # otherwise a union member's tag such as "int" or "function-after[...]": skip
    return tuple(path), (None if current is missing else current)


def _unwrap(annotation: Any) -> list[Any]:
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _unwrap(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        out: list[Any] = []
        for arg in typing.get_args(annotation):
            out.extend(_unwrap(arg))
        return out
    return [annotation]


def _annotation_at(path: KeyPath) -> list[Any]:
    candidates: list[Any] = [Spec]
    for part in path:
        following: list[Any] = []
        for candidate in candidates:
            for kind in _unwrap(candidate):
                origin = typing.get_origin(kind)
                args = typing.get_args(kind)
                if isinstance(kind, type) and issubclass(kind, BaseModel) and isinstance(part, str):
                    for name, field in kind.model_fields.items():
                        if part in (name, field.alias):
                            following.append(field.annotation)
                elif origin is list and isinstance(part, int) and args:
                    following.append(args[0])
                elif origin is dict and isinstance(part, str) and len(args) == 2:
                    following.append(args[1])
        candidates = following
    return candidates


def _fields_at(path: KeyPath) -> set[str]:
    names: set[str] = set()
    for candidate in _annotation_at(path):
        for kind in _unwrap(candidate):
            if isinstance(kind, type) and issubclass(kind, BaseModel):
                for name, field in kind.model_fields.items():
                    if not field.exclude:
                        names.add(field.alias or name)
    return names


def _is_secret(path: KeyPath) -> bool:
    for candidate in _annotation_at(path):
        for kind in _unwrap(candidate):
            if kind is SecretStr:
                return True
    return False


def _show(value: Any) -> str:
    if isinstance(value, str):
        text = value if len(value) <= 60 else value[:57] + "..."
        return f'"{text}"'
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "a list"
    return str(value)


def _message(item: Any, value: Any, *, show: bool) -> str:
    kind: str = item["type"]
    ctx: dict[str, Any] = item.get("ctx") or {}
    got = f" (got {_show(value)})" if show else ""
    if kind == "missing":
        return "required key is missing"
    if kind == "union_tag_invalid":  # a tagged union such as a channel's `type`
        tags = re.findall(r"'([^']*)'", str(ctx.get("expected_tags", "")))
        given = f' (got "{ctx["tag"]}")' if "tag" in ctx else ""
        return "must be one of " + ", ".join(tags) + given
    if kind in ("literal_error", "enum"):
        expected = re.findall(r"'([^']*)'|(\d+)", str(ctx.get("expected", "")))
        allowed = ", ".join(a or b for a, b in expected)
        return f"must be one of {allowed}{got}"
    simple = {
        "int_parsing": "must be a whole number",
        "int_type": "must be a whole number",
        "int_from_float": "must be a whole number",
        "float_parsing": "must be a number",
        "float_type": "must be a number",
        "bool_parsing": "must be true or false",
        "bool_type": "must be true or false",
        "string_type": "must be a string",
        "list_type": "must be a list",
        "dict_type": "must be a table",
        "model_type": "must be a table",
        "model_attributes_type": "must be a table",
        "date_parsing": "must be a date like 2026-12-31",
        "date_type": "must be a date like 2026-12-31",
        "date_from_datetime_parsing": "must be a date like 2026-12-31",
        "date_from_datetime_inexact": "must be a date like 2026-12-31, without a time",
        "finite_number": "must be a finite number",
    }
    if kind in simple:
        return simple[kind] + got
    bounds = {
        "greater_than_equal": ("must be at least", "ge"),
        "greater_than": ("must be greater than", "gt"),
        "less_than_equal": ("must be at most", "le"),
        "less_than": ("must be less than", "lt"),
    }
    if kind in bounds:
        words, key = bounds[kind]
        return f"{words} {ctx.get(key)}{got}"
    if kind == "string_too_short":
        return f"must be at least {ctx.get('min_length')} characters long{got}"
    if kind == "string_too_long":
        return f"must be at most {ctx.get('max_length')} characters long"
    text = str(item.get("msg", kind))
    text = re.sub(r"^(Value error|Assertion failed), ", "", text)
    if show or "(got" not in text:
        return text
    return _GOT.sub("", text)

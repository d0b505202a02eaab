"""The secret values a command knows, kept out of everything it prints or stores.

A value is secret when its name says so (``*SECRET*``, ``*PASSWORD*``, ``*_TOKEN``,
``*API_KEY``...), when it has the shape of a server key (``sk_live_``, ``whsec_``...),
when it is the password of a URL, or when the spec holds it in a secret field.
``Secrets.gather`` collects them from the spec, the environment and the values
a deploy was given (``--set``); ``redact`` replaces each with ``***``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from pydantic import BaseModel, SecretStr

from controltower.envcheck.rules import SECRET_NAME, SERVER_KEY_SHAPES

if TYPE_CHECKING:
    from controltower.spec import Spec

__all__ = ["REDACTED", "Secrets", "is_secret"]

REDACTED = "***"
MIN_LENGTH = 4


def is_secret(name: str, value: str) -> bool:
    """Whether the variable ``name`` holding ``value`` is a secret."""
    return bool(SECRET_NAME.search(name.upper())) or value.startswith(SERVER_KEY_SHAPES)


def _url_password(value: str) -> str:
    if "://" not in value or "@" not in value:
        return ""
    try:
        return urlsplit(value.strip()).password or ""
    except ValueError:
        return ""


def _secret_fields(model: BaseModel, found: set[str], depth: int = 0) -> None:
    if depth > 8:
        return
    for name in type(model).model_fields:
        value = getattr(model, name, None)
        for item in (
            value.values()
            if isinstance(value, dict)
            else (value if isinstance(value, list) else [value])
        ):
            if isinstance(item, SecretStr):
                found.add(item.get_secret_value())
            elif isinstance(item, BaseModel):
                _secret_fields(item, found, depth + 1)


@dataclass(frozen=True)
class Secrets:
    """A set of secret values; ``redact`` takes every one of them out of a text."""

    values: frozenset[str] = field(default_factory=frozenset)

    @classmethod
    def of(cls, values: Iterable[str]) -> Secrets:
        kept: set[str] = set()
        for value in values:
            value = value.strip()
            if len(value) >= MIN_LENGTH:
                kept.add(value)
                password = _url_password(value)
                if len(password) >= MIN_LENGTH:
                    kept.add(password)
        return cls(frozenset(kept))

    @classmethod
    def gather(
        cls,
        spec: Spec | None = None,
        environ: Mapping[str, str] | None = None,
        given: Mapping[str, str] | None = None,
    ) -> Secrets:
        """The secrets of ``spec``, of the environment and of the variables ``given``."""
        env = os.environ if environ is None else environ
        found: set[str] = set()
        named: set[str] = set()
        variables: list[tuple[str, str]] = list(env.items()) + list((given or {}).items())
        if spec is not None:
            _secret_fields(spec, found)
            named = {name for name, var in spec.env.vars.items() if var.secret}
            variables += list(spec.deploy.local.env.items())
        for name, value in variables:
            if name in named or is_secret(name, value):
                found.add(value)
            password = _url_password(value)
            if password:
                found.add(password)
        return cls.of(found)

    def __or__(self, other: Secrets) -> Secrets:
        return Secrets(self.values | other.values)

    def redact(self, text: str) -> str:
        """``text`` with each secret value replaced by ``***``, longest first."""
        for secret in sorted(self.values, key=len, reverse=True):
            if secret in text:
                text = text.replace(secret, REDACTED)
        return text

    def redact_data(self, value: Any) -> Any:
        """A copy of JSON-like ``value`` with every string redacted."""
        if isinstance(value, str):
            return self.redact(value)
        if isinstance(value, dict):
            return {self.redact(str(k)): self.redact_data(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.redact_data(v) for v in value]
        return value

    def split_env(self, env: Mapping[str, str]) -> tuple[dict[str, str], list[str]]:
        """``env`` as (the variables fit to store, the names of the secret ones)."""
        plain: dict[str, str] = {}
        hidden: list[str] = []
        for name, value in env.items():
            if is_secret(name, value) or self.redact(value) != value:
                hidden.append(name)
            else:
                plain[name] = value
        return plain, sorted(hidden)

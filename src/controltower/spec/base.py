"""The base of every spec section: unknown keys are errors."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict
from pydantic_core import PydanticCustomError


class Section(BaseModel):
    """A table in tower.toml. Unknown keys are rejected, with a suggestion."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, validate_default=True)


def _url_path(value: str) -> str:
    if not value.startswith("/"):
        raise PydanticCustomError(
            "url_path", 'must be a path starting with "/" (got "{value}")', {"value": value}
        )
    return value


def _http_url(value: str) -> str:
    if not re.match(r"^https?://[^\s/]+", value):
        raise PydanticCustomError(
            "http_url", 'must be an http:// or https:// URL (got "{value}")', {"value": value}
        )
    return value.rstrip("/") if value.count("/") == 2 else value


def _name(value: str) -> str:
    if not re.fullmatch(r"[a-z0-9][a-z0-9_.-]{0,62}", value):
        raise PydanticCustomError(
            "name",
            'must be lowercase letters, digits, "-", "_" or "." (got "{value}")',
            {"value": value},
        )
    return value


UrlPath = Annotated[str, AfterValidator(_url_path)]
HttpUrl = Annotated[str, AfterValidator(_http_url)]
Name = Annotated[str, AfterValidator(_name)]

from __future__ import annotations

import re
from enum import StrEnum
from typing import Annotated

from pydantic import AfterValidator, Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

from controltower.spec.base import Section


class VarFormat(StrEnum):
    STRING = "string"
    URL = "url"
    EMAIL = "email"
    INT = "int"
    BOOL = "bool"
    ENUM = "enum"
    REGEX = "regex"
    PREFIX = "prefix"


class EnvVarSpec(Section):
    """``[env.vars.<NAME>]``: one variable the app needs."""

    description: str = ""
    required: bool = True
    secret: bool = False
    format: VarFormat = VarFormat.STRING
    values: list[str] = Field(default_factory=list)
    pattern: str = ""
    prefix: str | list[str] = ""
    environments: list[str] = Field(default_factory=list)
    example: str = ""
    client: bool = False

    @field_validator("pattern")
    @classmethod
    def _pattern(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as exc:
            raise PydanticCustomError(
                "env_pattern",
                "must be a valid regular expression: {error}",
                {"error": str(exc)},
            ) from None
        return value

    @model_validator(mode="after")
    def _format_arguments(self) -> EnvVarSpec:
        if self.format is VarFormat.ENUM and not self.values:
            raise PydanticCustomError("env_format", 'format "enum" needs values = [...]')
        if self.format is VarFormat.REGEX and not self.pattern:
            raise PydanticCustomError("env_format", 'format "regex" needs pattern = "..."')
        if self.format is VarFormat.PREFIX and not self.prefix:
            raise PydanticCustomError("env_format", 'format "prefix" needs prefix = "..."')
        return self


def _var_name(name: str) -> str:
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
        raise PydanticCustomError(
            "env_name",
            'variable name "{name}" must be letters, digits and "_", not starting with a digit',
            {"name": name},
        )
    return name


VarName = Annotated[str, AfterValidator(_var_name)]


class EnvCatalogSpec(Section):
    """``[env]``: the catalog of environment variables and where to find their values."""

    client_prefixes: list[str] = Field(default_factory=lambda: ["NEXT_PUBLIC_"])
    files: list[str] = Field(default_factory=lambda: [".env", ".env.local"])
    fly_secrets_file: str = ""
    fly_secrets_command: str = ""
    vars: dict[VarName, EnvVarSpec] = Field(default_factory=dict)

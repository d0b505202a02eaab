from __future__ import annotations

import re
from typing import Literal

from croniter import croniter
from pydantic import Field, SecretStr, field_validator
from pydantic_core import PydanticCustomError

from controltower.conditions import ConditionText
from controltower.spec.base import Section
from controltower.units import Duration, parse_duration

_EVERY = re.compile(r"^@every\s+(\S+)$")
_MONITOR_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,62}$")


class DestinationSpec(Section):
    """Where backups go: a local folder or S3-compatible storage (credentials from the env)."""

    type: Literal["local", "s3"] = "local"
    path: str = ".tower/backups"
    endpoint: str = ""
    bucket: str = ""
    prefix: str = ""
    region: str = "us-east-1"
    access_key_env: str = "AWS_ACCESS_KEY_ID"
    secret_key_env: str = "AWS_SECRET_ACCESS_KEY"
    session_token_env: str = "AWS_SESSION_TOKEN"


class RetentionSpec(Section):
    """``[backup.retention]``: the newest ``last`` backups, then one per hour, day and ISO week."""

    last: int = Field(default=4, ge=0)
    hourly: int = Field(default=24, ge=0)
    daily: int = Field(default=7, ge=0)
    weekly: int = Field(default=4, ge=0)


class EncryptionSpec(Section):
    """``[backup.encryption]``: age recipients the backups are encrypted to, on this machine.

    Only public recipients live in tower.toml. The identity (the private key)
    that decrypts them for ``verify`` and ``restore`` is read from the
    environment variable named by ``identity_env`` or from ``identity_file``;
    tower never stores it.
    """

    recipients: list[str] = Field(default_factory=list)
    identity_env: str = ""
    identity_file: str = ""

    @field_validator("recipients")
    @classmethod
    def _recipients(cls, value: list[str]) -> list[str]:
        from controltower.backup.crypto import parse_recipient

        for text in value:
            try:
                parse_recipient(text)
            except ValueError as exc:
                raise PydanticCustomError("recipient", "{reason}", {"reason": str(exc)}) from None
        return value

    @property
    def enabled(self) -> bool:
        return bool(self.recipients)


class PitrSpec(Section):
    """``[backup.pitr]``: point-in-time recovery with pgBackRest for a cluster the team runs.

    WAL is archived continuously by PostgreSQL's ``archive_command`` (set up by
    ``tower backup setup``); ``tower backup run`` takes a full backup when the
    newest full is older than ``full_every`` and a differential one otherwise.
    """

    pg_data: str = ""
    stanza: str = ""
    port: int = Field(default=5432, ge=1, le=65535)
    socket: str = "/var/run/postgresql"
    user: str = "postgres"
    pgbackrest: str = "pgbackrest"
    pg_bin: str = ""
    config: str = ""
    full_every: Duration = 7 * 86400.0
    retention_full: int = Field(default=2, ge=1, le=100)
    process_max: int = Field(default=2, ge=1, le=64)
    archive_timeout: Duration = 60.0


class VerifyCheckSpec(Section):
    """``[[backup.checks]]``: a query run on the restored copy, with conditions on its answer.

    The conditions see ``rows`` (how many rows came back), ``value`` (the first
    column of the first row) and ``row.<column>`` (the first row by column name).
    """

    name: str
    query: str
    conditions: list[ConditionText] = Field(default_factory=lambda: ["rows >= 1"])  # type: ignore[arg-type]


class BackupSpec(Section):
    """``[backup]``: what to back up, where, how often, and the recovery objectives."""

    database_url: SecretStr | None = None
    method: Literal["dump", "pitr"] = "dump"
    pitr: PitrSpec = Field(default_factory=PitrSpec)
    schedule: str = ""
    destination: DestinationSpec = Field(default_factory=DestinationSpec)
    retention: RetentionSpec = Field(default_factory=RetentionSpec)
    rto: Duration = 3600.0
    rpo: Duration = 900.0
    heartbeat: str = ""
    verify_queries: list[str] = Field(default_factory=list)
    checks: list[VerifyCheckSpec] = Field(default_factory=list)
    config_files: list[str] = Field(
        default_factory=lambda: ["tower.toml", "fly.toml", "Dockerfile"]
    )
    compress: int = Field(default=6, ge=0, le=9)
    jobs: int = Field(default=1, ge=1, le=32)
    pg_bin: str = ""
    scratch_url: SecretStr | None = None
    exact_count_limit: int = Field(default=1_000_000, ge=0)
    timeout: Duration = 6 * 3600.0
    encryption: EncryptionSpec = Field(default_factory=EncryptionSpec)
    verify_schedule: str = ""
    max_verify_age: Duration = 7 * 86400.0

    @field_validator("heartbeat")
    @classmethod
    def _heartbeat(cls, value: str) -> str:
        text = value.strip()
        if not text or text.startswith(("http://", "https://")) or _MONITOR_NAME.match(text):
            return text
        raise PydanticCustomError(
            "heartbeat",
            'must be an http(s) URL to ping or the name of a heartbeat monitor (got "{value}")',
            {"value": value},
        )

    @field_validator("schedule", "verify_schedule")
    @classmethod
    def _schedule(cls, value: str) -> str:
        text = value.strip()
        if not text:
            return text
        every = _EVERY.match(text)
        if every:
            try:
                seconds = parse_duration(every.group(1))
            except ValueError:
                seconds = 0.0
            if seconds <= 0:
                raise PydanticCustomError(
                    "schedule",
                    'must be "@every <duration>" with a positive duration like 15m (got "{value}")',
                    {"value": value},
                )
            return text
        if not croniter.is_valid(text):
            raise PydanticCustomError(
                "schedule",
                'must be a cron expression like "*/15 * * * *" or "@every 15m" (got "{value}")',
                {"value": value},
            )
        return text

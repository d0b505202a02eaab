from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr

from controltower.spec.base import Section
from controltower.units import Duration


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


class RetentionSpec(Section):
    hourly: int = Field(default=24, ge=0)
    daily: int = Field(default=7, ge=0)
    weekly: int = Field(default=4, ge=0)


class BackupSpec(Section):
    """``[backup]``: what to back up, where, how often, and the recovery objectives."""

    database_url: SecretStr | None = None
    schedule: str = ""
    destination: DestinationSpec = Field(default_factory=DestinationSpec)
    retention: RetentionSpec = Field(default_factory=RetentionSpec)
    rto: Duration = 3600.0
    rpo: Duration = 900.0
    heartbeat: str = ""
    verify_queries: list[str] = Field(default_factory=list)
    config_files: list[str] = Field(
        default_factory=lambda: ["tower.toml", "fly.toml", "Dockerfile"]
    )

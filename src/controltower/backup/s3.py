"""S3-compatible storage through ``obstore`` (the Rust ``object_store`` crate, as used by Arrow).

obstore signs with AWS Signature V4, uploads objects larger than one part as
multipart uploads with parts sent concurrently (so there is no 5 GiB limit),
retries dropped connections, timeouts and 5xx answers with exponential
backoff, and falls back to the standard credential chain (environment, web
identity, ECS and EC2 instance roles) when the spec's named variables are
unset. Path-style addresses are used unless the endpoint is AWS's own, so
every S3-compatible store works (MinIO, R2, B2, Tigris).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from controltower.exceptions import BackupError
from controltower.spec.backup import DestinationSpec

if TYPE_CHECKING:
    from obstore.store import S3Store

MIN_PART = 8 * 1024 * 1024
MAX_PARTS = 10_000
_STREAM_CHUNK = 8 * 1024 * 1024


def part_size(size: int) -> int:
    """A part size that keeps an object of ``size`` bytes under S3's 10,000 parts."""
    needed = -(-size // (MAX_PARTS - 1))
    return max(MIN_PART, -(-needed // (1024 * 1024)) * 1024 * 1024)


@dataclass(frozen=True)
class StoredItem:
    key: str
    size: int


class S3Client:
    """One bucket: put, get, delete and list, streamed from and to files."""

    def __init__(
        self,
        *,
        endpoint: str,
        bucket: str,
        region: str = "us-east-1",
        access_key: str = "",
        secret_key: str = "",
        session_token: str = "",
        max_retries: int = 10,
        retry_timeout: float = 180.0,
        concurrency: int = 4,
    ) -> None:
        from obstore.store import S3Store

        self.endpoint = endpoint.rstrip("/")
        self.bucket = bucket
        self.concurrency = concurrency
        config: dict[str, Any] = {"region": region}
        if self.endpoint:
            config["endpoint"] = self.endpoint
            config["virtual_hosted_style_request"] = False
        if access_key and secret_key:
            config["access_key_id"] = access_key
            config["secret_access_key"] = secret_key
            if session_token:
                config["token"] = session_token
        client: dict[str, Any] = {
            "allow_http": self.endpoint.startswith("http://"),
            "connect_timeout": timedelta(seconds=10),
            "timeout": timedelta(seconds=300),
        }
        retry: dict[str, Any] = {
            "max_retries": max_retries,
            "retry_timeout": timedelta(seconds=retry_timeout),
            "backoff": {
                "init_backoff": timedelta(milliseconds=100),
                "max_backoff": timedelta(seconds=15),
                "base": 2,
            },
        }
        try:
            self.store: S3Store = S3Store(
                bucket,
                config=config,  # type: ignore[arg-type]
                client_options=client,  # type: ignore[arg-type]
                retry_config=retry,  # type: ignore[arg-type]
            )
        except Exception as exc:
            raise BackupError(
                f"cannot set up S3 access to bucket {bucket!r}: {_reason(exc)}",
                hint="check [backup.destination] endpoint, bucket and region",
            ) from None

    @classmethod
    def from_spec(cls, spec: DestinationSpec, environ: Mapping[str, str] | None = None) -> S3Client:
        """A client for ``[backup.destination]``; keys from the variables it names.

        When those variables are unset, obstore's own credential chain applies
        (``AWS_*`` variables, web identity, ECS task and EC2 instance roles).
        """
        env = os.environ if environ is None else environ
        if not spec.bucket:
            raise BackupError(
                "[backup.destination] type is s3 but no bucket is set",
                hint='add bucket = "my-backups" to [backup.destination]',
            )
        access = env.get(spec.access_key_env, "")
        secret = env.get(spec.secret_key_env, "")
        if bool(access) != bool(secret):
            missing = spec.secret_key_env if access else spec.access_key_env
            raise BackupError(
                f"S3 credentials are incomplete: ${missing} is not set",
                hint="set both the access key and the secret key variables, or neither "
                "to use the instance's role",
            )
        return cls(
            endpoint=spec.endpoint,
            bucket=spec.bucket,
            region=spec.region,
            access_key=access,
            secret_key=secret,
            session_token=env.get(spec.session_token_env, ""),
        )

    def describe(self, key: str = "") -> str:
        return f"s3://{self.bucket}/{key}" if key else f"s3://{self.bucket}"

    def put_file(self, key: str, path: Path, *, sha256: str = "") -> None:
        import obstore

        size = path.stat().st_size
        try:
            obstore.put(
                self.store,
                key,
                path,
                chunk_size=part_size(size),
                max_concurrency=self.concurrency,
                use_multipart=size > MIN_PART,
            )
        except Exception as exc:
            raise self._error("upload", key, exc) from None

    def put_bytes(self, key: str, data: bytes) -> None:
        import obstore

        try:
            obstore.put(self.store, key, data, use_multipart=False)
        except Exception as exc:
            raise self._error("upload", key, exc) from None

    def get_file(self, key: str, path: Path) -> None:
        import obstore

        try:
            result = obstore.get(self.store, key)
            with path.open("wb") as out:
                for chunk in result.stream(min_chunk_size=_STREAM_CHUNK):
                    out.write(memoryview(chunk))
        except Exception as exc:
            path.unlink(missing_ok=True)
            raise self._error("download", key, exc) from None

    def get_bytes(self, key: str) -> bytes:
        import obstore

        try:
            return bytes(obstore.get(self.store, key).bytes())
        except Exception as exc:
            raise self._error("download", key, exc) from None

    def delete(self, key: str) -> None:
        import obstore

        try:
            obstore.delete(self.store, key)
        except Exception as exc:
            if _not_found(exc):
                return
            raise self._error("delete", key, exc) from None

    def list(self, prefix: str = "") -> list[StoredItem]:
        import obstore

        found: list[StoredItem] = []
        try:
            for batch in obstore.list(self.store, prefix=prefix or None):
                for meta in batch:
                    found.append(StoredItem(str(meta["path"]), int(meta["size"])))
        except Exception as exc:
            raise self._error("list", prefix, exc) from None
        found.sort(key=lambda item: item.key)
        return found

    def close(self) -> None:
        return None

    def _error(self, action: str, key: str, exc: Exception) -> BackupError:
        if _not_found(exc):
            return BackupError(
                f"{self.describe(key)} is missing",
                hint="run `tower backup list` to see the backups that exist",
            )
        return BackupError(
            f"S3 {action} of {self.describe(key)} failed: {_reason(exc)}",
            hint="check the endpoint, the bucket, the credentials and their permissions",
        )


def _not_found(exc: Exception) -> bool:
    from obstore.exceptions import NotFoundError

    return isinstance(exc, NotFoundError | FileNotFoundError)


def _reason(exc: Exception) -> str:
    """The first line of an obstore error, which carries no credentials."""
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else type(exc).__name__

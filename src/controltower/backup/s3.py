"""A small S3 client: PUT, GET, DELETE and ListObjectsV2, signed with AWS Signature V4.

Path-style addressing (``<endpoint>/<bucket>/<key>``), which every S3-compatible
store accepts (AWS, MinIO, Cloudflare R2, Backblaze B2, Tigris). Objects are
streamed from and to files; a single PUT carries up to 5 GiB.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from urllib.parse import quote, urlsplit

import httpx

from controltower.clock import system_clock
from controltower.exceptions import BackupError
from controltower.spec.backup import DestinationSpec
from controltower.typing import Clock

EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
MAX_PUT = 5 * 1024**3
_NS = "{http://s3.amazonaws.com/doc/2006-03-01/}"
_CHUNK = 1024 * 1024


def uri_encode(text: str, *, keep_slash: bool) -> str:
    """RFC 3986 encoding as SigV4 wants it: only A-Z a-z 0-9 - _ . ~ stay as they are."""
    return quote(text, safe="-_.~/" if keep_slash else "-_.~")


def canonical_query(params: Mapping[str, str]) -> str:
    pairs = sorted(
        (uri_encode(k, keep_slash=False), uri_encode(v, keep_slash=False))
        for k, v in params.items()
    )
    return "&".join(f"{k}={v}" for k, v in pairs)


def signing_key(secret: str, date: str, region: str, service: str) -> bytes:
    key = hmac.new(f"AWS4{secret}".encode(), date.encode(), hashlib.sha256).digest()
    for part in (region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return key


@dataclass(frozen=True)
class Credentials:
    access_key: str
    secret_key: str
    session_token: str = ""


def sign(
    *,
    method: str,
    path: str,
    query: Mapping[str, str],
    headers: Mapping[str, str],
    payload_sha256: str,
    credentials: Credentials,
    region: str,
    when: datetime,
    service: str = "s3",
) -> dict[str, str]:
    """The headers to add to a request so that S3 accepts it (``Authorization`` and friends).

    ``path`` is the raw (not yet encoded) path; ``headers`` must include ``host``.
    """
    amz_date = when.strftime("%Y%m%dT%H%M%SZ")
    date = amz_date[:8]
    signed = {k.lower(): " ".join(str(v).split()) for k, v in headers.items()}
    signed["x-amz-date"] = amz_date
    signed["x-amz-content-sha256"] = payload_sha256
    if credentials.session_token:
        signed["x-amz-security-token"] = credentials.session_token
    names = sorted(signed)
    canonical = "\n".join(
        [
            method,
            uri_encode(path, keep_slash=True),
            canonical_query(query),
            "".join(f"{name}:{signed[name]}\n" for name in names),
            ";".join(names),
            payload_sha256,
        ]
    )
    scope = f"{date}/{region}/{service}/aws4_request"
    to_sign = "\n".join(
        ["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()]
    )
    key = signing_key(credentials.secret_key, date, region, service)
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    out = {
        "x-amz-date": amz_date,
        "x-amz-content-sha256": payload_sha256,
        "authorization": (
            f"AWS4-HMAC-SHA256 Credential={credentials.access_key}/{scope}, "
            f"SignedHeaders={';'.join(names)}, Signature={signature}"
        ),
    }
    if credentials.session_token:
        out["x-amz-security-token"] = credentials.session_token
    return out


@dataclass(frozen=True)
class S3Object:
    key: str
    size: int
    modified: str


class S3Client:
    """One bucket on one S3-compatible endpoint."""

    def __init__(
        self,
        *,
        endpoint: str,
        bucket: str,
        region: str,
        credentials: Credentials,
        timeout: float = 60.0,
        clock: Clock = system_clock,
    ) -> None:
        self.endpoint = endpoint.rstrip("/")
        self.bucket = bucket
        self.region = region
        self.credentials = credentials
        self.clock = clock
        self.host = urlsplit(self.endpoint).netloc
        self.base_path = urlsplit(self.endpoint).path.rstrip("/")
        self.http = httpx.Client(timeout=timeout)

    @classmethod
    def from_spec(cls, spec: DestinationSpec, environ: Mapping[str, str] | None = None) -> S3Client:
        env = os.environ if environ is None else environ
        missing = [n for n in (spec.access_key_env, spec.secret_key_env) if not env.get(n)]
        if missing:
            raise BackupError(
                f"S3 credentials are missing: {', '.join(missing)} not set",
                hint="export them, or name other variables in "
                "[backup.destination] access_key_env / secret_key_env",
            )
        if not spec.endpoint or not spec.bucket:
            raise BackupError(
                "[backup.destination] of type s3 needs endpoint and bucket",
                hint='e.g. endpoint = "https://s3.us-east-1.amazonaws.com", bucket = "my-backups"',
            )
        credentials = Credentials(
            env[spec.access_key_env],
            env[spec.secret_key_env],
            env.get(spec.session_token_env, ""),
        )
        return cls(
            endpoint=spec.endpoint, bucket=spec.bucket, region=spec.region, credentials=credentials
        )

    def close(self) -> None:
        self.http.close()

    def _request(
        self,
        method: str,
        key: str = "",
        *,
        query: Mapping[str, str] | None = None,
        payload_sha256: str = EMPTY_SHA256,
        content: bytes | Iterator[bytes] | None = None,
        headers: Mapping[str, str] | None = None,
        stream: bool = False,
    ) -> httpx.Response:
        path = f"{self.base_path}/{self.bucket}" + (f"/{key}" if key else "")
        params = dict(query or {})
        base_headers = {"host": self.host, **(headers or {})}
        now = self.clock.now()
        signed = sign(
            method=method,
            path=path,
            query=params,
            headers=base_headers,
            payload_sha256=payload_sha256,
            credentials=self.credentials,
            region=self.region,
            when=now,
        )
        url = f"{self.endpoint.split('://', 1)[0]}://{self.host}{uri_encode(path, keep_slash=True)}"
        if params:
            url += "?" + canonical_query(params)
        request = self.http.build_request(
            method, url, headers={**(headers or {}), **signed}, content=content
        )
        try:
            response = self.http.send(request, stream=stream)
        except httpx.HTTPError as exc:
            raise BackupError(
                f"S3 {method} {self.describe(key)} failed: {exc}",
                hint="check [backup.destination] endpoint and that the store is reachable",
            ) from None
        if response.status_code >= 300:
            if stream:
                response.read()
            raise BackupError(
                f"S3 {method} {self.describe(key)} answered {response.status_code}: "
                f"{_error_text(response.text)}",
                hint="check the bucket, the credentials and their permissions",
            )
        return response

    def describe(self, key: str = "") -> str:
        return f"s3://{self.bucket}/{key}" if key else f"s3://{self.bucket}"

    def put_file(self, key: str, path: Path, *, sha256: str) -> None:
        size = path.stat().st_size
        if size > MAX_PUT:
            raise BackupError(
                f"{path.name} is {size} bytes; a single S3 PUT carries at most 5 GiB",
                hint="use a local destination, or raise [backup] compress",
            )

        def chunks() -> Iterator[bytes]:
            with path.open("rb") as handle:
                while block := handle.read(_CHUNK):
                    yield block

        self._request(
            "PUT",
            key,
            payload_sha256=sha256,
            content=chunks(),
            headers={"content-length": str(size), "content-type": "application/octet-stream"},
        )

    def put_bytes(self, key: str, data: bytes, content_type: str = "application/json") -> None:
        self._request(
            "PUT",
            key,
            payload_sha256=hashlib.sha256(data).hexdigest(),
            content=data,
            headers={"content-type": content_type},
        )

    def get_file(self, key: str, path: Path) -> None:
        response = self._request("GET", key, stream=True)
        try:
            with path.open("wb") as out:
                for block in response.iter_bytes(_CHUNK):
                    out.write(block)
        finally:
            response.close()

    def get_bytes(self, key: str) -> bytes:
        return self._request("GET", key).content

    def delete(self, key: str) -> None:
        self._request("DELETE", key)

    def list(self, prefix: str = "") -> list[S3Object]:
        objects: list[S3Object] = []
        token = ""
        while True:
            query = {"list-type": "2", "prefix": prefix}
            if token:
                query["continuation-token"] = token
            root = ET.fromstring(self._request("GET", query=query).content)
            for item in root.iter(f"{_NS}Contents"):
                objects.append(
                    S3Object(
                        key=item.findtext(f"{_NS}Key", ""),
                        size=int(item.findtext(f"{_NS}Size", "0")),
                        modified=item.findtext(f"{_NS}LastModified", ""),
                    )
                )
            token = root.findtext(f"{_NS}NextContinuationToken", "")
            if root.findtext(f"{_NS}IsTruncated", "false") != "true" or not token:
                return objects


def _error_text(body: str) -> str:
    try:
        root = ET.fromstring(body)
    except ET.ParseError:
        return body[:200] or "no body"
    code = root.findtext("Code") or ""
    message = root.findtext("Message") or ""
    return f"{code}: {message}".strip(": ") or body[:200]

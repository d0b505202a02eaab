"""A local S3 server for tests: the documented REST subset tower uses, with SigV4 checked.

Implements, path-style (``/<bucket>/<key>``): PutObject, GetObject, HeadObject,
DeleteObject and ListObjectsV2 (``GET /<bucket>?list-type=2`` with ``prefix``,
``max-keys`` and ``continuation-token``). Every request must carry a valid
AWS Signature Version 4 ``Authorization`` header; the signature is recomputed
here from the request as received, independently of tower's client, and a
mismatch answers 403 ``SignatureDoesNotMatch`` like S3 does. A payload hash
that does not match the body answers 400 ``XAmzContentSHA256Mismatch``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, unquote, urlsplit
from xml.sax.saxutils import escape

_NS = "http://s3.amazonaws.com/doc/2006-03-01/"


@dataclass
class FakeS3:
    """``with FakeS3(buckets=["b"]) as s3:`` serves on ``s3.endpoint``."""

    buckets: list[str] = field(default_factory=lambda: ["backups"])
    access_key: str = "AKIDTOWERTEST"
    secret_key: str = "tower/test/secret+key"
    region: str = "us-east-1"
    page_size: int = 1000
    objects: dict[str, dict[str, bytes]] = field(default_factory=dict)
    requests: list[tuple[str, str, int]] = field(default_factory=list)

    def __post_init__(self) -> None:
        for bucket in self.buckets:
            self.objects.setdefault(bucket, {})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> FakeS3:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def environ(self) -> dict[str, str]:
        return {"AWS_ACCESS_KEY_ID": self.access_key, "AWS_SECRET_ACCESS_KEY": self.secret_key}


def _encode(text: str, keep_slash: bool) -> str:
    unreserved = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.~"
    out = []
    for byte in text.encode():
        char = chr(byte)
        if char in unreserved or (keep_slash and char == "/"):
            out.append(char)
        else:
            out.append(f"%{byte:02X}")
    return "".join(out)


def _hmac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode(), hashlib.sha256).digest()


def _handler(s3: FakeS3) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            pass

        def _error(self, status: int, code: str, message: str) -> None:
            body = (
                f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code>'
                f"<Message>{escape(message)}</Message></Error>"
            ).encode()
            self._send(status, body, "application/xml")

        def _send(self, status: int, body: bytes, kind: str = "application/octet-stream") -> None:
            s3.requests.append((self.command, self.path, status))
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _body(self) -> bytes | None:
            if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                return None
            length = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(length) if length else b""

        def _authorized(self, body: bytes) -> bool:
            header = self.headers.get("Authorization", "")
            if not header.startswith("AWS4-HMAC-SHA256 "):
                self._error(403, "AccessDenied", "missing or unsupported Authorization")
                return False
            parts = dict(
                item.strip().split("=", 1) for item in header[len("AWS4-HMAC-SHA256 ") :].split(",")
            )
            access, date, region, service, terminal = parts["Credential"].split("/")
            if access != s3.access_key:
                self._error(403, "InvalidAccessKeyId", "the access key does not exist")
                return False
            amz_date = self.headers.get("x-amz-date", "")
            try:
                sent = datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
            except ValueError:
                self._error(403, "AccessDenied", "x-amz-date is missing or malformed")
                return False
            if abs((datetime.now(UTC) - sent).total_seconds()) > 900:
                self._error(403, "RequestTimeTooSkewed", "the request time is too skewed")
                return False
            payload = self.headers.get("x-amz-content-sha256", "")
            if payload != "UNSIGNED-PAYLOAD" and payload != hashlib.sha256(body).hexdigest():
                self._error(400, "XAmzContentSHA256Mismatch", "payload hash mismatch")
                return False
            url = urlsplit(self.path)
            names = parts["SignedHeaders"].split(";")
            if "host" not in names:
                self._error(403, "AccessDenied", "host must be signed")
                return False
            query = sorted(
                (_encode(k, False), _encode(v, False))
                for k, v in parse_qsl(url.query, keep_blank_values=True)
            )
            canonical = "\n".join(
                [
                    self.command,
                    _encode(unquote(url.path), True),
                    "&".join(f"{k}={v}" for k, v in query),
                    "".join(
                        f"{n}:{' '.join((self.headers.get(n) or '').split())}\n" for n in names
                    ),
                    ";".join(names),
                    payload,
                ]
            )
            scope = f"{date}/{region}/{service}/{terminal}"
            to_sign = "\n".join(
                [
                    "AWS4-HMAC-SHA256",
                    amz_date,
                    scope,
                    hashlib.sha256(canonical.encode()).hexdigest(),
                ]
            )
            key = _hmac(f"AWS4{s3.secret_key}".encode(), date)
            for part in (region, service, terminal):
                key = _hmac(key, part)
            expected = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
            if not hmac.compare_digest(expected, parts.get("Signature", "")):
                self._error(403, "SignatureDoesNotMatch", "the signature does not match")
                return False
            return True

        def _target(self) -> tuple[str, str] | None:
            path = unquote(urlsplit(self.path).path).lstrip("/")
            bucket, _, key = path.partition("/")
            if bucket not in s3.objects:
                self._error(404, "NoSuchBucket", f"bucket {bucket} does not exist")
                return None
            return bucket, key

        def _handle(self) -> None:
            body = self._body()
            if body is None:
                self._error(411, "MissingContentLength", "send a Content-Length")
                return
            if not self._authorized(body):
                return
            target = self._target()
            if target is None:
                return
            bucket, key = target
            store = s3.objects[bucket]
            if self.command == "PUT" and key:
                store[key] = body
                self._send(200, b"")
            elif self.command in ("GET", "HEAD") and not key:
                self._list(bucket)
            elif self.command in ("GET", "HEAD"):
                if key not in store:
                    self._error(404, "NoSuchKey", "the key does not exist")
                else:
                    self._send(200, store[key])
            elif self.command == "DELETE" and key:
                store.pop(key, None)
                self._send(204, b"")
            else:
                self._error(405, "MethodNotAllowed", f"{self.command} is not supported here")

        def _list(self, bucket: str) -> None:
            params = dict(parse_qsl(urlsplit(self.path).query, keep_blank_values=True))
            if params.get("list-type") != "2":
                self._error(400, "InvalidArgument", "only ListObjectsV2 is implemented")
                return
            prefix = params.get("prefix", "")
            limit = min(int(params.get("max-keys", "1000")), s3.page_size)
            after = ""
            if params.get("continuation-token"):
                after = base64.urlsafe_b64decode(params["continuation-token"]).decode()
            keys = sorted(k for k in s3.objects[bucket] if k.startswith(prefix) and k > after)
            page, rest = keys[:limit], keys[limit:]
            items = "".join(
                f"<Contents><Key>{escape(k)}</Key><Size>{len(s3.objects[bucket][k])}</Size>"
                f"<LastModified>2026-01-01T00:00:00.000Z</LastModified></Contents>"
                for k in page
            )
            token = ""
            if rest:
                token = base64.urlsafe_b64encode(page[-1].encode()).decode()
            body = (
                f'<?xml version="1.0" encoding="UTF-8"?>\n<ListBucketResult xmlns="{_NS}">'
                f"<Name>{bucket}</Name><Prefix>{escape(prefix)}</Prefix>"
                f"<KeyCount>{len(page)}</KeyCount><MaxKeys>{limit}</MaxKeys>"
                f"<IsTruncated>{'true' if rest else 'false'}</IsTruncated>{items}"
                + (f"<NextContinuationToken>{token}</NextContinuationToken>" if token else "")
                + "</ListBucketResult>"
            ).encode()
            self._send(200, body, "application/xml")

        do_GET = do_PUT = do_DELETE = do_HEAD = _handle

    return Handler


__all__ = ["FakeS3"]

"""Resend's ``POST /emails``, as documented at https://resend.com/docs/api-reference.

- ``Authorization: Bearer <key>``: absent -> 401 ``missing_api_key``, wrong ->
  403 ``invalid_api_key``.
- JSON body with ``from``, ``to`` (string or list, at most 50), ``subject`` and
  ``html`` or ``text``: a missing field -> 422 ``missing_required_field``, a bad
  one -> 422 ``validation_error``.
- ``Idempotency-Key`` (1-256 characters, else 400 ``invalid_idempotency_key``):
  the same key and body within 24h returns the first email's id and sends
  nothing; the same key with another body -> 409 ``invalid_idempotent_request``.
- Errors are ``{"statusCode", "name", "message"}``; ``fail_next`` queues
  answers such as 429 ``rate_limit_exceeded`` (with ``retry-after``) or 500
  ``application_error``.
"""

from __future__ import annotations

import json
import re
import uuid
from typing import Any

from tests.fakes.server import FakeServer, Request, Response

ADDRESS = re.compile(r"^(?:[^<>]*<)?[^@\s<>]+@[^@\s<>]+\.[^@\s<>]+>?$")


def _error(status: int, name: str, message: str, **headers: str) -> Response:
    body = json.dumps({"statusCode": status, "name": name, "message": message}).encode()
    return Response(status, body, {"Content-Type": "application/json", **headers})


class FakeResend(FakeServer):
    def __init__(self, api_key: str = "re_test_123456789", port: int | None = None) -> None:
        super().__init__(port)
        self.api_key = api_key
        self.emails: list[dict[str, Any]] = []
        self.fail_next: list[Response] = []
        self._idempotent: dict[str, tuple[bytes, str]] = {}

    def rate_limited(self, retry_after: int = 1) -> Response:
        return _error(
            429,
            "rate_limit_exceeded",
            "Too many requests. You can only make 2 requests per second.",
            **{"retry-after": str(retry_after), "ratelimit-limit": "2", "ratelimit-remaining": "0"},
        )

    def server_error(self) -> Response:
        return _error(500, "application_error", "An unexpected error occurred.")

    def handle(self, request: Request) -> Response:
        if request.path != "/emails":
            return _error(404, "not_found", "The requested endpoint does not exist.")
        if request.method != "POST":
            return _error(
                405, "method_not_allowed", "Method is not allowed for the requested path."
            )
        authorization = request.header("Authorization")
        if not authorization.startswith("Bearer ") or not authorization[7:]:
            return _error(401, "missing_api_key", "Missing API key in the authorization header.")
        if authorization[7:] != self.api_key:
            return _error(403, "invalid_api_key", "API key is invalid.")
        with self.lock:
            if self.fail_next:
                return self.fail_next.pop(0)
        try:
            body = json.loads(request.body)
        except ValueError:
            return _error(422, "validation_error", "Invalid JSON body.")
        problem = self._validate(body)
        if problem is not None:
            return problem
        key = request.header("Idempotency-Key")
        if "idempotency-key" in request.headers and not 1 <= len(key) <= 256:
            return _error(400, "invalid_idempotency_key", "The key must be between 1-256 chars.")
        with self.lock:
            if key and key in self._idempotent:
                first_body, email_id = self._idempotent[key]
                if first_body != request.body:
                    return _error(
                        409,
                        "invalid_idempotent_request",
                        "Same idempotency key used with a different request payload.",
                    )
                return self._ok(email_id)
            email_id = str(uuid.uuid4())
            if key:
                self._idempotent[key] = (request.body, email_id)
            self.emails.append({**body, "id": email_id, "idempotency_key": key})
        return self._ok(email_id)

    def _ok(self, email_id: str) -> Response:
        return Response(
            200, json.dumps({"id": email_id}).encode(), {"Content-Type": "application/json"}
        )

    def _validate(self, body: Any) -> Response | None:
        if not isinstance(body, dict):
            return _error(422, "validation_error", "The body must be a JSON object.")
        missing = [name for name in ("from", "to", "subject") if not body.get(name)]
        if not body.get("html") and not body.get("text"):
            missing.append("html or text")
        if missing:
            return _error(
                422, "missing_required_field", f"Missing required fields: {', '.join(missing)}."
            )
        recipients = body["to"] if isinstance(body["to"], list) else [body["to"]]
        if len(recipients) > 50:
            return _error(422, "validation_error", "Too many recipients: at most 50.")
        for address in [body["from"], *recipients]:
            if not isinstance(address, str) or not ADDRESS.match(address):
                return _error(
                    422,
                    "validation_error",
                    f"Invalid `to` field. The email address needs to follow the "
                    f"`email@example.com` or `Name <email@example.com>` format: {address!r}",
                )
        return None

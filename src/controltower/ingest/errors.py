"""Why ingestion refused a request; each carries the HTTP status to answer with."""

from __future__ import annotations

from controltower.exceptions import IngestError


class Rejected(IngestError):
    """A request ingestion will not take: ``status`` is the HTTP answer."""

    status = 400

    def __init__(self, message: str, *, status: int | None = None, retry_after: int = 0) -> None:
        super().__init__(message)
        if status is not None:
            self.status = status
        self.retry_after = retry_after


class AuthFailed(Rejected):
    status = 401


class TooLarge(Rejected):
    status = 413


class RateLimited(Rejected):
    status = 429

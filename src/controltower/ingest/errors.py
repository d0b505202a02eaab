"""Why ingestion refused a request; each carries the HTTP status to answer with.

``cap`` names the ``[server]`` setting a request went over (``max_body_size``,
``max_json_depth``...), so the answer and the rejection metric say which.
"""

from __future__ import annotations

from controltower.exceptions import IngestError


class Rejected(IngestError):
    """A request ingestion will not take: ``status`` is the HTTP answer."""

    status = 400

    def __init__(
        self, message: str, *, status: int | None = None, retry_after: int = 0, cap: str = ""
    ) -> None:
        super().__init__(message)
        if status is not None:
            self.status = status
        self.retry_after = retry_after
        self.cap = cap


class AuthFailed(Rejected):
    status = 401


class TooLarge(Rejected):
    status = 413


class RateLimited(Rejected):
    status = 429

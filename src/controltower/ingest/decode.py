"""Request bodies: decompressed (gzip, deflate, br) without exceeding a size cap."""

from __future__ import annotations

import zlib

from controltower.ingest.errors import Rejected, TooLarge

try:  # pragma: no cover - optional
    import brotli as _brotli
except ImportError:  # pragma: no cover - optional
    _brotli = None


def decompress(body: bytes, encoding: str, *, limit: int) -> bytes:
    """The body decoded per ``Content-Encoding``; ``TooLarge`` past ``limit`` bytes."""
    encoding = encoding.strip().lower()
    if encoding in ("", "identity"):
        data = body
    elif encoding in ("gzip", "x-gzip", "deflate"):
        data = _inflate(body, encoding, limit)
    elif encoding == "br" and _brotli is not None:
        try:
            data = _brotli.decompress(body)
        except _brotli.error:
            raise Rejected("the body is not valid brotli data") from None
    else:
        raise Rejected(f"Content-Encoding {encoding!r} is not supported", status=415)
    if len(data) > limit:
        raise TooLarge(f"the decompressed body exceeds {limit} bytes")
    return data


def _inflate(body: bytes, encoding: str, limit: int) -> bytes:
    if encoding == "deflate":
        wbits = zlib.MAX_WBITS if body[:1] == b"\x78" else -zlib.MAX_WBITS
    else:
        wbits = zlib.MAX_WBITS | 16
    inflater = zlib.decompressobj(wbits)
    try:
        data = inflater.decompress(body, limit + 1)
    except zlib.error:
        raise Rejected(f"the body is not valid {encoding} data") from None
    if len(data) > limit or inflater.unconsumed_tail:
        raise TooLarge(f"the decompressed body exceeds {limit} bytes")
    return data

"""Request bodies: decompressed (gzip, deflate, br) by streaming, never past a cap.

Every encoding is decoded incrementally with an output cap, so the work done
for a body is bounded by the cap, whatever it would expand to: the decoded size
may not exceed ``limit`` bytes, nor ``ratio`` times the encoded size (once past
``RATIO_FLOOR`` bytes, so small bodies always decode). ``decode_prefix`` decodes
only the first bytes (an envelope's header line) for authentication.
"""

from __future__ import annotations

import zlib

import brotli

from controltower.ingest.errors import Rejected, TooLarge

RATIO_FLOOR = 64 * 1024
# A brotli decoder fills its whole window (up to 16 MiB) before it honours an output
# limit, so the window bounds the work per call: SDKs (Python's brotli, Node's zlib)
# use 22 bits (4 MiB); larger windows are refused before any decoding.
MAX_BROTLI_WINDOW_BITS = 22
ENCODINGS = ("identity", "gzip", "x-gzip", "deflate", "br")


def cap_for(size: int, *, limit: int, ratio: int) -> int:
    """The most bytes a body of ``size`` encoded bytes may decode to."""
    return min(limit, max(RATIO_FLOOR, size * ratio))


def _encoding(value: str) -> str:
    encoding = value.strip().lower()
    if encoding in ("", "identity"):
        return "identity"
    if encoding not in ENCODINGS:
        raise Rejected(
            f"Content-Encoding {value.strip()[:40]!r} is not supported (gzip, deflate, br or none)",
            status=415,
        )
    return encoding


def decompress(body: bytes, encoding: str, *, limit: int, ratio: int = 0) -> bytes:
    """The body decoded per ``Content-Encoding``; ``TooLarge`` past the cap (``limit``
    bytes, or ``ratio`` times the body's size when ``ratio`` is set)."""
    kind = _encoding(encoding)
    if kind == "identity":
        return body
    cap = cap_for(len(body), limit=limit, ratio=ratio) if ratio else limit
    data, complete = _decode(body, kind, cap + 1)
    if len(data) > cap:
        if cap < limit:
            raise TooLarge(
                f"the body decompresses to more than {ratio} times its size "
                f"([server] max_decompression_ratio = {ratio})",
                cap="max_decompression_ratio",
            )
        raise TooLarge(
            f"the decompressed body exceeds {limit} bytes ([server] max_event_size)",
            cap="max_event_size",
        )
    if not complete:
        raise Rejected(f"the body is truncated {kind} data")
    return data


def decode_prefix(body: bytes, encoding: str, size: int) -> bytes:
    """At most the first ``size`` decoded bytes (fewer if the body is shorter)."""
    kind = _encoding(encoding)
    if kind == "identity":
        return body[:size]
    data, _ = _decode(body, kind, size)
    return data[:size]


def _decode(body: bytes, kind: str, most: int) -> tuple[bytes, bool]:
    """Decode until ``most`` bytes are out or the input ends: (output, whether the
    stream ended)."""
    if kind == "br":
        return _brotli(body, most)
    return _inflate(body, kind, most)


def _inflate(body: bytes, kind: str, most: int) -> tuple[bytes, bool]:
    if kind == "deflate":
        # RFC 9110 says zlib format; some clients send raw deflate. The zlib header
        # is a CMF byte 0x?8 whose 16-bit header is a multiple of 31.
        zlib_format = len(body) >= 2 and body[0] & 0x0F == 8 and (body[0] << 8 | body[1]) % 31 == 0
        wbits = zlib.MAX_WBITS if zlib_format else -zlib.MAX_WBITS
    else:
        wbits = zlib.MAX_WBITS | 16
    inflater = zlib.decompressobj(wbits)
    try:
        data = inflater.decompress(body, most)
    except zlib.error:
        raise Rejected(f"the body is not valid {kind} data") from None
    return data, inflater.eof


_STEP = 64 * 1024


def brotli_window_bits(data: bytes) -> int:
    """The window size (log2) a brotli stream declares in its first bits (RFC 7932 9.1);
    a large-window stream (not RFC 7932) reads as 31."""
    if not data:
        return 0
    bits = data[0] | (data[1] << 8 if len(data) > 1 else 0)
    if not bits & 1:
        return 16
    if n := (bits >> 1) & 7:
        return 17 + n
    m = (bits >> 4) & 7
    if m == 1:
        return 31
    return 8 + m if m else 17


def _brotli(body: bytes, most: int) -> tuple[bytes, bool]:
    window = brotli_window_bits(body)
    if window > MAX_BROTLI_WINDOW_BITS:
        raise Rejected(
            f"the br body declares a {1 << min(window, 30) >> 20} MiB window; tower decodes "
            f"windows up to {1 << MAX_BROTLI_WINDOW_BITS >> 20} MiB (what SDKs use)"
        )
    decoder = brotli.Decompressor()
    parts: list[bytes] = []
    size = 0
    try:
        chunk = decoder.process(body, output_buffer_limit=min(most, _STEP))
        # Output past the limit stays inside the decoder: drain it a step at a time
        # until the cap, the end of the stream, or a call that yields nothing
        # (all input used: the stream is cut short).
        while chunk:
            parts.append(chunk)
            size += len(chunk)
            if size >= most or decoder.is_finished():
                break
            chunk = decoder.process(b"", output_buffer_limit=min(most - size, _STEP))
    except brotli.error:
        raise Rejected("the body is not valid br data") from None
    return b"".join(parts), decoder.is_finished()

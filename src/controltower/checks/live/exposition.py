"""Validate Prometheus text exposition (format 0.0.4, and OpenMetrics' ``# EOF``) line by line.

``prometheus_client``'s parser is lenient (it accepts ``foo 1 2 3``, a second TYPE
line, a TYPE after the samples, the same series twice); Prometheus refuses those
at scrape time, so the metrics check refuses them too, each with its line.
"""

from __future__ import annotations

import re

NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
LABEL = r"[a-zA-Z_][a-zA-Z0-9_]*"
VALUE = r"[+-]?(?:\d+\.?\d*(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?|Inf|inf|NaN|nan)"
_SAMPLE = re.compile(rf"^({NAME})(\{{(.*)\}})?[ \t]+({VALUE})([ \t]+-?\d+)?[ \t]*$")
_LABEL_PAIR = re.compile(rf'\s*({LABEL})\s*=\s*"((?:[^"\\\n]|\\[\\"n])*)"\s*(,|$)')
_HELP = re.compile(rf"^#[ \t]+HELP[ \t]+({NAME})(?:[ \t]+(.*))?$")
_TYPE = re.compile(rf"^#[ \t]+TYPE[ \t]+({NAME})[ \t]+(\S+)[ \t]*$")
TYPES = {"counter", "gauge", "histogram", "summary", "untyped", "unknown", "info", "stateset", "gaugehistogram"}  # fmt: skip
SUFFIXES = ("_bucket", "_count", "_sum", "_total", "_created", "_info", "_gcount", "_gsum")
CONTENT_TYPES = ("text/plain", "application/openmetrics-text")


def _labels(text: str) -> tuple[tuple[str, str], ...] | None:
    pairs, position = [], 0
    text = text.strip()
    while position < len(text):
        match = _LABEL_PAIR.match(text, position)
        if not match:
            return None
        pairs.append((match.group(1), match.group(2)))
        position = match.end()
    names = [name for name, _ in pairs]
    if len(set(names)) != len(names):
        return None
    return tuple(sorted(pairs))


def _family(name: str, typed: dict[str, str]) -> str:
    if name in typed:
        return name
    for suffix in SUFFIXES:
        if name.endswith(suffix) and name[: -len(suffix)] in typed:
            return name[: -len(suffix)]
    return name


def problems(text: str, content_type: str = "text/plain") -> list[str]:
    """Every way ``text`` breaks the exposition format, as ``line N: problem``."""
    out: list[str] = []
    media = content_type.split(";", 1)[0].strip().lower()
    if media and media not in CONTENT_TYPES:
        out.append(f"content type {media} is not text/plain or application/openmetrics-text")
    typed: dict[str, str] = {}
    helped: set[str] = set()
    sampled: set[str] = set()
    series: dict[tuple[str, tuple[tuple[str, str], ...]], int] = {}
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        if line.startswith("#"):
            if match := _TYPE.match(line):
                name, kind = match.groups()
                if kind not in TYPES:
                    out.append(f"line {number}: TYPE {kind!r} is not a metric type")
                if name in typed:
                    out.append(f"line {number}: second TYPE line for {name}")
                if name in sampled:
                    out.append(f"line {number}: TYPE for {name} after its samples")
                typed[name] = kind
            elif match := _HELP.match(line):
                if match.group(1) in helped:
                    out.append(f"line {number}: second HELP line for {match.group(1)}")
                helped.add(match.group(1))
            elif re.match(r"^#[ \t]+(HELP|TYPE)\b", line):
                out.append(f"line {number}: malformed {line.split()[1]} line")
            continue
        match = _SAMPLE.match(line)
        if not match:
            out.append(
                f"line {number}: not a sample (name{{labels}} value [timestamp]): {line[:80]!r}"
            )
            continue
        name, _, raw_labels, _, _ = match.groups()
        labels = _labels(raw_labels) if raw_labels is not None else ()
        if labels is None:
            out.append(f"line {number}: malformed labels on {name}")
            continue
        key = (name, labels)
        if key in series:
            out.append(f"line {number}: {name} with these labels repeats line {series[key]}")
        series[key] = number
        sampled.add(_family(name, typed))
        sampled.update(name[: -len(s)] for s in SUFFIXES if name.endswith(s))
    if media == "application/openmetrics-text" and (not lines or lines[-1] != "# EOF"):
        out.append("OpenMetrics text does not end with # EOF")
    if not series and not out:
        out.append("no samples")
    return out

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from controltower.units import (
    format_duration,
    parse_duration,
    parse_percent,
    parse_size,
)


class TestDurations:
    @pytest.mark.parametrize(
        ("text", "seconds"),
        [
            ("30s", 30),
            ("5m", 300),
            ("1h30m", 5400),
            ("250ms", 0.25),
            ("2d", 172800),
            ("1w", 604800),
            (45, 45),
            (0.5, 0.5),
            (" 10s ", 10),
            ("1.5s", 1.5),
        ],
    )
    def test_parses(self, text: object, seconds: float) -> None:
        """Durations in every accepted unit become seconds."""
        assert parse_duration(text) == pytest.approx(seconds)

    @pytest.mark.parametrize("text", ["5 minutes", "", "s", "10x", "-5s", True, None, "1h 2"])
    def test_rejects(self, text: object) -> None:
        """Anything else is a ValueError that names the form expected."""
        with pytest.raises(ValueError, match="duration"):
            parse_duration(text)

    @given(st.integers(min_value=0, max_value=10**7))
    def test_round_trip(self, seconds: int) -> None:
        """format_duration writes what parse_duration reads back, for whole seconds."""
        assert parse_duration(format_duration(seconds)) == pytest.approx(
            seconds, rel=0.01, abs=0.01
        )


class TestSizes:
    @pytest.mark.parametrize(
        ("text", "size"),
        [
            ("512mb", 512 * 1024**2),
            ("2gb", 2 * 1024**3),
            ("1.5GiB", int(1.5 * 1024**3)),
            ("64k", 65536),
            (1024, 1024),
            ("100", 100),
            ("256MB", 256 * 1024**2),
        ],
    )
    def test_parses(self, text: object, size: int) -> None:
        """Sizes use binary multiples, as Fly and Docker count memory."""
        assert parse_size(text) == size

    @pytest.mark.parametrize("text", ["lots", "512 megabytes", "-1", -5, False, [1]])
    def test_rejects(self, text: object) -> None:
        with pytest.raises(ValueError, match="size"):
            parse_size(text)


class TestPercent:
    @pytest.mark.parametrize(
        ("text", "fraction"), [("5%", 0.05), ("0.1%", 0.001), (5, 0.05), ("100%", 1.0), (0, 0.0)]
    )
    def test_parses(self, text: object, fraction: float) -> None:
        """Percentages become fractions; a bare number is percentage points."""
        assert parse_percent(text) == pytest.approx(fraction)

    @pytest.mark.parametrize("text", ["5", "101%", "-1%", "half", True])
    def test_rejects(self, text: object) -> None:
        with pytest.raises(ValueError, match="percentage"):
            parse_percent(text)

"""Durations, sizes and percentages: the one place tower.toml and conditions read them."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from controltower.units import (
    format_duration,
    format_in,
    parse_duration,
    parse_percent,
    parse_size,
    scale,
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
        """Anything else is a ValueError that names the form expected."""
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
        """A bare string without %, anything over 100% or below 0 is refused."""
        with pytest.raises(ValueError, match="percentage"):
            parse_percent(text)


class TestScale:
    @pytest.mark.parametrize(
        ("number", "unit", "base"),
        [
            (200, "ms", 0.2),
            (5, "m", 300.0),
            (2, "MB", 2 * 1024**2),
            (1, "kb", 1024),
            (0.1, "%", 0.001),
        ],
    )
    def test_units_to_base(self, number: float, unit: str, base: float) -> None:
        """A number with a unit becomes seconds, bytes or a fraction, as parse_* would read it."""
        assert scale(number, unit) == pytest.approx(base)

    def test_unknown_unit(self) -> None:
        """A unit that is not a duration, size or percent is not scaled."""
        assert scale(3, "x") is None

    def test_same_tables_as_the_parsers(self) -> None:
        """scale agrees with parse_duration and parse_size: there is one table of units."""
        for unit in ("ms", "s", "m", "h", "d", "w"):
            assert scale(3, unit) == pytest.approx(parse_duration(f"3{unit}"))
        for unit in ("kb", "mb", "gb", "tb"):
            assert scale(3, unit) == parse_size(f"3{unit}")

    @pytest.mark.parametrize(
        ("value", "unit", "text"),
        [(0.15, "ms", "150ms"), (2 * 1024**2, "mb", "2mb"), (0.05, "%", "5%"), (3.0, "", "3")],
    )
    def test_format_in(self, value: float, unit: str, text: str) -> None:
        """A value is written back in the kind of unit it was given in."""
        assert format_in(value, unit) == text

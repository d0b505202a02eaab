"""The dashboard's pure parts (SVG charts, badges) and its accounts."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import UTC, datetime

import pytest

from controltower.dashboard.auth import Accounts, check_password, csrf_ok, hash_password
from controltower.dashboard.svg import (
    DayBar,
    Series,
    badge,
    bar_chart,
    line_chart,
    sparkline,
    uptime_bars,
    uptime_class,
)
from controltower.exceptions import UsageError
from controltower.store import Store
from controltower.testing import FakeClock


def parse(svg: str) -> ET.Element:
    return ET.fromstring(
        svg.replace("<svg ", '<svg xmlns:x="x" ', 1) if "xmlns" not in svg else svg
    )


class TestSvg:
    def test_sparkline_scales_and_breaks_on_gaps(self) -> None:
        """Values map into the box, highest at the top; None starts a new segment."""
        svg = sparkline([0, 10, None, 5], width=30, height=10)
        path = parse(svg).find("path")
        assert path is not None
        assert path.get("d") == "M0.0,9.0 L10.0,1.0 M30.0,5.0"

    def test_uptime_bars_one_rect_per_day_with_class(self) -> None:
        days = [
            DayBar("d1", 1.0),
            DayBar("d2", 0.995),
            DayBar("d3", 0.5, incidents=2),
            DayBar("d4", None),
        ]
        rects = parse(uptime_bars(days)).findall("rect")
        assert [r.get("class") for r in rects] == ["bar-up", "bar-degraded", "bar-down", "bar-none"]
        assert rects[2].findtext("title") == "d3: 50.00%, 2 incidents"

    @pytest.mark.parametrize(
        ("uptime", "css"),
        [(0.9995, "bar-up"), (0.99, "bar-degraded"), (0.98, "bar-down"), (None, "bar-none")],
    )
    def test_uptime_thresholds(self, uptime: float | None, css: str) -> None:
        assert uptime_class(uptime) == css

    def test_line_chart_is_valid_svg_with_labels(self) -> None:
        svg = line_chart(
            [Series("p95", [0.1, 0.2, None, 0.15])], ["00:00", "01:00", "02:00", "03:00"]
        )
        root = parse(svg)
        texts = [t.text for t in root.iter("text")]
        assert "00:00" in texts and "0s" in texts

    def test_bar_chart_heights_proportional(self) -> None:
        rects = parse(bar_chart([1, 2, 4], ["a", "b", "c"], height=124)).findall("rect")
        heights = [float(r.get("height", 0)) for r in rects]
        assert heights == [25.0, 50.0, 100.0]

    def test_badge_escapes_and_is_standalone(self) -> None:
        svg = badge("uptime", "99.9% <ok>", "green")
        root = ET.fromstring(svg)
        assert root.tag == "{http://www.w3.org/2000/svg}svg"
        assert "&lt;ok&gt;" in svg

    def test_no_inline_styles(self) -> None:
        """Charts need no 'unsafe-inline' in the dashboard's CSP."""
        for svg in (
            sparkline([1, 2]),
            uptime_bars([DayBar("d", 1.0)]),
            line_chart([Series("a", [1, 2])], ["x", "y"]),
            bar_chart([1], ["a"]),
        ):
            assert "style=" not in svg


class TestPasswords:
    def test_hash_and_check(self) -> None:
        stored = hash_password("correct horse battery")
        assert stored.startswith("scrypt$")
        assert "correct" not in stored
        assert check_password("correct horse battery", stored)
        assert not check_password("wrong horse battery", stored)
        assert not check_password("x", "garbage")

    def test_csrf_compare(self) -> None:
        assert csrf_ok("abc", "abc")
        assert not csrf_ok("abc", "abd")
        assert not csrf_ok("abc", None)


class TestAccounts:
    def test_login_session_logout(self, store: Store) -> None:
        clock = FakeClock(datetime(2026, 3, 1, tzinfo=UTC))
        accounts = Accounts(store, clock=clock)
        accounts.add_user("ana", "a long password")
        assert accounts.login("ana", "wrong password!") is None
        assert accounts.login("bob", "a long password") is None
        token = accounts.login("ana", "a long password")
        assert token is not None
        info = accounts.session(token)
        assert info is not None and info.user == "ana" and len(info.csrf_token) > 20
        accounts.logout(token)
        assert accounts.session(token) is None

    def test_session_expires(self, store: Store) -> None:
        clock = FakeClock(datetime(2026, 3, 1, tzinfo=UTC))
        accounts = Accounts(store, clock=clock)
        accounts.add_user("ana", "a long password")
        token = accounts.login("ana", "a long password")
        clock.advance(13 * 3600)
        assert accounts.session(token) is None

    def test_short_password_refused(self, store: Store) -> None:
        with pytest.raises(UsageError, match="at least 10"):
            Accounts(store).add_user("ana", "short")

    def test_remove_user_ends_sessions(self, store: Store) -> None:
        accounts = Accounts(store)
        accounts.add_user("ana", "a long password")
        token = accounts.login("ana", "a long password")
        assert accounts.remove_user("ana")
        assert accounts.session(token) is None

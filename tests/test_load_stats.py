"""The Mann-Whitney U test and the regression verdict built on it."""

from __future__ import annotations

import math
import random

import pytest

from controltower.load.stats import compare_samples, mann_whitney_u, tail_test


class TestMannWhitneyU:
    def test_matches_the_published_scipy_example(self) -> None:
        """The scipy documentation's example (asymptotic method) gives U=17, p=0.11134688653314041."""
        males = [19, 22, 16, 29, 24]
        females = [20, 11, 17, 12]
        result = mann_whitney_u(males, females)
        assert result.u1 == 17
        assert result.u2 == 3
        assert result.p_value == pytest.approx(0.11134688653314041, rel=1e-9)

    def test_ties_use_average_ranks_and_the_tie_correction(self) -> None:
        """Tied values share their average rank and shrink the variance, as in the textbook formula."""
        first = [1, 2, 2, 3, 4]
        second = [2, 3, 3, 5, 6, 6]
        result = mann_whitney_u(first, second)
        # ranks: 1->1, 2->3 (x3), 3->6 (x3), 4->8, 5->9, 6->10.5 (x2)
        rank_sum = 1 + 3 + 3 + 6 + 8
        assert result.u1 == rank_sum - 5 * 6 / 2
        n1, n2, n = 5, 6, 11
        ties = (27 - 3) + (27 - 3) + (8 - 2)
        variance = n1 * n2 / 12 * ((n + 1) - ties / (n * (n - 1)))
        import math

        z = (max(result.u1, result.u2) - n1 * n2 / 2 - 0.5) / math.sqrt(variance)
        assert result.p_value == pytest.approx(math.erfc(z / math.sqrt(2)))

    def test_identical_samples_are_not_different(self) -> None:
        """Two equal samples give P(greater) = 0.5 and p = 1."""
        result = mann_whitney_u([5, 5, 5], [5, 5, 5])
        assert result.probability_greater == 0.5
        assert result.p_value == 1.0

    def test_empty_samples_are_refused(self) -> None:
        """A comparison needs values on both sides."""
        with pytest.raises(ValueError, match="at least one value"):
            mann_whitney_u([], [1.0])


class TestCompareSamples:
    def _latencies(self, seed: int, shift: float = 0.0, n: int = 3000) -> list[float]:
        rng = random.Random(seed)
        return [0.020 + rng.lognormvariate(-5, 0.5) + shift for _ in range(n)]

    def test_same_distribution_is_unchanged(self) -> None:
        """Two runs drawn from one distribution are within noise."""
        comparison = compare_samples(self._latencies(1), self._latencies(2))
        assert comparison.verdict == "unchanged"
        assert "no latency change" in comparison.sentence()

    def test_a_real_slowdown_is_found(self) -> None:
        """A 5 ms shift on ~27 ms latencies is significant and more than a small effect."""
        comparison = compare_samples(self._latencies(1), self._latencies(2, shift=0.005))
        assert comparison.verdict == "slower"
        assert comparison.regressed
        assert comparison.probability_slower > 0.6
        assert comparison.p_value < 1e-6

    def test_a_speedup_is_not_a_regression(self) -> None:
        """Faster latencies give the verdict faster."""
        comparison = compare_samples(self._latencies(1, shift=0.005), self._latencies(2))
        assert comparison.verdict == "faster"
        assert not comparison.regressed

    def test_a_tiny_but_significant_shift_is_noise(self) -> None:
        """With huge samples a 0.1 ms shift is significant but too small an effect to call."""
        before = self._latencies(1, n=20000)
        now = [value + 0.0001 for value in self._latencies(2, n=20000)]
        comparison = compare_samples(before, now)
        assert comparison.p_value < 0.01
        assert comparison.verdict == "unchanged"


class TestTail:
    def _latencies(self, seed: int, n: int = 5000) -> list[float]:
        rng = random.Random(seed)
        return [0.020 + rng.lognormvariate(-6, 0.3) for _ in range(n)]

    def test_a_slow_path_for_a_few_percent_is_found(self) -> None:
        """5% of requests going from ~22 ms to 200 ms barely moves P(slower) but fails the tail test."""
        before = self._latencies(1)
        now = self._latencies(2)
        for index in range(0, len(now), 20):
            now[index] = 0.200
        comparison = compare_samples(before, now, against="baseline (run 4)")
        assert abs(comparison.probability_slower - 0.5) < 0.056  # Mann-Whitney alone: noise
        assert comparison.verdict == "slower"
        assert comparison.reasons == ("the slowest requests",)
        assert comparison.tail_now > 1.5 * comparison.tail_before
        assert comparison.sentence().startswith(
            "latency is slower than the baseline (run 4) beyond noise (the slowest requests)"
        )

    def test_the_two_proportion_z_test(self) -> None:
        """Shares above the threshold and z follow the pooled two-proportion formula."""
        first = [1.0] * 30 + [0.0] * 70
        second = [1.0] * 10 + [0.0] * 90
        result = tail_test(first, second, 0.5)
        assert (result.share_first, result.share_second) == (0.3, 0.1)
        pooled = 0.2
        z = (0.3 - 0.1) / math.sqrt(pooled * (1 - pooled) * (2 / 100))
        assert result.z == pytest.approx(z)
        assert result.p_value == pytest.approx(math.erfc(z / math.sqrt(2)))

    def test_equal_tails_are_unchanged(self) -> None:
        """Two runs from one distribution pass both tests: unchanged, with no reasons."""
        comparison = compare_samples(self._latencies(3), self._latencies(4), against="previous run")
        assert comparison.verdict == "unchanged" and comparison.reasons == ()
        assert comparison.sentence().startswith("no latency change from the previous run")

"""Did latency change beyond noise? Two tests on the latency samples of two runs.

1. Mann-Whitney U asks whether a latency drawn from one run tends to be larger
   than one drawn from the other, without assuming any distribution (latencies
   are skewed and heavy-tailed, so a t-test or a fixed percentage would
   mislead). Large samples make tiny differences significant, so a change also
   needs an effect size of at least "small": the probability that a request
   from the new run is slower than one from the old, ``P(new > old)``, must
   leave 0.5 by 0.056 (the common-language equivalent of Cohen's d = 0.2).
2. The tail: a slow path hit by a few percent of requests barely moves
   ``P(new > old)``. So the share of each sample above the pooled 95th
   percentile is compared with a two-proportion z-test; a change needs that
   share to grow (or shrink) by half, e.g. from 5% to 7.5%.

Either test finding a slowdown makes the verdict ``slower``; ``faster`` needs
one to find a speed-up and neither a slowdown. Both tests treat requests as
independent, which consecutive requests are not quite (a pause slows several),
so the significance level is a strict 1%.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = [
    "Comparison",
    "MannWhitney",
    "TailTest",
    "compare_samples",
    "mann_whitney_u",
    "tail_test",
]

ALPHA = 0.01
SMALL_EFFECT = 0.056
TAIL_PERCENT = 95.0
TAIL_RATIO = 1.5


@dataclass(frozen=True)
class MannWhitney:
    """``u1`` counts pairs where the first sample is larger (ties count half)."""

    u1: float
    u2: float
    z: float
    p_value: float
    n1: int
    n2: int

    @property
    def probability_greater(self) -> float:
        """P(first > second) + P(first == second) / 2: 0.5 means no tendency either way."""
        return self.u1 / (self.n1 * self.n2)


def mann_whitney_u(first: Sequence[float], second: Sequence[float]) -> MannWhitney:
    """Two-sided Mann-Whitney U, normal approximation with tie and continuity corrections.

    Agrees with ``scipy.stats.mannwhitneyu(first, second, method="asymptotic")``.
    """
    n1, n2 = len(first), len(second)
    if n1 == 0 or n2 == 0:
        raise ValueError("both samples need at least one value")
    merged = sorted([(value, 0) for value in first] + [(value, 1) for value in second])
    total = n1 + n2
    rank_sum_first = 0.0
    tie_term = 0.0
    index = 0
    while index < total:
        end = index
        while end + 1 < total and merged[end + 1][0] == merged[index][0]:
            end += 1
        rank = (index + end) / 2 + 1
        size = end - index + 1
        if size > 1:
            tie_term += size**3 - size
        for position in range(index, end + 1):
            if merged[position][1] == 0:
                rank_sum_first += rank
        index = end + 1
    u1 = rank_sum_first - n1 * (n1 + 1) / 2
    u2 = n1 * n2 - u1
    mean = n1 * n2 / 2
    variance = n1 * n2 / 12 * ((total + 1) - tie_term / (total * (total - 1) if total > 1 else 1))
    if variance <= 0:
        return MannWhitney(u1, u2, 0.0, 1.0, n1, n2)
    z = (max(u1, u2) - mean - 0.5) / math.sqrt(variance)
    p_value = min(1.0, math.erfc(z / math.sqrt(2)))
    return MannWhitney(u1, u2, z if u1 >= u2 else -z, p_value, n1, n2)


@dataclass(frozen=True)
class TailTest:
    """Shares of two samples above ``threshold`` and a two-sided two-proportion z-test."""

    threshold: float
    share_first: float
    share_second: float
    z: float
    p_value: float


def tail_test(first: Sequence[float], second: Sequence[float], threshold: float) -> TailTest:
    """Compare the shares of ``first`` and ``second`` strictly above ``threshold``."""
    n1, n2 = len(first), len(second)
    if n1 == 0 or n2 == 0:
        raise ValueError("both samples need at least one value")
    above1 = sum(1 for value in first if value > threshold)
    above2 = sum(1 for value in second if value > threshold)
    share1, share2 = above1 / n1, above2 / n2
    pooled = (above1 + above2) / (n1 + n2)
    spread = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    if spread == 0:
        return TailTest(threshold, share1, share2, 0.0, 1.0)
    z = (share1 - share2) / spread
    return TailTest(threshold, share1, share2, z, min(1.0, math.erfc(abs(z) / math.sqrt(2))))


@dataclass(frozen=True)
class Comparison:
    """The verdict on latency: ``slower``, ``faster`` or ``unchanged`` (within noise)."""

    verdict: str
    p_value: float
    probability_slower: float
    median_before: float
    median_now: float
    p95_before: float
    p95_now: float
    against: str = ""
    tail_threshold: float = 0.0
    tail_before: float = 0.0
    tail_now: float = 0.0
    tail_p_value: float = 1.0
    reasons: tuple[str, ...] = ()

    @property
    def regressed(self) -> bool:
        return self.verdict == "slower"

    def sentence(self) -> str:
        shift = _change(self.median_before, self.median_now)
        tail = _change(self.p95_before, self.p95_now)
        detail = (
            f"median {self.median_before * 1000:.1f}ms -> {self.median_now * 1000:.1f}ms ({shift}), "
            f"p95 {self.p95_before * 1000:.1f}ms -> {self.p95_now * 1000:.1f}ms ({tail}); "
            f"P(slower) {self.probability_slower:.2f} (p={self.p_value:.2g}), "
            f"above {self.tail_threshold * 1000:.1f}ms {self.tail_before:.1%} -> "
            f"{self.tail_now:.1%} (p={self.tail_p_value:.2g})"
        )
        against = f" than the {self.against}" if self.against else ""
        if self.verdict == "slower":
            return f"latency is slower{against} beyond noise ({', '.join(self.reasons)}): {detail}"
        if self.verdict == "faster":
            return f"latency is faster{against} beyond noise ({', '.join(self.reasons)}): {detail}"
        versus = f" from the {self.against}" if self.against else ""
        return f"no latency change{versus} beyond noise: {detail}"

    def to_dict(self) -> dict[str, object]:
        return {
            "against": self.against,
            "verdict": self.verdict,
            "reasons": list(self.reasons),
            "p_value": self.p_value,
            "probability_slower": self.probability_slower,
            "median_before": self.median_before,
            "median_now": self.median_now,
            "p95_before": self.p95_before,
            "p95_now": self.p95_now,
            "tail_threshold": self.tail_threshold,
            "tail_before": self.tail_before,
            "tail_now": self.tail_now,
            "tail_p_value": self.tail_p_value,
            "message": self.sentence(),
        }


def _change(before: float, now: float) -> str:
    if before <= 0:
        return "n/a"
    return f"{(now - before) / before:+.0%}"


def _quantile(values: Sequence[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] if ordered else 0.0


def compare_samples(
    before: Sequence[float], now: Sequence[float], *, against: str = "", alpha: float = ALPHA
) -> Comparison:
    """Compare two latency samples (seconds): significant *and* at least a small effect."""
    test = mann_whitney_u(now, before)
    probability = test.probability_greater
    threshold = _quantile([*before, *now], TAIL_PERCENT / 100)
    tail = tail_test(now, before, threshold)
    slower: list[str] = []
    faster: list[str] = []
    if test.p_value < alpha and abs(probability - 0.5) >= SMALL_EFFECT:
        (slower if probability > 0.5 else faster).append("most requests")
    if tail.p_value < alpha:
        if tail.share_first >= TAIL_RATIO * tail.share_second:
            slower.append("the slowest requests")
        elif tail.share_second >= TAIL_RATIO * tail.share_first:
            faster.append("the slowest requests")
    verdict = "slower" if slower else "faster" if faster else "unchanged"
    return Comparison(
        verdict=verdict,
        p_value=test.p_value,
        probability_slower=probability,
        median_before=_quantile(before, 0.5),
        median_now=_quantile(now, 0.5),
        p95_before=_quantile(before, 0.95),
        p95_now=_quantile(now, 0.95),
        against=against,
        tail_threshold=threshold,
        tail_before=tail.share_second,
        tail_now=tail.share_first,
        tail_p_value=tail.p_value,
        reasons=tuple(slower or faster),
    )

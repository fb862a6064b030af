"""The statistics against values worked out by hand (the arithmetic is in each test)."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest

from trunkline.lab.report.stats import (
    bootstrap_diff_ci,
    bootstrap_percentiles,
    mann_whitney_u,
    percentile,
    rank_with_ties,
    sample_size_two_proportions,
    two_proportion_z_test,
)


def test_percentile_is_nearest_rank() -> None:
    # The worked example of the nearest-rank method (Wikipedia, "Percentile").
    data = [15.0, 20.0, 35.0, 40.0, 50.0]
    assert [percentile(data, p) for p in (5, 30, 40, 50, 100)] == [15, 20, 20, 35, 50]
    # Order does not matter; every result is a value of the sample.
    assert percentile([50.0, 15.0, 40.0, 20.0, 35.0], 95) == 50.0
    assert percentile(list(map(float, range(1, 101))), 95) == 95.0


def test_percentile_ignores_unmeasured_and_garbage() -> None:
    assert percentile([], 50) is None
    assert percentile([None, math.nan], 50) is None  # type: ignore[list-item]
    assert percentile([None, 3.0, math.inf, 1.0, 2.0], 50) == 2.0  # type: ignore[list-item]
    with pytest.raises(ValueError, match="outside"):
        percentile([1.0], 0)
    with pytest.raises(ValueError, match="outside"):
        percentile([1.0], 101)


def test_z_test_on_hand_computed_counts() -> None:
    # 45/100 vs 60/100: pooled p = 105/200 = 0.525; SE = sqrt(0.525 * 0.475 * (2/100))
    # = 0.0706222; z = 0.15 / 0.0706222 = 2.12398; p = erfc(2.12398 / sqrt 2) = 0.03367.
    t = two_proportion_z_test(45, 100, 60, 100)
    assert t.rate_a == 0.45 and t.rate_b == 0.6
    assert t.diff == pytest.approx(0.15)
    assert t.z == pytest.approx(2.12398, abs=1e-5)
    assert t.p_value == pytest.approx(0.03367, abs=1e-5)
    swapped = two_proportion_z_test(60, 100, 45, 100)
    assert swapped.z == pytest.approx(-2.12398, abs=1e-5)
    assert swapped.p_value == pytest.approx(t.p_value)


def test_z_test_with_unequal_arms() -> None:
    # 30/150 vs 50/250: the same rate (0.2) on arms of different sizes.
    equal = two_proportion_z_test(30, 150, 50, 250)
    assert equal.z == pytest.approx(0.0) and equal.p_value == pytest.approx(1.0)
    # 10/50 vs 30/60: pooled 40/110 = 0.363636; SE = sqrt(0.363636 * 0.636364 *
    # (1/50 + 1/60)) = sqrt(0.0084848) = 0.092113; z = 0.3 / 0.092113 = 3.25686;
    # p = 0.001127.
    t = two_proportion_z_test(10, 50, 30, 60)
    assert t.z == pytest.approx(3.25686, abs=1e-4)
    assert t.p_value == pytest.approx(0.001127, abs=1e-5)


@pytest.mark.parametrize(("s", "word"), [(0, "failed"), (40, "succeeded")])
def test_z_test_with_no_variance_says_so(s: int, word: str) -> None:
    t = two_proportion_z_test(s, 40, s * 2, 80)
    assert t.z == 0.0 and t.p_value == 1.0
    assert word in t.note


def test_z_test_edge_cases() -> None:
    empty = two_proportion_z_test(0, 0, 5, 10)
    assert empty.p_value is None and empty.rate_a is None and "no calls" in empty.note
    extreme = two_proportion_z_test(0, 50, 50, 50)  # every A fails, every B succeeds
    assert extreme.p_value is not None and extreme.p_value < 1e-20
    for bad in ((11, 10, 1, 1), (-1, 10, 1, 1), (1, 1, 2, -1)):
        with pytest.raises(ValueError, match="not a proportion"):
            two_proportion_z_test(*bad)


def test_ranks_share_ties() -> None:
    ranks, groups = rank_with_ties([10.0, 20.0, 20.0, 5.0, 20.0])
    assert ranks == [2.0, 4.0, 4.0, 1.0, 4.0]
    assert sorted(groups) == [1, 1, 3]


def test_mann_whitney_without_ties() -> None:
    # No overlap: U_a = 0, U_b = 25. mean 12.5, var = 25 * 11 / 12 = 22.9167;
    # z = -(12.5 - 0.5) / 4.78714 = -2.50672; p = 0.012186.
    t = mann_whitney_u([1, 2, 3, 4, 5], [6, 7, 8, 9, 10])
    assert (t.u_a, t.u_b) == (0.0, 25.0)
    assert t.z == pytest.approx(-2.50672, abs=1e-5)
    assert t.p_value == pytest.approx(0.012186, abs=1e-6)


def test_mann_whitney_with_ties_by_hand() -> None:
    # A = 1 2 2, B = 2 3 4. Pooled ranks: 1 -> 1, the three 2s -> 3, 3 -> 5, 4 -> 6.
    # R_a = 1 + 3 + 3 = 7, U_a = 7 - 3*4/2 = 1 (pairs: the two A-2s tie the B-2: 0.5 each).
    # Ties: one group of 3 -> 27 - 3 = 24. var = 9/12 * (7 - 24/30) = 4.65.
    # z = -(3.5 - 0.5) / sqrt(4.65) = -1.39122; p = 0.16416.
    t = mann_whitney_u([1, 2, 2], [2, 3, 4])
    assert (t.u_a, t.u_b) == (1.0, 8.0)
    assert t.z == pytest.approx(-1.39122, abs=1e-5)
    assert t.p_value == pytest.approx(0.16416, abs=1e-5)


def test_mann_whitney_u_counts_pairs() -> None:
    rng = random.Random(3)
    for _ in range(20):
        a = [float(rng.randint(0, 6)) for _ in range(rng.randint(1, 12))]
        b = [float(rng.randint(0, 6)) for _ in range(rng.randint(1, 12))]
        pairs = sum((x > y) + 0.5 * (x == y) for x in a for y in b)
        t = mann_whitney_u(a, b)
        assert t.u_a == pytest.approx(pairs)
        assert t.u_a + t.u_b == pytest.approx(len(a) * len(b))  # type: ignore[operator]
        assert t.p_value is not None and 0 <= t.p_value <= 1


def test_mann_whitney_degenerate_samples() -> None:
    same = mann_whitney_u([3, 3, 3], [3, 3])
    assert same.p_value == 1.0 and same.u_a == 3.0
    empty = mann_whitney_u([], [1.0])
    assert empty.p_value is None and empty.u_a is None


def exact_position_cdf(n: int, p: float) -> list[float]:
    """P(the nearest-rank p-th percentile of a resample sits at sorted position <= j), by
    counting: at least r of the n draws land on positions 0..j, each with chance (j+1)/n."""
    r = max(1, math.ceil(p / 100 * n))
    out = []
    for j in range(n):
        q = (j + 1) / n
        out.append(sum(math.comb(n, k) * q**k * (1 - q) ** (n - k) for k in range(r, n + 1)))
    return out


@pytest.mark.parametrize("p", [50, 95])
def test_bootstrap_percentiles_are_drawn_as_resampling_would(p: float) -> None:
    n, draws = 40, 50_000
    data = np.arange(n, dtype=np.float64) * 10  # value / 10 is the sorted position
    exact = np.array(exact_position_cdf(n, p))
    fast = bootstrap_percentiles(data, p, draws, np.random.default_rng(1)) / 10
    rng = np.random.default_rng(2)
    rank = max(1, math.ceil(p / 100 * n))
    naive = np.sort(data[rng.integers(0, n, size=(draws, n))], axis=1)[:, rank - 1] / 10
    for sample in (fast, naive):
        empirical = np.array([(sample <= j).mean() for j in range(n)])
        # Kolmogorov distance; its sampling noise at 50,000 draws is about 0.006.
        assert np.abs(empirical - exact).max() < 0.015


def test_bootstrap_is_seeded_and_covers_a_real_shift() -> None:
    rng = np.random.default_rng(1)
    a = list(rng.normal(500, 50, 300))
    b = list(rng.normal(600, 50, 300))
    first = bootstrap_diff_ci(a, b, 50, seed=42, resamples=400)
    again = bootstrap_diff_ci(a, b, 50, seed=42, resamples=400)
    other = bootstrap_diff_ci(a, b, 50, seed=43, resamples=400)
    assert first == again and first != other
    assert first is not None
    assert first.low <= first.diff <= first.high
    assert first.low > 60 and first.high < 140  # the true shift is 100
    assert first.diff == percentile(b, 50) - percentile(a, 50)  # type: ignore[operator]


def test_bootstrap_of_a_large_sample() -> None:
    a = [float(x) for x in range(100_000)]
    b = [x + 50 for x in a]
    ci = bootstrap_diff_ci(a, b, 95, seed=1)
    assert ci is not None and ci.resamples == 2000 and ci.p == 95
    assert ci.diff == 50.0 and ci.low <= 50.0 <= ci.high
    assert ci.high - ci.low < 2000  # the p95 of 100,000 values is known to about 1%


def test_bootstrap_refuses_nonsense() -> None:
    assert bootstrap_diff_ci([], [1.0], 50, seed=1) is None
    with pytest.raises(ValueError, match="confidence"):
        bootstrap_diff_ci([1.0], [1.0], 50, seed=1, confidence=1.0)
    with pytest.raises(ValueError, match="resample"):
        bootstrap_diff_ci([1.0], [1.0], 50, seed=1, resamples=0)
    with pytest.raises(ValueError, match="percentile"):
        bootstrap_diff_ci([1.0], [1.0], 0, seed=1)
    one = bootstrap_diff_ci([3.0], [5.0], 95, seed=1)
    assert one is not None and (one.diff, one.low, one.high) == (2.0, 2.0, 2.0)


def test_sample_size_textbook_values() -> None:
    # 0.5 vs 0.6, alpha 0.05 two-sided, power 0.8, pooled formula (Fleiss eq. 4.14 without
    # continuity correction): (1.95996 * sqrt(2 * .55 * .45) + 0.84162 * sqrt(.25 + .24))^2
    # / 0.01 = (1.37894 + 0.58913)^2 / 0.01 = 387.33 -> 388 per arm.
    assert sample_size_two_proportions(0.5, 0.6) == 388
    assert sample_size_two_proportions(0.6, 0.5) == 388
    # 0.90 vs 0.85: (1.95996 * 0.46771 + 0.84162 * 0.46637)^2 / 0.0025 = 685.6 -> 686.
    assert sample_size_two_proportions(0.9, 0.85) == 686
    # Stricter alpha or more power cost calls.
    assert sample_size_two_proportions(0.5, 0.6, alpha=0.01) > 388  # type: ignore[operator]
    assert sample_size_two_proportions(0.5, 0.6, power=0.9) > 388  # type: ignore[operator]


def test_sample_size_edge_cases() -> None:
    assert sample_size_two_proportions(0.7, 0.7) is None
    assert sample_size_two_proportions(0.0, 1.0) == 2  # any test tells these apart at once
    with pytest.raises(ValueError, match="p2"):
        sample_size_two_proportions(0.5, 1.2)
    with pytest.raises(ValueError, match="alpha"):
        sample_size_two_proportions(0.5, 0.6, alpha=0)
    with pytest.raises(ValueError, match="power"):
        sample_size_two_proportions(0.5, 0.6, power=1)

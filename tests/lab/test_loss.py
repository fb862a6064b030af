"""Loss models (Bernoulli, Gilbert-Elliott) and the packet scheduler (loss, jitter, reorder)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trunkline.lab.emodel import burst_ratio
from trunkline.lab.loss import Bernoulli, GilbertElliott, LossModel, Uniforms
from trunkline.lab.netem import MAX_JITTER_MS, PacketScheduler

PACKETS = 100_000  # enough for the long-run figures to settle within the tolerances below
INTERVAL = 0.02


def _run(model: LossModel, n: int = PACKETS, seed: int = 1) -> np.ndarray:
    uniforms = Uniforms(np.random.default_rng(seed))
    return np.array([model.lose(uniforms) for _ in range(n)])


def _runs(lost: np.ndarray) -> int:
    """Runs of consecutive losses."""
    return int(np.count_nonzero(lost[1:] & ~lost[:-1]) + (1 if len(lost) and lost[0] else 0))


@pytest.mark.parametrize(
    ("p", "r", "h", "k"),
    [
        (0.05, 0.3, 0.0, 1.0),  # simple Gilbert: 14.3% loss in bursts of 3.3
        (0.01, 0.5, 0.0, 1.0),  # rare short bursts: 1.96%
        (0.02, 0.25, 0.3, 0.99),  # Gilbert-Elliott: some loss in both states
        (0.1, 0.1, 0.5, 0.9),  # half the time in each state
    ],
)
def test_gilbert_elliott_long_run_matches_the_analytic_rates(
    p: float, r: float, h: float, k: float
) -> None:
    model = GilbertElliott(p, r, h, k)
    expected = p / (p + r) * (1 - h) + r / (p + r) * (1 - k)
    assert model.loss_rate == pytest.approx(expected)
    lost = _run(model)
    assert lost.mean() == pytest.approx(expected, rel=0.08)
    mean_burst = lost.sum() / _runs(lost)
    assert mean_burst == pytest.approx(model.mean_burst, rel=0.08)


def test_simple_gilbert_bursts_last_1_over_r() -> None:
    model = GilbertElliott(0.05, 0.25)
    assert model.mean_burst == pytest.approx(1 / 0.25)
    assert model.burst_ratio == pytest.approx(1 / (0.05 + 0.25))  # G.107's BurstR = 1/(p+r)
    lost = _run(model)
    observed = burst_ratio(int(lost.sum()), len(lost), _runs(lost))
    assert observed == pytest.approx(model.burst_ratio, rel=0.08)


def test_bernoulli_loss_is_random() -> None:
    model = Bernoulli.percent(10.0)
    lost = _run(model)
    assert lost.mean() == pytest.approx(0.1, rel=0.05)
    assert model.mean_burst == pytest.approx(1 / 0.9)
    assert model.burst_ratio == pytest.approx(1.0)
    assert burst_ratio(int(lost.sum()), len(lost), _runs(lost)) == pytest.approx(1.0, rel=0.05)


def test_degenerate_models() -> None:
    assert not _run(GilbertElliott(0.0, 0.0), 1000).any()  # stays good, keeps everything
    assert _run(Bernoulli(1.0), 100).all()
    assert Bernoulli(1.0).mean_burst == math.inf and Bernoulli(1.0).burst_ratio == math.inf
    assert Bernoulli(0.0).mean_burst == 0.0 and Bernoulli(0.0).burst_ratio == 1.0
    assert GilbertElliott(0.5, 0.5, h=1.0, k=1.0).loss_rate == 0.0
    assert GilbertElliott(0.5, 0.5, h=0.0, k=0.0).mean_burst == math.inf  # all lost


def test_loss_is_replayable_per_seed() -> None:
    a = _run(GilbertElliott(0.05, 0.3), 5000, seed=3)
    b = _run(GilbertElliott(0.05, 0.3), 5000, seed=3)
    c = _run(GilbertElliott(0.05, 0.3), 5000, seed=4)
    assert np.array_equal(a, b) and not np.array_equal(a, c)


@pytest.mark.parametrize(
    "make",
    [
        lambda: GilbertElliott(1.5, 0.5),
        lambda: GilbertElliott(0.1, math.nan),
        lambda: GilbertElliott(0.1, 0.5, h=-0.1),
        lambda: GilbertElliott(0.1, 0.0),  # never leaves the bad state
        lambda: Bernoulli(1.01),
        lambda: Bernoulli.percent(101.0),
    ],
)
def test_models_refuse_bad_parameters(make: object) -> None:
    with pytest.raises(ValueError):
        make()  # type: ignore[operator]


# --- the scheduler -------------------------------------------------------------------


def _packets(n: int) -> list[tuple[float, int]]:
    return [(i * INTERVAL, i) for i in range(n)]


def test_a_clean_stream_passes_untouched() -> None:
    s: PacketScheduler[int] = PacketScheduler(0)
    packets = _packets(100)
    assert s.schedule(packets) == packets
    assert (s.stats.pushed, s.stats.dropped, s.stats.sent, s.stats.reordered) == (100, 0, 100, 0)


def test_loss_only_keeps_times_and_counts_runs() -> None:
    s: PacketScheduler[int] = PacketScheduler(5, loss=GilbertElliott(0.05, 0.3))
    out = s.schedule(_packets(20_000))
    assert all(t == i * INTERVAL for t, i in out)
    assert s.stats.dropped + s.stats.sent == 20_000
    assert s.stats.reordered == 0
    assert s.stats.loss_rate == pytest.approx(0.05 / 0.35, rel=0.1)
    assert s.stats.mean_loss_run == pytest.approx(1 / 0.3, rel=0.1)
    assert s.stats.max_loss_run >= 4


def test_jitter_delays_are_exponential_with_the_given_mean() -> None:
    s: PacketScheduler[int] = PacketScheduler(2, jitter_ms=30.0)
    out = s.schedule(_packets(20_000))
    delays = np.array([t - i * INTERVAL for t, i in out])
    assert delays.min() >= 0.0
    assert delays.mean() == pytest.approx(0.030, rel=0.05)
    assert delays.std() == pytest.approx(0.030, rel=0.05)  # the spec's "ms" is the std
    times = [t for t, _ in out]
    assert times == sorted(times)  # sent in send-time order
    assert s.stats.reordered > 1000  # 30 ms of jitter on 20 ms packets reorders a lot


def test_small_jitter_rarely_reorders() -> None:
    s: PacketScheduler[int] = PacketScheduler(2, jitter_ms=2.0)
    s.schedule(_packets(20_000))
    # Reordering needs a delay difference above 20 ms: P = exp(-20 / 2) / 2 per pair.
    assert s.stats.reordered <= 5


def test_forced_reordering_swaps_neighbours() -> None:
    s: PacketScheduler[int] = PacketScheduler(8, reorder_pct=10.0)
    out = [i for _, i in s.schedule(_packets(10_000))]
    assert sorted(out) == list(range(10_000))
    swapped = [j for j in range(len(out) - 1) if out[j] > out[j + 1]]
    assert all(out[j] == out[j + 1] + 1 for j in swapped)  # always the next packet
    assert s.stats.reordered == len(swapped)
    assert s.stats.reordered / 10_000 == pytest.approx(0.1 * 0.9, rel=0.15)


def test_streaming_matches_batch_and_flush_releases_the_held_packet() -> None:
    batch: PacketScheduler[int] = PacketScheduler(
        11, loss=Bernoulli(0.05), jitter_ms=15.0, reorder_pct=5.0
    )
    live: PacketScheduler[int] = PacketScheduler(
        11, loss=Bernoulli(0.05), jitter_ms=15.0, reorder_pct=5.0
    )
    expected = batch.schedule(_packets(2000))
    got: list[tuple[float, int]] = []
    for t, i in _packets(2000):
        live.push(t, i)
        got += live.pop_due(t)
        due = live.next_due()
        assert due is None or due > t
    got += live.flush()
    assert got == expected
    assert live.stats == batch.stats


def test_held_packet_waits_for_flush() -> None:
    s: PacketScheduler[str] = PacketScheduler(0, reorder_pct=100.0)
    s.push(0.0, "a")
    assert s.next_due() is None and s.pop_due(10.0) == []  # held until the next packet
    s.push(0.02, "b")
    assert [p for _, p in s.pop_due(10.0)] == ["b", "a"]
    s.push(0.04, "c")  # held again: nothing follows it
    assert [p for _, p in s.flush()] == ["c"]


def test_loss_does_not_depend_on_jitter() -> None:
    a: PacketScheduler[int] = PacketScheduler(6, loss=GilbertElliott(0.05, 0.3))
    b: PacketScheduler[int] = PacketScheduler(
        6, loss=GilbertElliott(0.05, 0.3), jitter_ms=40.0, reorder_pct=3.0
    )
    kept_a = sorted(i for _, i in a.schedule(_packets(5000)))
    kept_b = sorted(i for _, i in b.schedule(_packets(5000)))
    assert kept_a == kept_b


def test_scheduler_refuses_bad_parameters() -> None:
    with pytest.raises(ValueError, match="jitter_ms"):
        PacketScheduler(0, jitter_ms=MAX_JITTER_MS + 1)
    with pytest.raises(ValueError, match="jitter_ms"):
        PacketScheduler(0, jitter_ms=math.nan)
    with pytest.raises(ValueError, match="reorder_pct"):
        PacketScheduler(0, reorder_pct=-1.0)
    s: PacketScheduler[int] = PacketScheduler(0)
    with pytest.raises(ValueError, match="nominal_time"):
        s.push(math.inf, 1)


@settings(max_examples=80, deadline=None)
@given(
    seed=st.integers(0, 2**63),
    loss=st.one_of(
        st.none(),
        st.floats(0.0, 1.0).map(Bernoulli),
        st.tuples(
            st.floats(0.0, 1.0), st.floats(0.01, 1.0), st.floats(0.0, 1.0), st.floats(0.0, 1.0)
        ).map(lambda a: GilbertElliott(*a)),
    ),
    jitter=st.floats(0.0, MAX_JITTER_MS),
    reorder=st.floats(0.0, 100.0),
    steps=st.lists(st.tuples(st.floats(-1e6, 1e6), st.booleans()), max_size=200),
)
def test_scheduler_never_loses_track(
    seed: int,
    loss: LossModel | None,
    jitter: float,
    reorder: float,
    steps: list[tuple[float, bool]],
) -> None:
    s: PacketScheduler[int] = PacketScheduler(
        seed, loss=loss, jitter_ms=jitter, reorder_pct=reorder
    )
    out: list[tuple[float, int]] = []
    for i, (t, pop) in enumerate(steps):
        s.push(t, i)
        if pop:
            out += s.pop_due(t)
    out += s.flush()
    ids = [i for _, i in out]
    assert len(ids) == len(set(ids))  # nothing sent twice
    assert s.stats.pushed == len(steps)
    assert s.stats.sent == len(out) == s.stats.pushed - s.stats.dropped
    assert 0 <= s.stats.reordered <= s.stats.sent
    assert s.next_due() is None

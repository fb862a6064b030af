"""The E-model (ITU-T G.107): known points, published tables, and arbitrary inputs."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trunkline.lab.emodel import (
    G711_NO_PLC,
    G711_PLC,
    MAX_DELAY_MS,
    burst_ratio,
    codec_profile,
    delay_impairment,
    estimate,
    loss_impairment,
    mos_from_r,
    mouth_to_ear_ms,
)
from trunkline.lab.loss import GilbertElliott
from trunkline.lab.netem import PacketScheduler


def test_no_impairment_is_r_93_2_and_mos_4_41() -> None:
    e = estimate()
    assert e.r == pytest.approx(93.2, abs=0.05)  # G.107 §7.7: the defaults give R = 93.2
    assert e.mos == pytest.approx(4.41, abs=0.005)
    assert e.loss_impairment == 0.0
    assert e.delay_impairment == pytest.approx(0.15, abs=0.01)  # listener echo at Tr = 0


@pytest.mark.parametrize(
    ("r", "mos"),
    # G.107 Annex B, Table B.1 (user satisfaction); it lists 4.03 where the formula gives 4.024.
    [(90.0, 4.34), (80.0, 4.03), (70.0, 3.60), (60.0, 3.10), (50.0, 2.58)],
)
def test_mos_matches_g107_table_b1(r: float, mos: float) -> None:
    assert mos_from_r(r) == pytest.approx(mos, abs=0.01)


def test_mos_is_clamped_and_monotonic() -> None:
    assert mos_from_r(-10.0) == 1.0 and mos_from_r(0.0) == 1.0
    assert mos_from_r(100.0) == 4.5 and mos_from_r(130.0) == 4.5
    grid = [mos_from_r(r / 10) for r in range(0, 1001)]
    assert all(a <= b for a, b in zip(grid, grid[1:], strict=False))
    with pytest.raises(ValueError):
        mos_from_r(math.nan)


@pytest.mark.parametrize("delay", [0.0, 50.0, 100.0, 150.0, 177.3, 200.0, 250.0, 300.0])
def test_delay_impairment_follows_the_published_fit(delay: float) -> None:
    # Cole & Rosenbluth (ACM SIGCOMM CCR, 2001) fitted G.107's Id with default parameters:
    # Id = 0.024 d + 0.11 (d - 177.3) H(d - 177.3). It is a straight-line fit of the
    # curve, good to about 1 R point up to 300 ms.
    fit = 0.024 * delay + 0.11 * max(0.0, delay - 177.3)
    assert delay_impairment(delay) == pytest.approx(fit, abs=1.5)


def test_delay_impairment_grows_with_delay() -> None:
    values = [delay_impairment(float(d)) for d in range(0, 1001, 10)]
    assert all(a < b for a, b in zip(values, values[1:], strict=False))
    # G.114: up to 150 ms one way most applications are transparent (R stays above 89).
    assert estimate(delay_ms=150.0).r > 89.0
    assert estimate(delay_ms=400.0).r < 70.0


def test_loss_impairment_with_and_without_plc() -> None:
    assert loss_impairment(0.0) == 0.0
    plc = [loss_impairment(p, codec=G711_PLC) for p in (0.5, 1.0, 2.0, 5.0, 10.0, 20.0)]
    bare = [loss_impairment(p, codec=G711_NO_PLC) for p in (0.5, 1.0, 2.0, 5.0, 10.0, 20.0)]
    assert all(a < b for a, b in zip(plc, plc[1:], strict=False))
    assert all(p < b for p, b in zip(plc, bare, strict=True))  # concealment helps
    # The formula's limit: Ie,eff tends to 95 (no speech) as loss tends to 100% random.
    assert loss_impairment(100.0, codec=G711_PLC) < 95.0
    assert loss_impairment(1.0, codec=G711_PLC) == pytest.approx(95.0 / 26.1)  # Bpl 25.1
    assert loss_impairment(1.0) == pytest.approx(95.0 / 5.3)  # the default: no PLC, Bpl 4.3


def test_codec_profiles_are_g113_appendix_i() -> None:
    # G.113 Appendix I, Table I.3: G.711 has Ie = 0; Bpl = 25.1 with the PLC of G.711
    # Appendix I, 4.3 without concealment (random loss).
    assert (G711_PLC.ie, G711_PLC.bpl) == (0.0, 25.1)
    assert (G711_NO_PLC.ie, G711_NO_PLC.bpl) == (0.0, 4.3)
    assert estimate().r == estimate(codec=G711_PLC).r  # no loss: the codecs are the same
    # 2 % random loss: Ie,eff = 95 * 2 / (2 + Bpl), R = 93.2 - Ie,eff (G.107 eq. 7-29).
    bare, plc = estimate(loss_pct=2.0), estimate(loss_pct=2.0, codec=G711_PLC)
    assert bare.loss_impairment == pytest.approx(30.159, abs=0.001)
    assert plc.loss_impairment == pytest.approx(7.011, abs=0.001)
    assert bare.r == pytest.approx(93.2 - 30.159, abs=0.05) and bare.mos < 3.3
    assert plc.r == pytest.approx(93.2 - 7.011, abs=0.05) and plc.mos > 4.1


def test_codec_profile_by_name() -> None:
    assert codec_profile("g711") is G711_NO_PLC
    assert codec_profile("G711_PLC") is G711_PLC and codec_profile(" g711-plc ") is G711_PLC
    with pytest.raises(ValueError, match="g711-plc"):
        codec_profile("opus")


def test_bursty_loss_hurts_more() -> None:
    random = estimate(loss_pct=3.0, burst_r=1.0)
    bursty = estimate(loss_pct=3.0, burst_r=3.0)
    assert bursty.r < random.r
    assert random.mos > bursty.mos


def test_burst_ratio_from_a_simulated_gilbert_channel() -> None:
    p, r = 0.02, 0.3
    scheduler: PacketScheduler[int] = PacketScheduler(3, loss=GilbertElliott(p, r))
    scheduler.schedule((i * 0.02, i) for i in range(50_000))
    stats = scheduler.stats
    observed = burst_ratio(stats.dropped, stats.pushed, stats.loss_runs)
    assert observed == pytest.approx(1 / (p + r), rel=0.1)  # G.107: BurstR = 1 / (p + q)
    e = estimate(loss_pct=100 * stats.loss_rate, burst_r=observed)
    assert 1.0 <= e.mos < estimate(loss_pct=100 * stats.loss_rate).mos


def test_burst_ratio_edges_and_errors() -> None:
    assert burst_ratio(0, 100, 0) == 1.0
    assert burst_ratio(100, 100, 1) == 1.0
    assert burst_ratio(10, 100, 10) == pytest.approx(0.9)  # isolated losses: BurstR < 1
    for lost, total, runs in [(-1, 10, 0), (11, 10, 1), (5, 10, 6), (5, 10, 0)]:
        with pytest.raises(ValueError):
            burst_ratio(lost, total, runs)


def test_mouth_to_ear() -> None:
    assert mouth_to_ear_ms(40.0, 60.0) == 120.0
    assert mouth_to_ear_ms(40.0, 60.0, frame_ms=30.0) == 130.0
    for bad in (-1.0, math.nan, math.inf):
        with pytest.raises(ValueError):
            mouth_to_ear_ms(bad, 10.0)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"delay_ms": -1.0},
        {"delay_ms": MAX_DELAY_MS + 1},
        {"loss_pct": 101.0},
        {"loss_pct": math.nan},
        {"burst_r": 0.0},
        {"burst_r": math.inf},
        {"advantage": 25.0},
    ],
)
def test_estimate_refuses_bad_parameters(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        estimate(**kwargs)  # type: ignore[arg-type]


@settings(max_examples=200, deadline=None)
@given(
    delay=st.floats(allow_nan=True, allow_infinity=True),
    loss=st.floats(allow_nan=True, allow_infinity=True),
    burst=st.floats(allow_nan=True, allow_infinity=True),
    advantage=st.floats(0.0, 20.0),
    plc=st.booleans(),
)
def test_estimate_is_defined_or_refused(
    delay: float, loss: float, burst: float, advantage: float, plc: bool
) -> None:
    codec = G711_PLC if plc else G711_NO_PLC
    try:
        e = estimate(delay_ms=delay, loss_pct=loss, burst_r=burst, codec=codec, advantage=advantage)
    except ValueError:
        valid = 0 <= delay <= MAX_DELAY_MS and 0 <= loss <= 100 and 0 < burst < math.inf
        assert not valid
        return
    assert math.isfinite(e.r)
    assert 1.0 <= e.mos <= 4.5


@settings(max_examples=200, deadline=None)
@given(st.floats(allow_nan=True, allow_infinity=True))
def test_mos_from_any_r(r: float) -> None:
    if math.isnan(r):
        with pytest.raises(ValueError):
            mos_from_r(r)
    else:
        assert 1.0 <= mos_from_r(r) <= 4.5


@settings(max_examples=200, deadline=None)
@given(st.integers(-5, 200), st.integers(-5, 200), st.integers(-5, 200))
def test_burst_ratio_from_any_counts(lost: int, total: int, runs: int) -> None:
    try:
        value = burst_ratio(lost, total, runs)
    except ValueError:
        assert min(lost, total, runs) < 0 or lost > total or runs > lost or (lost and not runs)
        return
    assert 0.0 < value < math.inf


@settings(max_examples=100, deadline=None)
@given(st.floats(allow_nan=True), st.floats(allow_nan=True), st.floats(allow_nan=True))
def test_mouth_to_ear_from_any_parts(network: float, buffer: float, frame: float) -> None:
    try:
        total = mouth_to_ear_ms(network, buffer, frame)
    except ValueError:
        assert not all(0 <= v <= MAX_DELAY_MS for v in (network, buffer, frame))
        return
    assert total == pytest.approx(network + buffer + frame)

"""The pacer: one tick per stream per 20 ms of grid, slots kept level, failures isolated."""

from __future__ import annotations

import asyncio

import pytest

from trunkline.net.pacer import PERIOD_S, SLOTS, LatenessHistogram, Pacer


class Counter:
    def __init__(self) -> None:
        self.grid: list[float] = []

    def on_tick(self, now: float) -> None:
        self.grid.append(now)


class Broken:
    def on_tick(self, now: float) -> None:
        raise RuntimeError("boom")


async def test_each_stream_ticks_on_its_own_20ms_grid() -> None:
    pacer = Pacer()
    streams = [Counter() for _ in range(45)]
    for s in streams:
        pacer.add(s)
    pacer.start()
    try:
        while min(len(s.grid) for s in streams) < 10:
            await asyncio.sleep(0.02)
    finally:
        pacer.stop()
    for s in streams:
        gaps = {round(b - a, 6) for a, b in zip(s.grid, s.grid[1:], strict=False)}
        # Grid times, not wall times: exactly one period apart, whatever the loop did.
        assert gaps == {round(PERIOD_S, 6)}


def test_streams_spread_evenly_over_slots() -> None:
    pacer = Pacer()  # adding streams needs no loop; only start() does
    for _ in range(SLOTS * 3 + 5):
        pacer.add(Counter())
    sizes = sorted(len(slot) for slot in pacer._slots)
    assert sizes[-1] - sizes[0] <= 1
    assert pacer.stream_count == SLOTS * 3 + 5


async def test_removed_stream_stops_and_broken_stream_is_dropped(
    caplog: pytest.LogCaptureFixture,
) -> None:
    loop = asyncio.get_running_loop()
    errors: list[dict[str, object]] = []
    loop.set_exception_handler(lambda _loop, ctx: errors.append(ctx))
    pacer = Pacer()
    keep, gone, broken = Counter(), Counter(), Broken()
    for s in (keep, gone, broken):
        pacer.add(s)
    pacer.start()
    try:
        while len(keep.grid) < 3:
            await asyncio.sleep(0.02)
        pacer.remove(gone)
        count = len(gone.grid)
        while len(keep.grid) < 8:
            await asyncio.sleep(0.02)
    finally:
        pacer.stop()
        loop.set_exception_handler(None)
    assert len(gone.grid) == count
    assert pacer.stream_count == 1  # the broken one was removed, the good one kept going
    assert any("paced stream failed" in str(e.get("message")) for e in errors)


def test_histogram_percentiles() -> None:
    h = LatenessHistogram()
    for _ in range(98):
        h.add(0.00035)
    h.add(0.00455)
    h.add(0.5)  # beyond the last bucket: counted in it
    assert h.percentile(50) == pytest.approx(0.0004)
    assert h.percentile(99) == pytest.approx(0.0046)
    assert h.percentile(100) == pytest.approx(0.2)
    assert h.share_over(0.020) == pytest.approx(0.01)
    h.reset()
    assert h.total == 0 and h.percentile(99) == 0.0

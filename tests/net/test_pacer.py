"""The pacer: one tick per stream per 20 ms of grid, slots kept level, failures isolated."""

from __future__ import annotations

import asyncio
import socket

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


def _udp_pair() -> tuple[socket.socket, socket.socket]:
    """(reader, writer): the writer is connected to the reader, both non-blocking."""
    reader = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    reader.bind(("127.0.0.1", 0))
    reader.setblocking(False)
    writer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    writer.connect(reader.getsockname())
    return reader, writer


async def test_readers_are_called_from_the_pacer_until_their_socket_is_drained() -> None:
    pacer = Pacer()
    (a, a_out), (b, b_out) = _udp_pair(), _udp_pair()
    got: list[tuple[str, bytes]] = []
    pacer.add_reader(a.fileno(), lambda: got.append(("a", a.recv(2048))))
    pacer.add_reader(b.fileno(), lambda: got.append(("b", b.recv(2048))))
    pacer.start()
    try:
        for i in range(3):
            a_out.send(b"a%d" % i)  # three waiting at once: one read per wake
        b_out.send(b"b0")
        for _ in range(200):
            if len(got) == 4:
                break
            await asyncio.sleep(0.005)
        assert sorted(got) == [("a", b"a0"), ("a", b"a1"), ("a", b"a2"), ("b", b"b0")]
        assert [p for who, p in got if who == "a"] == [b"a0", b"a1", b"a2"]  # in order
        pacer.remove_reader(b.fileno())
        b_out.send(b"b1")
        a_out.send(b"a3")
        for _ in range(200):
            if len(got) == 5:
                break
            await asyncio.sleep(0.005)
        await asyncio.sleep(0.02)  # a few more wakes: b's reader must stay quiet
        assert got[-1] == ("a", b"a3") and len(got) == 5
        assert b.recv(2048) == b"b1"  # still waiting in b's socket, unread
    finally:
        pacer.close()
        for s in (a, a_out, b, b_out):
            s.close()


async def test_a_failing_reader_is_reported_and_the_others_keep_reading() -> None:
    loop = asyncio.get_running_loop()
    errors: list[dict[str, object]] = []
    loop.set_exception_handler(lambda _loop, ctx: errors.append(ctx))
    pacer = Pacer()
    (bad, bad_out), (good, good_out) = _udp_pair(), _udp_pair()
    got: list[bytes] = []

    def broken() -> None:
        bad.recv(2048)
        raise RuntimeError("boom")

    pacer.add_reader(bad.fileno(), broken)
    pacer.add_reader(good.fileno(), lambda: got.append(good.recv(2048)))
    pacer.start()
    try:
        bad_out.send(b"x")
        good_out.send(b"y")
        for _ in range(200):
            if got and errors:
                break
            await asyncio.sleep(0.005)
    finally:
        pacer.close()
        loop.set_exception_handler(None)
        for s in (bad, bad_out, good, good_out):
            s.close()
    assert got == [b"y"]
    assert any("pacer reader failed" in str(e.get("message")) for e in errors)


async def test_a_reused_descriptor_gets_its_new_reader() -> None:
    pacer = Pacer()
    first, first_out = _udp_pair()
    pacer.add_reader(first.fileno(), lambda: None)
    fd = first.fileno()
    first.close()  # closed without remove_reader: the epoll set forgets it by itself
    first_out.close()
    second, second_out = _udp_pair()
    got: list[bytes] = []
    try:
        if second.fileno() != fd:
            pytest.skip("the OS did not reuse the descriptor")
        pacer.add_reader(second.fileno(), lambda: got.append(second.recv(2048)))
        pacer.start()
        second_out.send(b"z")
        for _ in range(200):
            if got:
                break
            await asyncio.sleep(0.005)
        assert got == [b"z"]
    finally:
        pacer.close()
        second.close()
        second_out.close()

"""One process-wide pacer that drives every leg's media on a 20 ms grid.

Theory of operation
-------------------
Real-time media needs one packet per call every 20 ms. A task or a timer per call costs a
heap entry and a wake-up per packet; at a thousand calls that is 50,000 wake-ups a second
before any work is done. Instead the pacer keeps a wheel of ``SLOTS`` slots, ``SLOT_S``
apart (20 slots of 1 ms), and one timer (``loop.call_later``). Each stream lives in one slot
and is ticked when its slot comes round, so the loop wakes at most 1,000 times a second
whatever the number of calls, and each slot holds 1/20 of them.

A stream's ``on_tick`` does all its per-frame work at once: play out one inbound frame
from the jitter buffer and send one outbound frame.

The pacer also reads the streams' sockets (``add_reader``). Each wake-up first asks its
own epoll, without blocking, which sockets have a packet and calls their readers, then
ticks the slot. The RTP sockets are never in the event loop's own poller, so packets
arriving between two slots do not wake the loop (with a thousand calls on a 20-slot grid
they arrive in about a thousand bursts a second, as many wake-ups again as the timer's),
and a packet costs one entry in a list rather than a loop callback. The price is up to
1 ms before a packet is read, which the jitter buffer absorbs, and at most one read per
socket per millisecond (``SipRtpLeg`` reads one packet per call), which also bounds what a
flood on one port can cost. Where ``select.epoll`` does not exist (not Linux) the
readers go on the event loop instead.

If the loop stalls, the pacer catches up by running the missed slots back to back (each
stream still gets one tick per 20 ms of grid), but after a stall longer than
``MAX_CATCH_UP_S`` it drops the missed grid rather than flood the network with a burst.

Send lateness (the time a stream's tick finished minus its grid time) is counted in a
fixed histogram, so measuring it allocates nothing. Each slot is read once, when its
last stream is done, and that lateness is counted for every stream in the slot: an
upper bound per packet that costs one clock read per millisecond, not one per packet.
"""

from __future__ import annotations

import asyncio
import math
import select
import time
from collections.abc import Callable
from typing import Protocol

SLOTS = 20
SLOT_S = 0.001
PERIOD_S = SLOTS * SLOT_S  # 20 ms, one RTP packet of G.711 at 8 kHz
# A stall longer than this is not caught up: sending 5 packets at once to every call
# would only overflow jitter buffers at the far end.
MAX_CATCH_UP_S = 0.1
# Lateness histogram: 0.1 ms buckets up to 200 ms; the last bucket holds everything later.
HIST_BUCKET_S = 0.0001
HIST_BUCKETS = 2000


_EPOLL = hasattr(select, "epoll")


class PacedStream(Protocol):
    def on_tick(self, now: float) -> None:
        """Called once per 20 ms; ``now`` is the grid time (``time.monotonic()``) of the tick."""


class LatenessHistogram:
    """Counts of tick lateness in 0.1 ms buckets, with percentiles."""

    def __init__(self) -> None:
        self.counts = [0] * HIST_BUCKETS
        self.total = 0

    def reset(self) -> None:
        self.counts = [0] * HIST_BUCKETS
        self.total = 0

    def add(self, lateness_s: float, count: int = 1) -> None:
        i = int(lateness_s / HIST_BUCKET_S)
        if i < 0:
            i = 0
        elif i >= HIST_BUCKETS:
            i = HIST_BUCKETS - 1
        self.counts[i] += count
        self.total += count

    def percentile(self, p: float) -> float:
        """The upper edge (seconds) of the bucket holding the p-th percentile tick."""
        if self.total == 0:
            return 0.0
        want = p / 100 * self.total
        seen = 0
        for i, n in enumerate(self.counts):
            seen += n
            if seen >= want:
                return (i + 1) * HIST_BUCKET_S
        return HIST_BUCKETS * HIST_BUCKET_S

    def share_over(self, seconds: float) -> float:
        if self.total == 0:
            return 0.0
        first = int(seconds / HIST_BUCKET_S) + 1
        return sum(self.counts[first:]) / self.total


class Pacer:
    """The 20 ms media clock of a process. Start it once; add and remove streams freely."""

    def __init__(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        self._loop = loop
        self._slots: list[list[PacedStream]] = [[] for _ in range(SLOTS)]
        self._where: dict[int, int] = {}  # id(stream) -> slot index
        self._next_slot = 0
        self._next_time = 0.0
        self._handle: asyncio.TimerHandle | None = None
        self.lateness = LatenessHistogram()
        self.ticks = 0
        self.dropped_grid_s = 0.0
        self._readers: dict[int, Callable[[], None]] = {}
        self._poller: select.epoll | None = None  # made by the first add_reader

    @property
    def stream_count(self) -> int:
        return len(self._where)

    def start(self) -> None:
        if self._handle is not None:
            return
        self._loop = self._loop or asyncio.get_running_loop()
        self._next_time = time.monotonic() + SLOT_S
        self._arm()

    def _arm(self) -> None:
        """Sleep until the next slot, never waking early.

        uvloop keeps timers in whole milliseconds and truncates delays, so a wake-up
        asked for 0.6 ms ahead fires at once; re-arming it would spin the loop at 100%
        CPU until the millisecond turns. Rounding the delay up costs at most 1 ms of
        lateness and lets the loop sleep.
        """
        assert self._loop is not None
        delay = self._next_time - time.monotonic()
        delay_ms = math.ceil(delay * 1000) if delay > 0 else 0
        self._handle = self._loop.call_later(delay_ms / 1000, self._run)

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def add_reader(self, fd: int, callback: Callable[[], None]) -> None:
        """Call ``callback`` from the pacer's wake-ups while ``fd`` is readable.

        The callback should read once (one packet): it is called again a millisecond
        later if more is waiting. Once started the pacer must be running for anything
        to be read; a callback that raises is reported to the loop's exception handler.
        """
        if not _EPOLL:
            loop = self._loop or asyncio.get_running_loop()
            loop.add_reader(fd, callback)
            self._readers[fd] = callback
            return
        if self._poller is None:
            self._poller = select.epoll()
        try:
            self._poller.register(fd, select.EPOLLIN)
        except FileExistsError:
            pass  # registered already: the new callback replaces the old one
        self._readers[fd] = callback

    def remove_reader(self, fd: int) -> None:
        """Stop reading ``fd``. Call it before the socket is closed."""
        if self._readers.pop(fd, None) is None:
            return
        if not _EPOLL:
            (self._loop or asyncio.get_running_loop()).remove_reader(fd)
        elif self._poller is not None:
            try:
                self._poller.unregister(fd)
            except OSError:  # already closed, so already out of the epoll set
                pass

    def close(self) -> None:
        """Stop, and release the poller (tests and short-lived pacers)."""
        self.stop()
        if self._poller is not None:
            self._poller.close()
            self._poller = None
        self._readers.clear()

    def _read_ready(self) -> None:
        """Call the reader of every socket that has a packet waiting (one epoll call)."""
        assert self._poller is not None
        readers = self._readers
        # maxevents: every socket may be ready after a stall; each is read once.
        for fd, _ in self._poller.poll(0, len(readers)):
            reader = readers.get(fd)
            if reader is None:
                continue
            try:
                reader()
            except Exception:  # one broken reader must not stop every call's media
                assert self._loop is not None
                self._loop.call_exception_handler(
                    {"message": "pacer reader failed", "fd": fd, "reader": reader}
                )

    def add(self, stream: PacedStream) -> None:
        """Put a stream in the emptiest slot, so the work per millisecond stays level."""
        if id(stream) in self._where:
            return
        index = min(range(SLOTS), key=lambda i: len(self._slots[i]))
        self._slots[index].append(stream)
        self._where[id(stream)] = index

    def remove(self, stream: PacedStream) -> None:
        index = self._where.pop(id(stream), None)
        if index is not None:
            slot = self._slots[index]
            # Rebuild rather than list.remove so a slot being iterated is not mutated.
            self._slots[index] = [s for s in slot if s is not stream]

    def _run(self) -> None:
        loop = self._loop
        assert loop is not None
        # The grid is kept on time.monotonic(), not loop.time(): uvloop's loop time is a
        # millisecond clock cached per iteration, too coarse to measure lateness with.
        mono = time.monotonic
        now = mono()
        if now - self._next_time > MAX_CATCH_UP_S:
            skipped = int((now - self._next_time) / SLOT_S)
            self.dropped_grid_s += skipped * SLOT_S
            self._next_time += skipped * SLOT_S
            self._next_slot = (self._next_slot + skipped) % SLOTS
        if self._readers and self._poller is not None:
            self._read_ready()
        add = self.lateness.add
        while self._next_time <= now:
            grid = self._next_time
            slot = self._slots[self._next_slot]
            for stream in slot:
                try:
                    stream.on_tick(grid)
                except Exception:  # one broken stream must not stop every call's media
                    self.remove(stream)
                    loop.call_exception_handler(
                        {"message": "paced stream failed; removed", "stream": stream}
                    )
            if slot:
                # Every stream of the slot is counted as late as the last one finished:
                # an upper bound per packet, for one clock read per slot, not per packet.
                add(mono() - grid, len(slot))
            self.ticks += 1
            self._next_slot = (self._next_slot + 1) % SLOTS
            self._next_time = grid + SLOT_S
        self._arm()

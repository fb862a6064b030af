"""SIP timer values (RFC 3261 §17, Table 4 of Appendix A; RFC 6026) and one timer queue.

Theory of operation
-------------------
Every transaction and call arms its timers on one :class:`TimerQueue` owned by the user
agent: a binary heap of ``(deadline, seq, handle)`` with lazy cancellation. The user agent
reports the earliest live deadline from ``get_timer()`` and, from ``handle_timer(now)``,
pops every due handle and calls its owner's ``on_timer(name, now)``. Cancelling marks the
handle dead; dead handles are skipped when they reach the top. So arming and cancelling
cost O(log n) and the adapter needs only one ``loop.call_at`` for thousands of calls.

Durations are computed by :class:`TimerConfig` from T1, T2 and T4 so tests can shrink
them. Over a reliable transport the retransmission timers (A, E, G) are never armed and
the "wait for retransmissions" timers (D, I, J, K) are zero (§17.1.1.2, §17.1.2.2,
§17.2.1, §17.2.2).
"""

from __future__ import annotations

import enum
import heapq
import itertools
from dataclasses import dataclass
from typing import Protocol

T1_DEFAULT = 0.5  # §17.1.1.1: RTT estimate
T2_DEFAULT = 4.0  # §17.1.2.2: longest retransmit interval (non-INVITE requests, INVITE responses)
T4_DEFAULT = 5.0  # §17.1.2.2: maximum duration a message remains in the network
TIMER_D_UDP = 32.0  # §17.1.1.2: "at least 32 seconds for unreliable transports"
TIMER_C_DEFAULT = 180.0  # §16.6 step 11: "greater than 3 minutes" (a proxy timer; see Timer.C)


class Timer(enum.Enum):
    """The RFC 3261 timers (Table 4), RFC 6026's L and M, and the UA core's own timers."""

    A = "A"  # §17.1.1.2 INVITE request retransmit (UDP), T1 doubling
    B = "B"  # §17.1.1.2 INVITE transaction timeout, 64*T1
    # C is a proxy timer (§16.6); the UA applies it to an outbound INVITE stuck in
    # Proceeding (1xx but no final answer) so a call cannot ring forever: on expiry the
    # UAC CANCELs and reports 408.
    C = "C"
    D = "D"  # §17.1.1.2 wait time for response retransmits, >=32 s UDP, 0 reliable
    E = "E"  # §17.1.2.2 non-INVITE request retransmit (UDP), T1 doubling up to T2
    F = "F"  # §17.1.2.2 non-INVITE transaction timeout, 64*T1
    G = "G"  # §17.2.1 INVITE response retransmit (UDP), T1 doubling up to T2
    H = "H"  # §17.2.1 wait time for ACK receipt, 64*T1
    I = "I"  # noqa: E741  §17.2.1 wait time for ACK retransmits, T4 UDP, 0 reliable
    J = "J"  # §17.2.2 wait time for non-INVITE request retransmits, 64*T1 UDP, 0 reliable
    K = "K"  # §17.1.2.2 wait time for response retransmits, T4 UDP, 0 reliable
    L = "L"  # RFC 6026 wait time for accepted INVITE request retransmits, 64*T1
    M = "M"  # RFC 6026 wait time for retransmission of 2xx to INVITE, 64*T1
    # UA core timers (not transaction timers):
    RETRANSMIT_2XX = "2xx"  # §13.3.1.4 UAS re-sends its 2xx, T1 doubling up to T2
    ACK_WAIT = "ack-wait"  # §13.3.1.4 no ACK within 64*T1: BYE and end the call
    CANCEL_WAIT = "cancel-wait"  # §9.1 no final answer 64*T1 after CANCEL: give up


@dataclass(frozen=True, slots=True)
class TimerConfig:
    """T1/T2/T4 and the durations derived from them (RFC 3261 Table 4)."""

    t1: float = T1_DEFAULT
    t2: float = T2_DEFAULT
    t4: float = T4_DEFAULT
    timer_c: float = TIMER_C_DEFAULT

    @property
    def timeout(self) -> float:
        """64*T1: Timers B, F, H, J (UDP), L, M and the UA core's waits."""
        return 64 * self.t1

    def d(self, reliable: bool) -> float:
        return 0.0 if reliable else max(TIMER_D_UDP, self.timeout)

    def i(self, reliable: bool) -> float:
        return 0.0 if reliable else self.t4

    def j(self, reliable: bool) -> float:
        return 0.0 if reliable else self.timeout

    def k(self, reliable: bool) -> float:
        return 0.0 if reliable else self.t4


class TimerOwner(Protocol):
    """Anything that arms timers on a :class:`TimerQueue`."""

    def on_timer(self, timer: Timer, now: float) -> None: ...


class TimerHandle:
    """One armed timer; ``cancel()`` it when the owner leaves the state that armed it."""

    __slots__ = ("alive", "deadline", "owner", "timer")

    def __init__(self, deadline: float, owner: TimerOwner, timer: Timer) -> None:
        self.deadline = deadline
        self.owner = owner
        self.timer = timer
        self.alive = True

    def cancel(self) -> None:
        self.alive = False


class TimerQueue:
    """A min-heap of timer deadlines with lazy cancellation."""

    __slots__ = ("_heap", "_seq")

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, TimerHandle]] = []
        self._seq = itertools.count()

    def __len__(self) -> int:
        """Live timers (O(n); for tests)."""
        return sum(1 for _, _, h in self._heap if h.alive)

    def arm(self, deadline: float, owner: TimerOwner, timer: Timer) -> TimerHandle:
        """Schedule ``owner.on_timer(timer, now)`` at ``deadline``."""
        handle = TimerHandle(deadline, owner, timer)
        heapq.heappush(self._heap, (deadline, next(self._seq), handle))
        return handle

    def next_deadline(self) -> float | None:
        """The earliest live deadline, or None."""
        heap = self._heap
        while heap and not heap[0][2].alive:
            heapq.heappop(heap)
        return heap[0][0] if heap else None

    def fire_due(self, now: float) -> int:
        """Fire every live timer due at ``now`` in deadline order; return how many fired.

        A timer armed by a callback with a deadline <= now fires in the same call.
        """
        heap = self._heap
        fired = 0
        while heap and heap[0][0] <= now:
            _, _, handle = heapq.heappop(heap)
            if handle.alive:
                handle.alive = False
                fired += 1
                handle.owner.on_timer(handle.timer, now)
        return fired

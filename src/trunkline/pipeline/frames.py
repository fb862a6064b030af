"""What flows through a call's pipeline, and the three tiers frames travel in.

Theory of operation
-------------------
Pipecat's frame tiers, without its queues:

- **data** frames are the media itself and what the caller typed: a 20 ms PCM frame is a
  plain ``bytes`` (never wrapped: a thousand calls make 50,000 of them a second, and a
  wrapper object per frame is pure cost), a keypress is the leg's own ``Dtmf`` event;
- **control** frames say something about the stream: speech started or stopped (VAD),
  a mark was played, the far end put the call on hold;
- **system** frames must overtake everything: the caller hung up, the pipeline is being
  cancelled, a barge-in must silence the agent now.

Inside the per-frame chain (:mod:`trunkline.pipeline.processor`) every frame is handled
by a direct call the moment it arrives, so there is nothing to overtake there: order is
arrival order. Tiers matter where a frame must wait, which is only where the chain hands
work to the call's task (a finished turn for the brain). :class:`TieredQueue` is that
hand-off: system frames go ahead of whatever data and control frames are waiting, and
data and control frames keep their order among themselves.
"""

from __future__ import annotations

import asyncio
import enum
from collections import deque
from dataclasses import dataclass
from typing import Generic, TypeVar

from trunkline.net.leg import Dtmf, Hangup, HoldChanged, MarkReached


class Tier(enum.IntEnum):
    """How a frame travels: SYSTEM overtakes, DATA and CONTROL keep their relative order."""

    DATA = 0
    CONTROL = 1
    SYSTEM = 2


@dataclass(frozen=True, slots=True)
class SpeechStarted:
    """VAD: the caller started speaking; ``frame`` is the index of the confirming frame."""

    frame: int


@dataclass(frozen=True, slots=True)
class SpeechStopped:
    """VAD: the caller stopped speaking; ``last_speech`` is the index of the last voiced frame."""

    last_speech: int


@dataclass(frozen=True, slots=True)
class Interrupt:
    """System: stop what the agent is saying now (barge-in)."""

    reason: str = "barge-in"


@dataclass(frozen=True, slots=True)
class Cancel:
    """System: the pipeline is being torn down (the call ended or the worker is stopping)."""

    reason: str


Frame = (
    bytes
    | Dtmf
    | MarkReached
    | HoldChanged
    | Hangup
    | SpeechStarted
    | SpeechStopped
    | Interrupt
    | Cancel
)
"""Everything a processor may receive. ``bytes`` is one 20 ms frame of 8 kHz s16le PCM."""

_TIERS: dict[type, Tier] = {
    bytes: Tier.DATA,
    Dtmf: Tier.DATA,
    MarkReached: Tier.CONTROL,
    HoldChanged: Tier.CONTROL,
    SpeechStarted: Tier.CONTROL,
    SpeechStopped: Tier.CONTROL,
    Hangup: Tier.SYSTEM,  # the leg's Hangup: the caller (or we) ended the call
    Interrupt: Tier.SYSTEM,
    Cancel: Tier.SYSTEM,
}


def tier_of(item: object) -> Tier:
    """The tier of a frame; anything else (a finished turn, say) travels as CONTROL."""
    return _TIERS.get(item.__class__, Tier.CONTROL)


T = TypeVar("T")


class TieredQueue(Generic[T]):
    """An unbounded queue where system-tier items overtake the others.

    Items are classified by :func:`tier_of`. Among system items, and among the rest,
    order is first in, first out. Only one task should ``get`` at a time.
    """

    def __init__(self) -> None:
        self._system: deque[T] = deque()
        self._ordered: deque[T] = deque()
        self._ready = asyncio.Event()

    def __len__(self) -> int:
        return len(self._system) + len(self._ordered)

    def put(self, item: T) -> None:
        """Add ``item``; never blocks."""
        if tier_of(item) is Tier.SYSTEM:
            self._system.append(item)
        else:
            self._ordered.append(item)
        self._ready.set()

    def get_nowait(self) -> T | None:
        """The next item, or None when the queue is empty."""
        if self._system:
            item = self._system.popleft()
        elif self._ordered:
            item = self._ordered.popleft()
        else:
            return None
        if not self._system and not self._ordered:
            self._ready.clear()
        return item

    async def get(self) -> T:
        """Wait for the next item (a system item first, if any is waiting)."""
        while True:
            item = self.get_nowait()
            if item is not None:
                return item
            await self._ready.wait()

    def drop_ordered(self) -> list[T]:
        """Remove and return every waiting data and control item (system items stay)."""
        dropped = list(self._ordered)
        self._ordered.clear()
        if not self._system:
            self._ready.clear()
        return dropped

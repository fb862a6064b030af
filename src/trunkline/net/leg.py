"""The media contract every leg implements: SIP/RTP, WebSocket stream, browser, lab caller.

Theory of operation
-------------------
A leg is one party's audio and call control, seen from the app that runs on it. The app
never learns whether the leg is SIP or a WebSocket.

Inbound is push, not pull: the leg calls ``sink.on_audio(pcm)`` once per 20 ms frame and
``sink.on_event(event)`` for DTMF, marks, hold and hangup. That keeps the per-frame path a
plain function call: no queue hop and no task per frame, which is what lets one process
carry a thousand calls (pipecat's two tasks per processor per frame is the cost we avoid).

Outbound, ``send_audio`` appends frames to the leg's queue. The process-wide pacer
(:mod:`trunkline.net.pacer`) takes one frame from every leg's queue on a 20 ms grid and
puts it on the wire, so apps may produce audio in bursts (TTS renders faster than real
time) and barge-in is a matter of ``clear()`` dropping the queue.

All PCM is 8 kHz 16-bit mono little-endian, 20 ms per frame (:mod:`trunkline.media.audio`).

One shortcut is part of the contract: ``loop_back()`` asks the leg to send every inbound
frame straight back (an echo, or a test line). By default that is a sink that queues each
frame it is given, so it behaves exactly like an app doing the same; a leg whose wire
format is the same both ways (RTP with one codec) may skip the decode and the re-encode
and send the received payload back as it is, as long as the caller hears the same
thing: the same frames in the same order, with silence for lost frames, DTMF and marks
as before. An app that wants the PCM attaches a sink instead.
"""

from __future__ import annotations

import abc
import asyncio
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Literal, Protocol

from trunkline.media.audio import FRAME_BYTES, split_frames


@dataclass(frozen=True, slots=True)
class Dtmf:
    """A DTMF digit the caller pressed (RFC 4733 event, SIP INFO, or a WS ``dtmf`` event)."""

    digit: str
    duration_ms: int = 0


@dataclass(frozen=True, slots=True)
class MarkReached:
    """Outbound audio queued before ``mark(name)`` has been played out."""

    name: str


@dataclass(frozen=True, slots=True)
class HoldChanged:
    """The far end put the call on hold (``on=True``) or took it off hold."""

    on: bool


@dataclass(frozen=True, slots=True)
class Hangup:
    """The leg has ended. ``by`` says which side ended it."""

    reason: str
    by: Literal["remote", "local"]


LegEvent = Dtmf | MarkReached | HoldChanged | Hangup


@dataclass(frozen=True, slots=True)
class TransferResult:
    """How a transfer request ended: ``ok`` when the far end accepted and reached the target."""

    ok: bool
    status: int
    detail: str = ""


class MediaSink(Protocol):
    """What an app gives a leg to receive inbound audio and events."""

    def on_audio(self, pcm: bytes) -> None:
        """One 20 ms frame. Called from the event loop; must not block."""

    def on_event(self, event: LegEvent) -> None:
        """A non-audio event. ``Hangup`` is always the last call a sink receives."""


@dataclass
class LegInfo:
    """What is known of the call when the leg is handed to an app."""

    kind: Literal["sip", "ws"]
    call_id: str
    from_uri: str = ""
    to_uri: str = ""
    extra: dict[str, str] = field(default_factory=dict)


class MediaLeg(abc.ABC):
    """Base class with the outbound queue and mark bookkeeping shared by all legs.

    Subclasses feed inbound audio to ``self.sink``, drain ``self.out`` from their pacer
    tick, and implement transfer and hangup for their protocol.
    """

    def __init__(self, info: LegInfo) -> None:
        self.info = info
        self.sink: MediaSink | None = None
        # Outbound frames; a str entry is a mark name that is reported once reached.
        self.out: deque[bytes | str] = deque()
        self.closed: asyncio.Future[Hangup] = asyncio.get_running_loop().create_future()
        #: ``time.monotonic()`` when the call was answered (set by legs that know it).
        self.answered_at = 0.0

    @property
    def call_id(self) -> str:
        return self.info.call_id

    def attach(self, sink: MediaSink) -> None:
        """Start delivering inbound audio and events to ``sink``."""
        self.sink = sink

    def loop_back(self) -> None:
        """Send every inbound frame back to the caller, in the tick it is delivered.

        Replaces any sink. Audio queued with ``send_audio`` still plays, in order with
        the echoed frames. Legs may implement this without decoding (see the module
        notes); what the caller hears is the same either way.
        """
        self.attach(LoopbackSink(self))

    def send_audio(self, pcm: bytes) -> None:
        """Queue PCM for playout; any length, cut into 20 ms frames (a short tail is padded)."""
        if self.closed.done():
            return
        if len(pcm) == FRAME_BYTES:
            self.out.append(pcm)
        else:
            self.out.extend(split_frames(pcm))

    def mark(self, name: str) -> None:
        """Report ``MarkReached(name)`` once everything queued so far has been played."""
        if not self.closed.done():
            self.out.append(name)

    def clear(self) -> None:
        """Drop all queued outbound audio now (barge-in). Pending marks are reported."""
        pending = [item for item in self.out if isinstance(item, str)]
        self.out.clear()
        for name in pending:
            self._emit(MarkReached(name))

    @property
    def queued_frames(self) -> int:
        return sum(1 for item in self.out if not isinstance(item, str))

    def next_outbound(self) -> bytes | None:
        """Pop the next frame to send, reporting any marks passed on the way."""
        out = self.out
        while out:
            item = out.popleft()
            if isinstance(item, bytes):
                return item
            self._emit(MarkReached(item))
        return None

    def inbound_age_s(self, now: float) -> float:
        """How long before ``now`` the inbound frame being delivered arrived.

        0.0 for a leg that delivers frames as they arrive (WebSocket); an RTP leg's
        jitter buffer holds frames for a while. Apps that must time their answers to
        the caller's audio exactly (the lab's reference ``delay`` app) correct for it.
        """
        return 0.0

    def _emit(self, event: LegEvent) -> None:
        if self.sink is not None:
            self.sink.on_event(event)

    def _finish(self, reason: str, by: Literal["remote", "local"]) -> None:
        """Mark the leg ended once, and tell the sink last."""
        if self.closed.done():
            return
        event = Hangup(reason, by)
        self.out.clear()
        self.closed.set_result(event)
        self._emit(event)

    @abc.abstractmethod
    async def transfer(self, target: str) -> TransferResult:
        """Ask the far end to move the caller to ``target`` (SIP REFER, or a WS transfer event)."""

    @abc.abstractmethod
    async def hangup(self, reason: str = "normal") -> None:
        """End the call from our side (SIP BYE or CANCEL, or close the stream)."""

    async def wait_closed(self) -> Hangup:
        return await self.closed


class LoopbackSink:
    """A sink that queues every inbound frame on its own leg, and ignores events."""

    __slots__ = ("out",)

    def __init__(self, leg: MediaLeg) -> None:
        self.out = leg.out

    def on_audio(self, pcm: bytes) -> None:
        self.out.append(pcm)  # frames from a leg are always whole 20 ms frames

    def on_event(self, event: LegEvent) -> None:
        return None  # DTMF and hangup are recorded by the leg itself


CallHandler = Callable[[MediaLeg], Awaitable[None]]
"""An app: runs one call on its leg and returns when done (the leg is hung up after)."""

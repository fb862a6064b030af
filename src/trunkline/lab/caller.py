"""One synthetic call: dial, run the script against what the caller hears, measure, hang up.

Theory of operation
-------------------
A call is one task. It dials (SIP through the lab's shared :class:`SipCalls`, or a
Media Stream over WebSocket), then runs its :class:`~trunkline.lab.script.CallScript`
step by step. It never polls audio: the leg feeds the :class:`~trunkline.lab.ear.Ear`
from the pacer tick or the socket, the ear wakes the task only when the agent starts a
new stretch of speech, and the task otherwise sleeps on timers ("the agent has been
quiet for ``QUIET_S``"). So a waiting caller costs nothing per frame.

Timing is read from two places, both on ``time.monotonic()``:

- the caller's speech: a mark before an utterance's first frame is reported in the very
  tick that sends that frame, so speech start and end are that time plus the clip's
  measured speech span (``Utterance.speech_start_s``/``speech_end_s``);
- the agent's speech: the ear's segments, exact to the sample.

Everything else (turn latency, time to first word, dead air, talk-over, barge-in
reaction) is computed from those when the call is over (:mod:`trunkline.lab.measure`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from time import monotonic
from typing import cast

from trunkline.lab.legs import LabRtpLeg, LabWsCaller, sleep_until
from trunkline.lab.script import BargeIn, CallScript, HangUp, Listen, Press, Say, Silence, Step
from trunkline.lab.voices import Utterance
from trunkline.net.leg import Hangup, LegEvent, MarkReached, MediaLeg
from trunkline.net.ws_client import ClearReceived, TransferRequested

log = logging.getLogger(__name__)

#: The agent counts as done talking after this much quiet (beyond the ear's hangover):
#: long enough to span a pause between two of its sentences, short enough that a caller
#: does not seem slow.
QUIET_S = 0.7
#: How long a barge-in waits to see the agent's audio stop before calling it "never".
BARGE_STOP_WAIT_S = 3.0


@dataclass(slots=True)
class Spoken:
    """One thing the caller did that expects an answer, with when it happened."""

    step: int
    kind: str
    text: str
    start: float  # caller's first speech sample (or first digit)
    end: float  # caller's last speech sample (or last digit)
    barge_onset: float | None = None  # for barge-in: the caller's speech onset


@dataclass(slots=True)
class CallTrace:
    """What happened on the line, for :mod:`trunkline.lab.measure` to turn into figures."""

    answered_at: float = 0.0
    ended_at: float = 0.0
    spoken: list[Spoken] = field(default_factory=list)
    step_times: list[float] = field(default_factory=list)  # when each step began
    hangup_by: str | None = None
    remote_hangup_reason: str = ""
    transfer_target: str | None = None
    cleared: int = 0
    steps_done: int = 0
    timed_out: bool = False


class CallerSink:
    """The leg's sink: marks, hangup, transfer and clear, each waking the script."""

    def __init__(self, trace: CallTrace) -> None:
        self.trace = trace
        self.marks: dict[str, float] = {}
        self._wake: asyncio.Future[None] | None = None
        self.ended = False
        #: Answers a WebSocket transfer request (SIP REFER is answered by the UA).
        self.on_transfer: Callable[[str], None] | None = None

    def on_audio(self, pcm: bytes) -> None:
        """Unused: the lab's legs feed the ear directly."""

    def on_event(self, event: LegEvent) -> None:
        now = monotonic()
        if isinstance(event, MarkReached):
            self.marks[event.name] = now
        elif isinstance(event, Hangup):
            self.ended = True
            self.trace.ended_at = now
            if event.by == "remote":
                self.trace.hangup_by = "agent"
                self.trace.remote_hangup_reason = event.reason
        else:
            other = cast(object, event)
            if isinstance(other, TransferRequested):
                self.trace.transfer_target = other.target
                if self.on_transfer is not None:
                    self.on_transfer(other.target)
            elif isinstance(other, ClearReceived):
                self.trace.cleared += 1
        self.wake()

    def wake(self, _start: float | None = None) -> None:
        wake = self._wake
        if wake is not None and not wake.done():
            wake.set_result(None)

    async def sleep(self, seconds: float) -> None:
        """Sleep up to ``seconds``, or less when something happens on the line."""
        if self.ended or seconds <= 0:
            return
        self._wake = asyncio.get_running_loop().create_future()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake, seconds)
        self._wake = None


class ScriptRunner:
    """Runs one script on an answered leg (a :class:`LabRtpLeg` or :class:`LabWsCaller`)."""

    def __init__(
        self,
        leg: LabRtpLeg | LabWsCaller,
        script: CallScript,
        lines: dict[str, Utterance],
        trace: CallTrace,
    ) -> None:
        self.leg = leg
        self.script = script
        self.lines = lines
        self.trace = trace
        self.sink = CallerSink(trace)
        leg.attach(self.sink)
        leg.ear.on_onset = self.sink.wake
        self._marks = 0
        self._since = trace.answered_at  # the caller's last action ended here

    async def run(self) -> None:
        """Every step, in order, until the script ends or the line does."""
        for index, step in enumerate(self.script.steps):
            if self.sink.ended:
                return
            self.trace.step_times.append(monotonic())
            await self._step(index, step)
            self.trace.steps_done = index + 1
        if not self.sink.ended:
            # The script is over: give the agent its last word (and the chance to hang
            # up itself), then leave.
            await self._agent_done()
            if not self.sink.ended:
                self.trace.hangup_by = "caller"
                await self.leg.hangup("script done")

    async def _step(self, index: int, step: Step) -> None:
        if isinstance(step, Say):
            if step.wait_for_agent:
                await self._agent_done()
            await self.sink.sleep(step.gap_s)
            await self._speak(index, "say", step.text)
        elif isinstance(step, Press):
            if step.wait_for_agent:
                await self._agent_done()
            await self.sink.sleep(step.gap_s)
            await self._press(index, step)
        elif isinstance(step, Silence):
            await self._agent_done()
            await self.sink.sleep(step.seconds)
        elif isinstance(step, BargeIn):
            await self._barge_in(index, step)
        elif isinstance(step, Listen):
            await self._agent_done(step.timeout_s)
        elif isinstance(step, HangUp):
            if step.wait_for_agent:
                await self._agent_done()
            if not self.sink.ended:
                self.trace.hangup_by = "caller"
                await self.leg.hangup("caller hung up")

    # --- listening ------------------------------------------------------------------------

    async def _agent_done(self, reply_timeout: float | None = None) -> None:
        """Wait for the agent to start answering (if it has not) and then to fall quiet."""
        ear, sink = self.leg.ear, self.sink
        limit = self.script.reply_timeout_s if reply_timeout is None else reply_timeout
        deadline = monotonic() + limit
        while (
            not sink.ended
            and ear.onset_after(self._since) is None
            and not ear.speaking(monotonic())
        ):
            left = deadline - monotonic()
            if left <= 0:
                return  # no reply: measure will say so
            await sink.sleep(left)
        while not sink.ended:
            end = ear.last_end() or 0.0
            quiet_at = end + QUIET_S
            now = monotonic()
            if now >= quiet_at:
                return
            await sink.sleep(quiet_at - now)

    # --- speaking -------------------------------------------------------------------------

    async def _speak(self, index: int, kind: str, text: str) -> Spoken | None:
        line = self.lines[text]
        leg = self.leg
        self._marks += 1
        first, last = f"s{self._marks}", f"e{self._marks}"
        leg.mark(first)
        leg.out.extend(line.frames(leg.codec))
        leg.mark(last)
        while first not in self.sink.marks and not self.sink.ended:
            await self.sink.sleep(0.5)
        started = self.sink.marks.get(first)
        if started is None:
            return None
        spoken = Spoken(
            index,
            kind,
            text,
            started + line.speech_start_s,
            started + line.speech_end_s,
        )
        self.trace.spoken.append(spoken)
        await sleep_until(spoken.end)
        self._since = spoken.end
        return spoken

    async def _press(self, index: int, step: Press) -> None:
        leg = self.leg
        start = monotonic()
        for n, digit in enumerate(step.digits):
            if self.sink.ended:
                return
            if n:
                await self.sink.sleep(step.inter_digit_s)
            if isinstance(leg, LabRtpLeg):
                leg.send_dtmf(digit, DTMF_MS)
            else:
                leg.send_dtmf(digit)
        # RFC 4733: the last digit's packets take its duration to go out.
        end = monotonic() + (DTMF_MS / 1000 if isinstance(leg, LabRtpLeg) else 0.0)
        await sleep_until(end)
        self.trace.spoken.append(Spoken(index, "dtmf", step.digits, start, end))
        self._since = end

    async def _barge_in(self, index: int, step: BargeIn) -> None:
        ear, sink = self.leg.ear, self.sink
        deadline = monotonic() + self.script.reply_timeout_s
        onset = ear.onset_after(self._since)
        while onset is None and not sink.ended and monotonic() < deadline:
            await sink.sleep(deadline - monotonic())
            onset = ear.onset_after(self._since)
        if onset is None or sink.ended:
            return
        await sleep_until(onset + step.after_s)
        spoken = await self._speak(index, "barge_in", step.text)
        if spoken is None:
            return
        spoken.barge_onset = spoken.start
        # Give the agent time to stop (or not) before the script moves on.
        stop_by = spoken.start + BARGE_STOP_WAIT_S
        while ear.end_after(spoken.start, monotonic()) is None and monotonic() < stop_by:
            await sink.sleep(0.2)


#: Length of each DTMF digit the lab sends over RTP.
DTMF_MS = 100


async def hang_up_quietly(leg: MediaLeg) -> None:
    """End a call from the lab's side, whatever state it is in."""
    if not leg.closed.done():
        with contextlib.suppress(Exception):
            await leg.hangup("lab done")

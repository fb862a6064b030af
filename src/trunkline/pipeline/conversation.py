"""The per-call turn manager: caller turns in, the brain in the middle, the agent's voice out.

Theory of operation
-------------------
A :class:`Conversation` wires one call: the leg's sink is a :class:`~trunkline.
pipeline.processor.Pipeline` of the VAD and :class:`~trunkline.pipeline.caller.
CallerInput` (the synchronous frame path: endpointing, ASR, DTMF, barge-in), which
queues finished turns. The call's one long-lived task (:meth:`run`) reads them and
feeds the brain one turn at a time, each turn as one task, so that a caller hangup can
cancel a turn stuck in a slow tool call.

A turn's actions stream out as they come: ``Say`` to the :class:`~trunkline.pipeline.
speaker.Speaker` (TTS starts while the brain is still in a tool call), ``Transfer`` and
``Hangup`` once what was said before them has played. After every turn the next
``ListenSpec`` is applied, the turn's timings are recorded (``TurnTiming``: end of
speech, ASR final, first brain output, first TTS audio, first outbound frame, all on
one monotonic clock, in seconds since the call started), and the session is
checkpointed in the background (:mod:`.checkpoint`).

A barge-in while a turn is still running asks the brain (``on_barge_in``, if it has
one) whether to cancel the turn: the LLM brain says yes while its answer streams, so
the chat request is closed in the frame that confirmed the caller's speech and nothing
more of the answer is spoken; the ``Interrupted`` input that follows tells the brain
what was heard. The flow brain has no such hook, and its turn runs on.

When the call ends the record goes to the ``RecordSink`` (a ``RecordWriter``: it never
blocks). Cancelling :meth:`run` is treated as the worker going away: the record is
submitted with the outcome ``abandoned`` and the session is kept for a takeover.

Nothing here lets a provider fail a call: an ASR failure is a turn not understood
(``Speech("")``: the brain's no-match reprompt), a TTS failure skips a sentence, a
store failure is counted, and a brain that raises (it must not) is logged and the call
waits for the caller's next turn.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any, Protocol

from trunkline.agent.brain import Action, Brain, Hangup, Interrupted, Say, Transfer
from trunkline.aio import cancel_and_wait
from trunkline.net.leg import MediaLeg, TransferResult
from trunkline.pipeline.caller import CallerInput, TurnInput
from trunkline.pipeline.checkpoint import Checkpointer
from trunkline.pipeline.frames import Cancel
from trunkline.pipeline.journal import CallJournal
from trunkline.pipeline.processor import Pipeline
from trunkline.pipeline.speaker import PromptCache, Reply, Speaker, TextToSpeech
from trunkline.pipeline.vad import VadProcessor
from trunkline.providers.asr import ASR
from trunkline.runtime.stores.records import CallRecord, TurnTiming
from trunkline.runtime.stores.session import SessionStore

#: Longest wait for a goodbye to play before hanging up anyway (a stalled leg).
FINAL_PLAY_TIMEOUT_S = 30.0
#: Said when a transfer fails; the call then ends politely.
TRANSFER_FAILED_TEXT = "Sorry, I couldn't transfer you right now. Please call again later. Goodbye."


class RecordSink(Protocol):
    """Where the call record goes (:class:`~trunkline.runtime.stores.RecordWriter`)."""

    def submit(self, record: CallRecord) -> None: ...


class Conversation:
    """One call's turn manager. Build it, then ``await run()`` until the call is over.

    Args:
        leg: the call.
        brain: a new brain, or one restored from the session (``resume``).
        agent: the agent's name (for records and sessions).
        asr, tts: the providers.
        sessions, records: the stores.
        resume: True when ``brain`` was restored from the checkpoint at ``session_version``.
        session_version: the stored session's version (0: none).
        transcript: the transcript so far (a restored call).
        brain_t0: the brain's clock at the start (its events are made relative to it).
        clock: the monotonic clock of the timings.
        vad: the VAD processor (webrtcvad mode 2 if None).
        cache: the process-wide prompt cache.
        voice: the TTS voice.
        log: the call's logger (prefixes the Call-ID).
    """

    def __init__(
        self,
        leg: MediaLeg,
        brain: Brain,
        *,
        agent: str,
        asr: ASR,
        tts: TextToSpeech,
        sessions: SessionStore,
        records: RecordSink,
        resume: bool = False,
        session_version: int = 0,
        transcript: list[dict[str, Any]] | None = None,
        brain_t0: float = 0.0,
        clock: Callable[[], float],
        vad: VadProcessor | None = None,
        cache: PromptCache | None = None,
        voice: str | None = None,
        log: logging.Logger | logging.LoggerAdapter[logging.Logger] | None = None,
    ) -> None:
        self.leg = leg
        self.brain = brain
        self.records = records
        self.clock = clock
        self.t0 = clock()
        self.log = log or logging.getLogger(__name__)
        self.journal = CallJournal(
            call_id=leg.call_id, agent=agent, brain_t0=brain_t0, transcript=transcript or ()
        )
        self.speaker = Speaker(
            leg, tts, clock=clock, t0=self.t0, on_played=self._on_played,
            cache=cache, voice=voice, log=self.log,
        )  # fmt: skip
        self.vad = vad if vad is not None else VadProcessor()
        self.caller = CallerInput(
            asr=asr, call_id=leg.call_id, vad=self.vad, speaker=self.speaker,
            journal=self.journal, clock=clock, t0=self.t0, log=self.log,
        )  # fmt: skip
        self.caller.on_barge_in = self._on_barge_in
        self.pipeline = Pipeline(self.vad, self.caller, on_error=self._pipeline_failed)
        self.checkpoints = Checkpointer(
            sessions,
            call_id=leg.call_id,
            version=session_version,
            build=lambda version: self.journal.session(self.brain.snapshot(), version),
            count=self.journal.count,
            log=self.log,
        )
        self._resume = resume
        self._turn_no = 0
        self._turn_task: asyncio.Task[None] | None = None

    @property
    def turns(self) -> int:
        """Turns started so far (the opening turn is number 0)."""
        return self._turn_no

    @property
    def waiting_for_caller(self) -> bool:
        """The agent has had its say and the no-input timer runs."""
        return self.caller.endpointer.no_input_armed

    # --- the call's task -------------------------------------------------------------------

    async def run(self) -> None:
        """Drive the call until it ends (hangup either side, transfer). Cancel = crash."""
        abandoned = False
        self.leg.attach(self.pipeline)
        try:
            if not self.leg.closed.done():
                await self._run_turns()
        except asyncio.CancelledError:
            abandoned = True
            raise
        finally:
            await self._close(abandoned)

    async def _run_turns(self) -> None:
        item: TurnInput | None = None  # None: the opening turn (start or resume)
        while True:
            turn = self._turn_task = asyncio.create_task(self._turn(item))
            waits: set[asyncio.Future[Any]] = {turn, self.leg.closed}
            try:
                await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            finally:
                self._turn_task = None
            if not turn.done():  # the caller hung up mid-turn
                await cancel_and_wait(turn)
                return
            if turn.cancelled():  # a barge-in cut it; the Interrupted input comes next
                self.journal.count("turns_cut")
            elif turn.exception() is not None:  # a bug: keep the call, wait for the caller
                self.journal.count("turn_errors")
                self.log.error("turn failed", exc_info=turn.exception())
                self.caller.maybe_arm_no_input()
            if self.caller.ending or self.leg.closed.done():
                return
            got = await self.caller.inputs.get()
            if isinstance(got, Cancel):
                return
            item = got

    async def _turn(self, item: TurnInput | None) -> None:
        timing = TurnTiming(turn=self._turn_no)
        if item is not None:
            timing.end_of_speech = item.end_of_speech
            timing.asr_final = item.asr_final
        self._turn_no += 1
        self.caller.busy = True
        self.caller.endpointer.disarm_no_input()
        reply = self.speaker.begin(timing)
        final: Transfer | Hangup | None = None
        try:
            if item is None:
                actions = self.brain.resume() if self._resume else self.brain.start()
                timing.first_brain_output = self.caller.now() if actions else None
                for action in actions:
                    final = self._act(reply, action) or final
            else:
                async for action in self.brain.respond(item.input):
                    if timing.first_brain_output is None:
                        timing.first_brain_output = self.caller.now()
                    final = self._act(reply, action) or final
        finally:  # also when the caller hangs up mid-turn: what happened is recorded
            self.caller.busy = False
            self.speaker.end(reply)
            self.journal.add_events(self.brain.drain_events())
            if item is None or not isinstance(item.input, Interrupted):
                self.journal.add_turn(
                    timing,
                    input="start" if item is None else type(item.input).__name__,
                    endpoint=None if item is None else item.endpoint,
                    early_saving_ms=None if item is None else item.early_saving_ms,
                )
        self.caller.apply(self.brain.listen_spec())
        self.checkpoints.request()
        if final is not None:
            self.caller.ending = True
            await self._finish_call(final, reply)
        else:
            self.caller.maybe_arm_no_input()

    def _act(self, reply: Reply, action: Action) -> Transfer | Hangup | None:
        if isinstance(action, Say):
            self.speaker.say(reply, action)
            return None
        return action

    async def _finish_call(self, final: Transfer | Hangup, reply: Reply) -> None:
        try:
            async with asyncio.timeout(FINAL_PLAY_TIMEOUT_S):
                await self.speaker.wait(reply)
        except TimeoutError:
            self.log.warning("goodbye did not finish playing; ending the call anyway")
        if self.leg.closed.done():
            return
        if isinstance(final, Hangup):
            await self.leg.hangup(final.reason)
            return
        try:
            result = await self.leg.transfer(final.target)
        except Exception as exc:  # a leg that cannot transfer: the caller hears the fallback
            result = TransferResult(False, 500, repr(exc))
        self.journal.transfer = {
            "target": final.target, "summary": final.summary, "ok": result.ok,
            "status": result.status, "detail": result.detail,
        }  # fmt: skip
        if result.ok:
            if not self.leg.closed.done():
                await self.leg.hangup("transferred")
            return
        self.log.warning("transfer to %s failed: %d %s", final.target, result.status, result.detail)
        self.journal.outcome = "transfer_failed"
        bye = self.speaker.begin(None)
        self.speaker.say(bye, Say(TRANSFER_FAILED_TEXT, interruptible=False))
        self.speaker.end(bye)
        await self._finish_call(Hangup("transfer failed"), bye)

    def _on_barge_in(self, played: str) -> None:
        """In the frame of a barge-in: a brain that streams its answer (the LLM) may have
        the turn cancelled, so nothing more of it is spoken or even generated."""
        turn = self._turn_task
        hook = getattr(self.brain, "on_barge_in", None)
        if turn is None or turn.done() or hook is None:
            return
        try:
            cancel = bool(hook(played))
        except Exception:  # a brain must not raise; the turn then runs on
            self.log.exception("brain.on_barge_in raised")
            return
        if cancel:
            turn.cancel()

    def _on_played(self) -> None:
        self.caller.maybe_arm_no_input()

    def _pipeline_failed(self, exc: Exception) -> None:
        self.journal.count("pipeline_errors")

    # --- the end ---------------------------------------------------------------------------

    async def _close(self, abandoned: bool) -> None:
        await self.caller.aclose()
        await self.speaker.aclose()
        if abandoned:
            await self.checkpoints.abandon()  # as a crash would: the last good save stands
            self.journal.outcome = self.journal.outcome or "abandoned"
        else:
            await self.checkpoints.finish()
            self.journal.outcome = self.journal.outcome or "caller_hangup"
        self.journal.counters["tts_errors"] = self.speaker.tts_errors
        self.journal.counters["tts_skipped_sentences"] = self.speaker.skipped_sentences
        try:
            self.records.submit(self.journal.record({"restored": self._resume}))
        except Exception:  # a record that is not JSON is a bug; the call is over anyway
            self.log.exception("call record could not be submitted")

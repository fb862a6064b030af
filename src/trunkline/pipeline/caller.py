"""The caller's half of a turn: VAD events, endpointing, ASR, DTMF and barge-in on the frame path.

Theory of operation
-------------------
:class:`CallerInput` is the last processor of the call's chain (leg → VAD → here). It
runs synchronously inside the leg's pacer tick. An audio frame goes to the open
utterance's ASR stream (or into a short pre-roll ring when none is open), then the
endpointer and the DTMF collector are polled with the frame index (two integer
comparisons). Control frames arrive by the same path:

- ``SpeechStarted``: if the agent is speaking and barge-in is allowed (the state's
  ``ListenSpec.barge_in`` and the playing ``Say.interruptible``), the speaker is cut
  *in this call* (``leg.clear()``, its TTS cancelled: nothing more of the reply is sent)
  and ``Interrupted(played_text)`` is queued for the brain; if barge-in is not allowed
  the talkspurt is ignored. Otherwise a new utterance opens (the state's grammar, the
  pre-roll).
- ``SpeechStopped``: the endpointer starts the state's endpoint silence.
- A partial result that completes the state's grammar ends the turn early: at once if
  the caller has paused (the VAD's talkspurt stopped), else at the talkspurt's stop if
  the latest partial still completes it (mid-speech hypotheses pass through complete
  looking states: "one two oh three four" on the way to five digits). The brain gets
  ``Speech(partial, final=False)`` and the final is dropped; the time saved against the
  silence endpoint is recorded for the turn.
- ``Dtmf``: barge-in as for speech, then the DTMF collector; an entry is a turn.
- The no-input timer runs from the moment the agent's reply has been played while
  nothing else is going on (:meth:`maybe_arm_no_input`); it fires ``NoInput``.

Each finished turn is a :class:`TurnInput` put on ``inputs``, a
:class:`~trunkline.pipeline.frames.TieredQueue` read by the conversation's task; the
leg's ``Hangup`` goes there as a system ``Cancel`` and overtakes waiting turns.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from trunkline.agent.brain import Digits, Interrupted, ListenSpec, NoInput, Speech, UserInput
from trunkline.media.audio import FRAME_MS, FRAME_SECONDS
from trunkline.net.leg import Dtmf, HoldChanged, MarkReached
from trunkline.net.leg import Hangup as LegHangup
from trunkline.pipeline.dtmf import DigitCollector
from trunkline.pipeline.endpointing import Endpoint, Endpointer, EndpointState
from trunkline.pipeline.frames import Cancel, Frame, SpeechStarted, SpeechStopped, TieredQueue
from trunkline.pipeline.journal import CallJournal
from trunkline.pipeline.listener import Listener, Utterance
from trunkline.pipeline.processor import Processor
from trunkline.pipeline.speaker import Speaker
from trunkline.pipeline.vad import VadProcessor
from trunkline.providers.asr import ASR

#: Frames kept from before the VAD confirmed speech, pushed first into a new utterance:
#: the confirmation takes 3 frames and a soft onset a few more (300 ms in all).
PREROLL_FRAMES = 15
#: Endpoint silence after a partial that completes the grammar but could go on (4 of
#: 4-6 digits): short, since the caller most likely finished.
EXTENDABLE_SILENCE_MS = 300


@dataclass(slots=True)
class TurnInput:
    """A finished caller turn, on its way to the brain; times are seconds since the start."""

    input: UserInput
    endpoint: str  # an Endpoint value, "dtmf" or "barge_in"
    end_of_speech: float | None = None
    asr_final: float | None = None
    early_saving_ms: float | None = None


class CallerInput(Processor):
    """The caller's side of one call's turns (see the module docstring).

    ``busy`` (a brain turn runs) and ``ending`` (the brain ended the call) are set by
    the conversation; ``barge_ins`` lists ``(frame, played_text)`` per barge-in.
    """

    def __init__(
        self,
        *,
        asr: ASR,
        call_id: str,
        vad: VadProcessor,
        speaker: Speaker,
        journal: CallJournal,
        clock: Callable[[], float],
        t0: float,
        log: logging.Logger | logging.LoggerAdapter[logging.Logger],
    ) -> None:
        super().__init__()
        self.vad = vad
        self.speaker = speaker
        self.journal = journal
        self.clock = clock
        self.t0 = t0
        self.log = log
        self.listener = Listener(
            asr, call_id=call_id, on_partial=self._on_partial, on_result=self._on_result, log=log
        )
        self.endpointer = Endpointer()
        self.collector = DigitCollector()
        self.listen: ListenSpec | None = None
        self.inputs: TieredQueue[TurnInput | Cancel] = TieredQueue()
        self.busy = False
        self.ending = False
        self.barge_ins: list[tuple[int, str]] = []
        #: Called with the played text in the frame of each barge-in (the conversation
        #: cancels a streaming turn there).
        self.on_barge_in: Callable[[str], None] = lambda played: None
        self._preroll: deque[bytes] = deque(maxlen=PREROLL_FRAMES)
        self._utterance: Utterance | None = None
        self._partial = ""  # the latest partial hypothesis of the open utterance

    def apply(self, listen: ListenSpec) -> None:
        """Listen as ``listen`` says from now on (after each brain turn)."""
        self.listen = listen
        self.endpointer.configure(listen.endpoint_silence_ms)
        self.collector.configure(listen.dtmf)

    def maybe_arm_no_input(self) -> None:
        """Start the no-input timer if the caller is the one expected to act now."""
        if self.listen is not None and self._idle():
            self.endpointer.arm_no_input(self.vad.frame, self.listen.no_input_timeout_ms)

    async def aclose(self) -> None:
        self._utterance = None
        await self.listener.aclose()

    # --- the frame path ------------------------------------------------------------------

    def process_frame(self, frame: Frame) -> None:
        if isinstance(frame, bytes):
            if self._utterance is not None:
                self.listener.push(frame)
            else:
                self._preroll.append(frame)
            n = self.vad.frame
            if n >= self.endpointer.deadline or n >= self.collector.deadline:
                self._on_deadline(n)
        elif isinstance(frame, SpeechStarted):
            self._speech_started(frame)
        elif isinstance(frame, SpeechStopped):
            self.endpointer.speech_stopped(frame.last_speech)
            if self._partial:
                self._try_early()
        elif isinstance(frame, Dtmf):
            self._key(frame.digit)
        elif isinstance(frame, MarkReached):
            self.speaker.on_mark(frame.name)
        elif isinstance(frame, LegHangup):
            self._drop_utterance()
            self.inputs.put(Cancel(frame.reason))
        elif isinstance(frame, HoldChanged):
            self.log.info("call %s hold", "on" if frame.on else "off")

    def _on_deadline(self, n: int) -> None:
        end = self.endpointer.poll(n)
        if end is Endpoint.NO_INPUT:
            if self._idle():
                self._submit(TurnInput(NoInput(), end.value))
        elif end is not None:
            self._end_utterance(end, n)
        entry = self.collector.poll(n)
        if entry is not None:
            self._digits(entry)

    def _speech_started(self, event: SpeechStarted) -> None:
        if self.ending:
            return
        if self.speaker.speaking and not self._barge_in(event.frame):
            return  # the prompt may not be interrupted: this talkspurt is not a turn
        if not self.endpointer.speech_started(event.frame):
            return  # a new talkspurt of the utterance already open
        grammar = self.listen.grammar if self.listen is not None else None
        self._utterance = self.listener.begin(grammar, self._preroll)
        self._partial = ""
        self._preroll.clear()

    def _barge_in(self, frame: int) -> bool:
        """Cut the agent off if allowed; True when the caller now has the floor."""
        listen = self.listen
        if (listen is not None and not listen.barge_in) or not self.speaker.interruptible:
            return False
        played = self.speaker.interrupt()
        self.barge_ins.append((frame, played))
        self.journal.count("barge_ins")
        self._submit(TurnInput(Interrupted(played), "barge_in"))
        self.on_barge_in(played)
        return True

    def _end_utterance(self, end: Endpoint, n: int) -> None:
        utterance, self._utterance = self._utterance, None
        if utterance is None:
            return
        utterance.endpoint = end.value
        utterance.end_of_speech = self._frame_time(self.endpointer.last_speech, n)
        self.listener.end(utterance)

    def _on_partial(self, utterance: Utterance, text: str) -> None:
        if utterance is not self._utterance:
            return
        self._partial = text
        if self.endpointer.state is EndpointState.TRAILING:
            self._try_early()
        # While the caller is still talking a complete-looking hypothesis is often a
        # passing one ("one two oh three four" on the way to five digits): wait for the
        # talkspurt to stop (SpeechStopped), then judge the latest partial.

    def _try_early(self) -> None:
        """End the turn now if the latest partial completes the state's grammar."""
        utterance, text, listen = self._utterance, self._partial, self.listen
        if utterance is None or not text or listen is None or listen.matcher is None:
            return
        match = listen.matcher.match(text)
        if match is None or not match.complete:
            return
        if match.extendable:
            self.endpointer.shorten(EXTENDABLE_SILENCE_MS)
            return
        n = self.vad.frame
        last_speech = self.endpointer.last_speech
        saved = self.endpointer.end_early(n)
        self._utterance = None
        self.listener.end(utterance, deliver=False)  # its final must not make a second turn
        self.journal.count("early_endpoints")
        self._submit(
            TurnInput(
                Speech(text, final=False),
                Endpoint.EARLY.value,
                end_of_speech=self._frame_time(last_speech, n),
                asr_final=self.now(),
                early_saving_ms=float(saved * FRAME_MS),
            )
        )

    def _on_result(
        self, utterance: Utterance, text: str, confidence: float, error: str | None
    ) -> None:
        if error is not None:
            self.journal.count("asr_errors")  # not understood: the brain reprompts
            text = ""
        speech = Speech(text, confidence if text else 0.0)
        self._submit(
            TurnInput(
                speech, utterance.endpoint, end_of_speech=utterance.end_of_speech,
                asr_final=self.now(),
            )
        )  # fmt: skip

    def _key(self, digit: str) -> None:
        if self.ending:
            return
        if self.speaker.speaking and not self._barge_in(self.vad.frame):
            return  # keys during a prompt that may not be interrupted are ignored
        self.endpointer.disarm_no_input()
        entry = self.collector.press(digit, self.vad.frame)
        if entry is not None:
            self._digits(entry)

    def _digits(self, entry: str) -> None:
        self._drop_utterance()
        self.endpointer.abort()
        self._submit(TurnInput(Digits(entry), "dtmf"))

    def _submit(self, item: TurnInput) -> None:
        self.endpointer.disarm_no_input()
        self.inputs.put(item)

    def _idle(self) -> bool:
        """Nothing is happening that the caller is waiting on or doing."""
        return not (
            self.busy or self.ending or self.speaker.speaking or self._utterance is not None
            or self.collector.active or len(self.inputs) or self.speaker.leg.closed.done()
        )  # fmt: skip

    def _drop_utterance(self) -> None:
        utterance, self._utterance = self._utterance, None
        if utterance is not None:
            self.listener.end(utterance, deliver=False)

    # --- clocks ----------------------------------------------------------------------------

    def now(self) -> float:
        """Seconds since the call started, on the pipeline's monotonic clock."""
        return round(self.clock() - self.t0, 4)

    def _frame_time(self, frame: int, now_frame: int) -> float:
        """When inbound frame ``frame`` arrived, given that ``now_frame`` is arriving now."""
        return round(self.clock() - self.t0 - (now_frame - frame) * FRAME_SECONDS, 4)

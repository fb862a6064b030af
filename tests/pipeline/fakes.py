"""Test doubles for the conversation tests: a leg driven tick by tick, scripted ASR and TTS.

The fake leg plays the pacer: each ``tick()`` pushes one inbound frame into the sink
(the caller's audio: whatever the test queued, else silence) and then takes one frame
from the outbound queue, as an RTP leg's ``on_tick`` does. Between ticks the test yields
to the event loop, so tasks (ASR readers, brain turns, TTS) run between frames; the
frame count is the media clock and no assertion depends on wall-clock time.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import pytest

from trunkline.media.audio import SILENCE_FRAME, split_frames
from trunkline.media.tones import rms_dbfs, sine
from trunkline.net.leg import Dtmf, LegInfo, MediaLeg, TransferResult
from trunkline.providers.asr import ASR, ASRCapabilities, ASRStream, Final, Partial
from trunkline.providers.errors import ProviderError
from trunkline.providers.retry import NO_METRICS, RetryPolicy
from trunkline.providers.tts import TTS, TTSCapabilities

#: A caller's voice for the VAD: a loud 300 Hz tone reads as speech to webrtcvad.
VOICE = sine(300, 20, 0.3)
#: The agent's voice as the fake TTS renders it.
TTS_FRAME = split_frames(sine(1000, 20, 0.2))[0]


def talk(ms: int) -> list[bytes]:
    """``ms`` of caller speech as frames."""
    return [VOICE] * (ms // 20)


class FakeLeg(MediaLeg):
    """A leg the test drives one 20 ms tick at a time."""

    def __init__(self, call_id: str = "call-1") -> None:
        super().__init__(LegInfo("sip", call_id, "sip:alice@127.0.0.1", "sip:acme@127.0.0.1"))
        self.inbound: deque[bytes] = deque()
        self.sent: list[tuple[int, bytes]] = []  # (tick, frame)
        self.clears: list[int] = []  # tick of each clear()
        self.ticks = 0
        self.transfers: list[str] = []
        self.transfer_result = TransferResult(True, 202, "accepted")
        self.hangups: list[str] = []

    # --- the caller -------------------------------------------------------------------

    def speak(self, frames: list[bytes]) -> int:
        """Queue caller audio; returns the tick at which its first frame will be pushed."""
        start = self.ticks + len(self.inbound) + 1
        self.inbound.extend(frames)
        return start

    def press(self, keys: str) -> None:
        for key in keys:
            self._emit(Dtmf(key))

    def caller_hangs_up(self) -> None:
        self._finish("bye", "remote")

    # --- the pacer ----------------------------------------------------------------------

    def tick(self) -> None:
        if self.closed.done():
            return
        self.ticks += 1
        if self.sink is not None:
            self.sink.on_audio(self.inbound.popleft() if self.inbound else SILENCE_FRAME)
        frame = self.next_outbound()
        if frame is not None:
            self.sent.append((self.ticks, frame))

    async def run(self, ticks: int) -> None:
        for _ in range(ticks):
            self.tick()
            await asyncio.sleep(0)

    async def until(self, predicate: Callable[[], bool], what: str, max_ticks: int = 3000) -> int:
        """Tick until ``predicate()``; returns the tick. Fails after ``max_ticks`` (60 s media)."""
        for _ in range(max_ticks):
            if predicate():
                return self.ticks
            self.tick()
            # Yield a few times: an HTTP tool call needs the loop for more than one step.
            for _ in range(3):
                await asyncio.sleep(0)
        pytest.fail(f"not within {max_ticks} ticks: {what}")

    async def run_paced(self, ticks: int) -> None:
        """``ticks`` ticks 20 ms apart on the loop's clock (a virtual one in timeline tests)."""
        for _ in range(ticks):
            self.tick()
            await asyncio.sleep(0.02)

    async def until_paced(
        self, predicate: Callable[[], bool], what: str, max_ticks: int = 3000
    ) -> int:
        """As :meth:`until`, with ticks 20 ms apart on the loop's clock."""
        for _ in range(max_ticks):
            if predicate():
                return self.ticks
            self.tick()
            await asyncio.sleep(0.02)
        pytest.fail(f"not within {max_ticks} ticks: {what}")

    def audible_ticks(self, since: int = 0) -> list[int]:
        return [t for t, f in self.sent if t > since and rms_dbfs(f) > -40]

    # --- call control ---------------------------------------------------------------------

    def clear(self) -> None:
        self.clears.append(self.ticks)
        super().clear()

    async def transfer(self, target: str) -> TransferResult:
        self.transfers.append(target)
        return self.transfer_result

    async def hangup(self, reason: str = "normal") -> None:
        self.hangups.append(reason)
        self._finish(reason, "local")


# --- ASR --------------------------------------------------------------------------------------


@dataclass
class Heard:
    """One scripted utterance: the final text, and partials by frames pushed into it."""

    text: str
    partials: dict[int, str] = field(default_factory=dict)
    confidence: float = 0.9
    fail_on_flush: bool = False


class ScriptedStream(ASRStream):
    """Each utterance (the audio between flushes) takes the next entry of the ASR's script.

    An ``Exception`` entry fails the stream on the utterance's first push.
    """

    def __init__(self, asr: ScriptedASR, grammar: str | None, call_id: str) -> None:
        super().__init__(provider="scripted", call_id=call_id, metrics=NO_METRICS)
        self.asr = asr
        self.grammar = grammar
        self.heard: Heard | None = None  # the utterance in progress
        self.pushed = 0  # frames of the utterance in progress
        self.flushes = 0
        self.closed = False

    def _push_impl(self, pcm: bytes) -> None:
        if self.heard is None:
            entry = self.asr.script.popleft() if self.asr.script else Heard("")
            if isinstance(entry, Exception):
                self._fail(ProviderError(str(entry), provider="scripted", retryable=True))
                return
            self.heard = entry
        self.pushed += 1
        if self.pushed in self.heard.partials:
            self._emit(Partial(self.heard.partials[self.pushed]))

    def _flush_impl(self) -> None:
        heard, self.heard, self.pushed = self.heard, None, 0
        self.flushes += 1
        if heard is not None and heard.fail_on_flush:
            self._fail(ProviderError("recognizer crashed", provider="scripted", retryable=True))
        elif heard is not None:
            self._emit(Final(heard.text, heard.confidence if heard.text else 0.0))
        else:
            self._emit(Final("", 0.0))

    def _end_input_impl(self) -> None:
        self._finish()

    async def _aclose_impl(self) -> None:
        self.closed = True


class ScriptedASR(ASR):
    """Scripted recognition; ``fail_open`` streams fail to open before the rest work."""

    def __init__(self, *script: Heard | str | Exception) -> None:
        super().__init__(
            label="scripted",
            capabilities=ASRCapabilities(
                streaming=True, partial_results=True, grammar=True, sample_rates=(8000,)
            ),
        )
        self.script: deque[Heard | Exception] = deque()
        self.add(*script)
        self.streams: list[ScriptedStream] = []
        self.fail_open = 0

    def add(self, *script: Heard | str | Exception) -> None:
        self.script.extend(Heard(s) if isinstance(s, str) else s for s in script)

    def _stream_impl(self, *, grammar: str | None, call_id: str) -> ASRStream:
        if self.fail_open:
            self.fail_open -= 1
            raise ProviderError("no recognizer", provider="scripted", retryable=True)
        stream = ScriptedStream(self, grammar, call_id)
        self.streams.append(stream)
        return stream


# --- TTS --------------------------------------------------------------------------------------


class FakeTTS(TTS):
    """Renders ``frames_per_word`` frames of tone per word, one chunk per word.

    ``fail`` maps a word found in the text to how many attempts containing it fail
    (with a retryable error: the provider's wrapper retries once).
    """

    def __init__(self, frames_per_word: int = 5) -> None:
        super().__init__(
            label="fake-tts",
            capabilities=TTSCapabilities(streaming=True, sample_rate=8000),
            retry=RetryPolicy(attempts=2, initial_backoff=0.0),
            first_byte_timeout=None,
            idle_timeout=None,
        )
        self.frames_per_word = frames_per_word
        self.texts: list[str] = []
        self.fail: dict[str, int] = {}

    async def _synthesize_impl(self, text: str, *, voice: str | None) -> AsyncIterator[bytes]:
        self.texts.append(text)
        for word, left in self.fail.items():
            if left and word in text:
                self.fail[word] = left - 1
                raise ProviderError("tts down", provider="fake-tts", retryable=True)
        for _ in text.split():
            await asyncio.sleep(0)
            yield TTS_FRAME * self.frames_per_word

    def frames_of(self, text: str) -> int:
        return len(text.split()) * self.frames_per_word

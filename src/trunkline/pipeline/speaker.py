"""The agent's voice: streams ``Say`` texts through TTS onto the leg, sentence by sentence.

Theory of operation
-------------------
Everything the brain says in one turn is a :class:`Reply`. Its texts are cut into
sentences; one task per reply synthesizes them in order and hands each chunk of audio to
the leg as it arrives (the leg's queue absorbs TTS running faster than real time), then
queues a mark named after the sentence. ``MarkReached`` for that name means the caller
has heard the whole sentence. A reply is *played* when its last mark is reached.

Barge-in (:meth:`Speaker.interrupt`) happens inside the frame that confirmed the
caller's speech: it estimates what was heard, drops the leg's queue (``leg.clear()``,
which on a WebSocket leg also tells the peer to drop its buffer) and cancels the TTS
task, all before returning, so no further frame of the reply is sent. What was heard is
estimated from frames: every frame handed to the leg minus those still queued were
played; sentences are walked in order, and the sentence that was cut counts the share
of its words that its played share of frames covers. A sentence still being synthesized
has its length estimated from its words. A reply whose turn is still running (the brain
is waiting on a tool) stays open: what that turn says after the barge-in is new, and is
spoken.

Timings: a reply's ``first_tts_audio`` is taken when the TTS yields its first chunk (or
the prompt cache has it), and ``first_outbound_packet`` when the leg sends that chunk's
first frame. The leg tells us through a mark queued just before the frame (``first:``):
an RTP leg reports a mark in the pacer tick that passes it, right before it sends the
frame after it; a WebSocket leg writes the mark and then the ``media`` message in the
same tick, and reports it when the peer echoes it, which Twilio does once what was
queued before it has played, so there the stamp is the write plus the round trip (and
any audio of an earlier reply still playing at the peer). The difference between the
two is the queue: audio of an earlier sentence or reply still waiting to be played.

TTS failures never stop a reply: the provider's ``synthesize`` retries and times out by
itself (retryability is decided there, in one place); a sentence whose synthesis still
fails is skipped, logged and counted, and the reply goes on with the next one.

Cacheable prompts (fixed texts of the spec) are kept in a process-wide
:class:`PromptCache`, so the main menu is synthesized once per process, not per call.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from trunkline.agent.brain import Say
from trunkline.media.audio import FRAME_BYTES
from trunkline.net.leg import MediaLeg
from trunkline.providers.errors import ProviderError
from trunkline.runtime.stores.records import TurnTiming

#: Last-resort bound on the wait for a sentence's next chunk. Providers built on
#: ``providers.tts.TTS`` enforce their own first-byte and idle timeouts (2 s) and retry
#: inside them; this only guards against a TTS object that has none.
TTS_STALL_TIMEOUT_S = 5.0
#: Estimated length of a word not yet synthesized (espeak-ng's 160 words a minute).
EST_FRAMES_PER_WORD = 19
#: Prompt cache size: 32 MiB is about 35 minutes of 8 kHz audio, every fixed prompt of
#: many agents.
PROMPT_CACHE_BYTES = 32 * 1024 * 1024

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


class TextToSpeech(Protocol):
    """What the speaker needs of a TTS provider (``trunkline.providers`` TTS)."""

    def synthesize(self, text: str, *, voice: str | None = None) -> AsyncIterator[bytes]:
        """8 kHz s16le mono audio of ``text``, in whole 20 ms frames, streamed."""
        ...


def split_sentences(text: str) -> list[str]:
    """Cut a text after each ``.``, ``!`` or ``?`` that is followed by a space."""
    return [s for s in (part.strip() for part in _SENTENCE_END.split(text)) if s]


class PromptCache:
    """A process-wide LRU of synthesized fixed prompts, bounded in bytes."""

    def __init__(self, max_bytes: int = PROMPT_CACHE_BYTES) -> None:
        self.max_bytes = max_bytes
        self._items: OrderedDict[tuple[str, str | None], bytes] = OrderedDict()
        self._bytes = 0
        self.hits = 0
        self.misses = 0

    def get(self, text: str, voice: str | None) -> bytes | None:
        pcm = self._items.get((text, voice))
        if pcm is None:
            self.misses += 1
            return None
        self._items.move_to_end((text, voice))
        self.hits += 1
        return pcm

    def put(self, text: str, voice: str | None, pcm: bytes) -> None:
        if len(pcm) > self.max_bytes or (text, voice) in self._items:
            return
        self._items[(text, voice)] = pcm
        self._bytes += len(pcm)
        while self._bytes > self.max_bytes:
            _, old = self._items.popitem(last=False)
            self._bytes -= len(old)


@dataclass(slots=True)
class Sentence:
    """One sentence of a reply and how far it got."""

    text: str
    interruptible: bool
    cacheable: bool
    mark: str
    frames: int = 0  # frames handed to the leg
    synthesized: bool = False  # all its audio was handed to the leg
    played: bool = False  # its mark was reached

    def heard(self, frames_played: int) -> str:
        """The words of this sentence covered by ``frames_played`` of its frames."""
        if frames_played <= 0:
            return ""
        words = self.text.split()
        total = (
            self.frames if self.synthesized else max(self.frames, EST_FRAMES_PER_WORD * len(words))
        )
        if total <= 0 or frames_played >= total:
            return self.text
        return " ".join(words[: len(words) * frames_played // total])


@dataclass(slots=True)
class Reply:
    """What the agent says in one turn.

    ``sentences`` are the live ones (queued, being synthesized or playing); a barge-in
    cuts them all, and Says that the turn produces afterwards start afresh.
    """

    id: int
    timing: TurnTiming | None
    done: asyncio.Future[None]
    sentences: list[Sentence] = field(default_factory=list)
    pending: deque[Sentence] = field(default_factory=deque)  # not yet synthesized
    wakeup: asyncio.Event = field(default_factory=asyncio.Event)
    closed: bool = False  # no more Says will be added
    added: int = 0  # sentences ever added (numbers the marks)
    cuts: int = 0  # barge-ins into this reply
    task: asyncio.Task[None] | None = None
    first_mark: str | None = None  # queued before the first frame, not yet reported


class Speaker:
    """Speaks replies on one leg. Created per call; all methods run on the event loop.

    Args:
        leg: where the audio goes.
        tts: the synthesizer.
        clock: the call's monotonic clock; ``t0`` its value at the start of the call
            (timings are seconds since then).
        on_played: called when nothing is left to play (the last reply was played).
        cache: shared prompt cache, or None.
        voice: passed to the TTS.
    """

    def __init__(
        self,
        leg: MediaLeg,
        tts: TextToSpeech,
        *,
        clock: Callable[[], float],
        t0: float,
        on_played: Callable[[], None],
        cache: PromptCache | None = None,
        voice: str | None = None,
        log: logging.Logger | logging.LoggerAdapter[logging.Logger] | None = None,
    ) -> None:
        self.leg = leg
        self.tts = tts
        self.clock = clock
        self.t0 = t0
        self.cache = cache
        self.voice = voice
        self.log = log or logging.getLogger(__name__)
        self._on_played = on_played
        self._replies: list[Reply] = []  # not yet played, oldest first
        self._next_id = 0
        self.tts_errors = 0
        self.skipped_sentences = 0

    # --- replies --------------------------------------------------------------------------

    @property
    def speaking(self) -> bool:
        """True while some sentence is queued, being synthesized, or not yet played."""
        return any(not s.played for r in self._replies for s in r.sentences)

    @property
    def interruptible(self) -> bool:
        """Whether the sentence the caller is hearing now may be barged into."""
        for reply in self._replies:
            for sentence in reply.sentences:
                if not sentence.played:
                    return sentence.interruptible
        return True

    def begin(self, timing: TurnTiming | None) -> Reply:
        """Start a new reply; its Says follow anything still playing."""
        self._next_id += 1
        done = asyncio.get_running_loop().create_future()
        reply = Reply(self._next_id, timing, done)
        self._replies.append(reply)
        return reply

    def say(self, reply: Reply, say: Say) -> None:
        """Queue ``say`` on ``reply`` (ignored once the reply was ended)."""
        if reply.closed or reply.done.done():
            return
        for text in split_sentences(say.text):
            mark = f"say:{reply.id}:{reply.added}"
            reply.added += 1
            sentence = Sentence(text, say.interruptible, say.cacheable, mark)
            reply.sentences.append(sentence)
            reply.pending.append(sentence)
        reply.wakeup.set()
        if reply.task is None and reply.pending:
            index = self._replies.index(reply)
            previous = self._replies[index - 1].task if index > 0 else None
            reply.task = asyncio.create_task(self._speak(reply, previous))

    def end(self, reply: Reply) -> None:
        """No more Says for ``reply``; it is played once its last sentence is."""
        reply.closed = True
        reply.wakeup.set()
        self._check_played(reply)

    async def wait(self, reply: Reply) -> None:
        """Until ``reply`` was played (or cut by a barge-in), or the leg closed."""
        if reply.done.done():
            return
        waits: set[asyncio.Future[Any]] = {reply.done, self.leg.closed}
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)

    def interrupt(self) -> str:
        """Barge-in: stop all audio now; returns the words the caller heard.

        Everything queued or being synthesized is dropped. A reply whose turn is still
        running (the brain is in a tool call) stays open: what the turn says next is new
        and is spoken.
        """
        if not self.speaking:
            return ""
        heard = self._heard(self.leg.queued_frames)
        for reply in self._replies:
            reply.first_mark = None  # clear() reports it, but its frame was never sent
            if reply.task is not None:
                reply.task.cancel()
                reply.task = None
            reply.pending.clear()
            reply.sentences.clear()
            reply.cuts += 1
        self.leg.clear()  # reports the pending marks, which no longer name a live sentence
        for reply in list(self._replies):
            self._check_played(reply)
        return heard

    def on_mark(self, name: str) -> None:
        """A ``MarkReached`` from the leg."""
        if name.startswith("first:"):
            for reply in self._replies:
                if reply.first_mark == name:
                    reply.first_mark = None
                    if reply.timing is not None and reply.timing.first_outbound_packet is None:
                        reply.timing.first_outbound_packet = round(self.clock() - self.t0, 4)
                    return
            return
        if not name.startswith("say:"):
            return
        for reply in self._replies:
            for sentence in reply.sentences:
                if sentence.mark == name:
                    sentence.played = True
                    self._check_played(reply)
                    return

    async def aclose(self) -> None:
        """Stop every TTS task (the call is over)."""
        tasks = [r.task for r in self._replies if r.task is not None and not r.task.done()]
        for reply in self._replies:
            reply.closed = True
            if not reply.done.done():
                reply.done.set_result(None)
        self._replies = []
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)

    # --- internals -------------------------------------------------------------------------

    def _heard(self, queued: int) -> str:
        played = sum(s.frames for r in self._replies for s in r.sentences) - queued
        parts: list[str] = []
        for reply in self._replies:
            for sentence in reply.sentences:
                if played <= 0:
                    break
                part = sentence.heard(played)
                if part:
                    parts.append(part)
                played -= sentence.frames
        return " ".join(parts)

    def _check_played(self, reply: Reply) -> None:
        if not reply.closed or reply.done.done() or reply.pending:
            return
        if not all(s.played for s in reply.sentences):
            return
        reply.done.set_result(None)
        if reply in self._replies:
            self._replies.remove(reply)
        if not self._replies:
            self._on_played()

    async def _speak(self, reply: Reply, previous: asyncio.Task[None] | None) -> None:
        if previous is not None and not previous.done():
            await asyncio.wait({previous})  # keep replies in order on the leg
        while not self.leg.closed.done():
            if not reply.pending:
                if reply.closed:
                    return
                reply.wakeup.clear()
                await reply.wakeup.wait()
                continue
            sentence = reply.pending[0]
            await self._synthesize(reply, sentence)  # a barge-in cancels this task
            reply.pending.popleft()
            sentence.synthesized = True
            self.leg.mark(sentence.mark)

    async def _synthesize(self, reply: Reply, sentence: Sentence) -> None:
        cache = self.cache if sentence.cacheable else None
        if cache is not None:
            pcm = cache.get(sentence.text, self.voice)
            if pcm is not None:
                self._send(reply, sentence, pcm)
                return
        audio: list[bytes] | None = [] if cache is not None else None
        loop = asyncio.get_running_loop()
        stream = self.tts.synthesize(sentence.text, voice=self.voice)
        try:
            async with asyncio.timeout(TTS_STALL_TIMEOUT_S) as deadline:
                async for chunk in stream:
                    self._send(reply, sentence, chunk)
                    if audio is not None:
                        audio.append(chunk)
                    deadline.reschedule(loop.time() + TTS_STALL_TIMEOUT_S)
        except Exception as exc:  # the provider retried what was worth retrying
            self.tts_errors += 1
            self.skipped_sentences += 1
            if isinstance(exc, ProviderError | TimeoutError):
                self.log.warning("TTS failed on %r: %r; skipping the sentence", sentence.text, exc)
            else:  # a bug in an adapter, not an outage: say so loudly, keep the call going
                self.log.error(
                    "TTS raised on %r; skipping the sentence", sentence.text, exc_info=exc
                )
            return
        finally:
            aclose = getattr(stream, "aclose", None)
            if aclose is not None:
                await aclose()
        if cache is not None and audio:
            cache.put(sentence.text, self.voice, b"".join(audio))

    def _send(self, reply: Reply, sentence: Sentence, pcm: bytes) -> None:
        if not pcm:
            return
        timing = reply.timing
        if timing is not None and timing.first_tts_audio is None:
            timing.first_tts_audio = round(self.clock() - self.t0, 4)
            reply.first_mark = f"first:{reply.id}"
            self.leg.mark(reply.first_mark)  # reported as the frame after it is sent
        self.leg.send_audio(pcm)
        sentence.frames += -(-len(pcm) // FRAME_BYTES)

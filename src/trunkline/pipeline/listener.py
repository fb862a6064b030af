"""The call's speech recognition: one ASR stream per grammar, fed only the caller's utterances.

Theory of operation
-------------------
The recognizer's stream lives as long as the flow state's grammar does (the provider's
intended use: one stream per call or per grammar, ``flush()`` per utterance). The turn
manager opens an utterance when the VAD confirms speech (:meth:`Listener.begin`): the
frames kept from just before the confirmation (the first syllable) are pushed, then
every frame until the utterance ends. Between utterances nothing is pushed: the VAD
gates the recognizer, so an embedded engine decodes speech, not the silence between.
``push`` is synchronous and never blocks, so the frame path stays a function call.

An utterance ends with :meth:`Listener.end`, which flushes the stream; the provider
answers every flush with exactly one ``Final``, so each stream keeps a queue of flushed
utterances and pairs each Final with the oldest. ``deliver=False`` (early endpointing
took a partial, or a DTMF entry took the turn) flushes all the same, to keep the pairing,
and drops the result. Partials go to ``on_partial`` while the current utterance is open;
a ``Partial`` replaces the one before it.

One reader task per stream reads its events. A stream is *broken* when its iteration
raises (a ``ProviderError``), when ``push`` or ``flush`` raise, or when a flushed
utterance's Final does not come within ``ASR_FINAL_TIMEOUT_S`` (after that the pairing
of Finals cannot be trusted). Its pending utterances are reported failed and the next
utterance opens a fresh stream. A grammar change retires the stream: a new one is
opened, and the old one is closed once its pending Finals are in.

Results go to ``on_result(utterance, text, confidence, error)``, exactly once for each
delivered utterance, from the reader task or a timer, never from inside ``end``.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from trunkline.providers.asr import ASR, ASRStream, Final, Partial
from trunkline.providers.errors import ProviderError

#: Longest wait for the recognizer's Final once the caller stopped talking. With the
#: endpoint silence before it, the caller waits at most ~2 s for a sign of life.
ASR_FINAL_TIMEOUT_S = 1.2

Log = logging.Logger | logging.LoggerAdapter[logging.Logger]


@dataclass(slots=True, eq=False)
class Utterance:
    """One caller utterance. The turn manager fills ``endpoint`` and ``end_of_speech``."""

    number: int
    error: str | None = None  # set when recognition failed
    deliver: bool = True
    flushed: bool = False
    reported: bool = False
    endpoint: str = ""
    end_of_speech: float | None = None


@dataclass(slots=True, eq=False)
class _Stream:
    stream: ASRStream | None
    grammar: str | None
    pending: deque[tuple[Utterance, asyncio.TimerHandle]] = field(default_factory=deque)
    reader: asyncio.Task[None] | None = None
    broken: bool = False
    retired: bool = False


ResultCallback = Callable[[Utterance, str, float, str | None], None]


class Listener:
    """Recognition for one call. All methods run on the event loop."""

    def __init__(
        self,
        asr: ASR,
        *,
        call_id: str,
        on_partial: Callable[[Utterance, str], None],
        on_result: ResultCallback,
        log: Log,
    ) -> None:
        self.asr = asr
        self.call_id = call_id
        self._on_partial = on_partial
        self._on_result = on_result
        self._log = log
        self._stream: _Stream | None = None
        self._streams: list[_Stream] = []  # every stream not yet closed
        self._count = 0
        self.current: Utterance | None = None
        self.errors = 0

    # --- utterances ------------------------------------------------------------------------

    def begin(self, grammar: str | None, preroll: Iterable[bytes]) -> Utterance:
        """Open an utterance (on a stream for ``grammar``) and push ``preroll``."""
        self._count += 1
        utt = Utterance(self._count)
        self.current = utt
        s = self._stream
        if s is None or s.broken or s.grammar != grammar:
            if s is not None:
                self._retire(s)
            s = self._stream = self._open(grammar)
        if s.stream is None or s.broken:
            utt.error = "the recognizer could not open a stream"
            return utt
        for pcm in preroll:
            self.push(pcm)
        return utt

    def push(self, pcm: bytes) -> None:
        """One frame of the current utterance (from the frame path)."""
        s = self._stream
        if self.current is None or s is None or s.stream is None or s.broken:
            return
        try:
            s.stream.push(pcm)
        except Exception as exc:
            self._break(s, exc)

    def end(self, utt: Utterance, *, deliver: bool = True) -> None:
        """The utterance is over: flush, and report its result (``deliver``) or drop it."""
        if utt.flushed:
            return
        utt.flushed = True
        utt.deliver = deliver
        if self.current is utt:
            self.current = None
        s = self._stream
        if utt.error is not None or s is None or s.stream is None or s.broken:
            utt.error = utt.error or "the recognizer failed"
            self._later(utt)
            return
        try:
            s.stream.flush()
        except Exception as exc:
            self._break(s, exc)
            utt.error = utt.error or repr(exc)
            self._later(utt)
            return
        timer = asyncio.get_running_loop().call_later(ASR_FINAL_TIMEOUT_S, self._timed_out, s, utt)
        s.pending.append((utt, timer))

    async def aclose(self) -> None:
        """Drop every stream (the call is over); nothing more is reported."""
        self.current = None
        streams, self._streams, self._stream = self._streams, [], None
        for s in streams:
            for _, timer in s.pending:
                timer.cancel()
            s.pending.clear()
            s.retired = True
        readers = [s.reader for s in streams if s.reader is not None and not s.reader.done()]
        for reader in readers:
            reader.cancel()
        if readers:
            await asyncio.wait(readers)

    # --- streams ---------------------------------------------------------------------------

    def _open(self, grammar: str | None) -> _Stream:
        try:
            stream = self.asr.stream(grammar=grammar, call_id=self.call_id)
        except Exception as exc:
            self._note_failure(exc)
            return _Stream(None, grammar, broken=True)
        s = _Stream(stream, grammar)
        s.reader = asyncio.create_task(self._read(s))
        self._streams.append(s)
        return s

    async def _read(self, s: _Stream) -> None:
        stream = s.stream
        assert stream is not None
        try:
            async for event in stream:
                if isinstance(event, Final):
                    if s.pending:
                        utt, timer = s.pending.popleft()
                        timer.cancel()
                        self._report(utt, event.text.strip(), event.confidence, None)
                    if s.retired and not s.pending:
                        break
                elif isinstance(event, Partial):
                    current = self.current
                    if current is not None and s is self._stream and event.text.strip():
                        self._on_partial(current, event.text.strip())
        except Exception as exc:
            self._break(s, exc)
        finally:
            try:
                await stream.aclose()
            except Exception as exc:  # closing a broken stream must not hide anything
                self._log.debug("ASR stream close failed: %r", exc)
            if s in self._streams:
                self._streams.remove(s)

    def _retire(self, s: _Stream) -> None:
        """No new utterances on ``s``; close it once its pending Finals are in."""
        s.retired = True
        if not s.pending and s.reader is not None and not s.reader.done():
            s.reader.cancel()

    def _break(self, s: _Stream, exc: BaseException) -> None:
        if s.broken:
            return
        s.broken = True
        self._note_failure(exc)
        pending, s.pending = list(s.pending), deque()
        for utt, timer in pending:
            timer.cancel()
            utt.error = repr(exc)
            self._later(utt)
        if self.current is not None and s is self._stream:
            self.current.error = repr(exc)
        if s.reader is not None and not s.reader.done() and s.reader is not asyncio.current_task():
            s.reader.cancel()

    def _timed_out(self, s: _Stream, utt: Utterance) -> None:
        utt.error = f"no final result within {ASR_FINAL_TIMEOUT_S} s"
        self._break(s, TimeoutError(utt.error))

    def _note_failure(self, exc: BaseException) -> None:
        self.errors += 1
        if isinstance(exc, ProviderError | TimeoutError):
            self._log.warning("ASR failed: %r; the turn counts as not understood", exc)
        else:  # not a provider failure but a bug: keep the call going, shout about it
            self._log.error("ASR raised %r; the turn counts as not understood", exc, exc_info=exc)

    # --- results ---------------------------------------------------------------------------

    def _later(self, utt: Utterance) -> None:
        """Report a failed utterance on the next loop turn (never from inside ``end``)."""
        asyncio.get_running_loop().call_soon(self._report, utt, "", 0.0, utt.error)

    def _report(self, utt: Utterance, text: str, confidence: float, error: str | None) -> None:
        if utt.reported or not utt.deliver:
            return
        utt.reported = True
        self._on_result(utt, text, confidence, error)

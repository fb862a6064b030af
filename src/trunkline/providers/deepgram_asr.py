"""Deepgram live streaming recognition over a WebSocket: ``DeepgramASR``.

Theory of operation
-------------------
A stream is one WebSocket to ``{url}?encoding=linear16&sample_rate=8000&channels=1&
interim_results=true&...`` with ``Authorization: Token KEY``. ``ASR.stream()`` is
synchronous, so the stream opens the socket in its own task; ``push``, ``flush`` and
``end_input`` never wait: they put messages in an outbox that the writer drains once the
socket is open (audio pushed before that is kept, up to ``MAX_BACKLOG_S``; past it the
stream fails as overloaded rather than drop speech silently).

- ``push``: binary frames of s16le audio (what queued up while a send was in flight
  goes out as one frame). Audio is counted in seconds of the stream, the clock of
  Deepgram's ``start``/``duration`` fields.
- ``flush``: ``{"type": "Finalize"}``. The utterance (its span of stream seconds) waits
  for its final segments; its ``Final`` is emitted when a result with ``from_finalize``
  arrives, or when final segments cover its whole span, or, as a last resort,
  ``finalize_timeout`` after the flush with what came so far. Deepgram documents that
  a ``from_finalize`` result is sent "typically" when audio was still buffered, not
  always, hence the other two rules. A flush with no audio since the last one answers
  an empty ``Final`` at once, and one whose audio final segments already cover answers
  at once too; neither sends a message.
- results are routed to utterances by their start time, so a late result of an
  utterance already answered is dropped (counted in ``late_results``), never mixed into
  the next one. Interim results and final segments of the utterance in progress are
  ``Partial`` events (finals so far + the interim guess).
- ``end_input``: ``{"type": "CloseStream"}``; Deepgram sends its last results, a
  ``Metadata`` message, and closes with 1000; the stream then emits what is pending and
  finishes. A server that does not close within ``finalize_timeout`` is closed by us.
- ``{"type": "KeepAlive"}`` goes out after ``keepalive_interval`` seconds without a
  message: Deepgram closes a socket that hears nothing for 10 s, and the pipeline sends
  audio only while the caller speaks.
- The server closing the socket otherwise, a message that is not Deepgram's, a failed
  handshake: the stream fails (handshake statuses as ``APIStatusError``: 401 is not
  retryable, 429 and 5xx are; a close with 1011 or no close frame is retryable).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import deque
from collections.abc import Callable, Mapping
from urllib.parse import urlencode

import aiohttp
from aiohttp import WSMsgType

from trunkline.aio import cancel_and_wait
from trunkline.media.audio import SAMPLE_RATE
from trunkline.providers.asr import ASR, ASRCapabilities, ASRStream, Partial
from trunkline.providers.deepgram_results import Segment, ServerError, Utterance, parse_result
from trunkline.providers.errors import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    ProviderError,
    ProviderUsageError,
)
from trunkline.providers.retry import ProviderMetrics

__all__ = ["DEEPGRAM_URL", "DeepgramASR", "DeepgramStream"]

log = logging.getLogger(__name__)

DEEPGRAM_URL = "wss://api.deepgram.com/v1/listen"
#: Audio kept while the socket is not open or not draining (seconds): the pocketsphinx
#: pool's limit too; more would be a reply to speech the caller has long finished.
MAX_BACKLOG_S = 10.0
#: Deepgram's result times are in seconds with millisecond resolution, and its segments
#: may end a few ms short of the audio sent; a span covered within this is complete.
COVER_TOLERANCE_S = 0.05
#: WebSocket close codes worth a new stream: the server went away or failed (1011 is
#: also Deepgram's NET-0001, no audio for 10 s).
_RETRYABLE_CLOSES = (1001, 1006, 1011, 1012, 1013, 1014)
_BYTES_PER_S = SAMPLE_RATE * 2
_FINALIZE = json.dumps({"type": "Finalize"})
_CLOSE_STREAM = json.dumps({"type": "CloseStream"})
_KEEPALIVE = json.dumps({"type": "KeepAlive"})


class DeepgramASR(ASR):
    """Deepgram's live transcription (or a server speaking its protocol).

    Args:
        api_key: sent as ``Authorization: Token ...``.
        url: the listen endpoint (``ws://`` for a local server).
        model: Deepgram model name (``nova-2``, ``nova-3``...).
        language: BCP-47 language tag.
        params: more query parameters (``endpointing``, ``keywords``...), sent as given.
        session: an ``aiohttp.ClientSession`` to use (not closed by us); else one is made
            in ``start()`` and closed in ``aclose()``.
        connect_timeout: longest wait for the WebSocket handshake.
        finalize_timeout: longest wait for an utterance's final results after a flush.
        keepalive_interval: seconds without a message before a KeepAlive.
        label, metrics: as for ``ASR``.

    ``late_results`` counts results that came after their utterance's ``Final``.
    """

    def __init__(
        self,
        *,
        api_key: str,
        url: str = DEEPGRAM_URL,
        model: str = "nova-2",
        language: str = "en-US",
        params: Mapping[str, str] | None = None,
        session: aiohttp.ClientSession | None = None,
        connect_timeout: float = 5.0,
        finalize_timeout: float = 1.0,
        keepalive_interval: float = 4.0,
        label: str = "deepgram",
        metrics: ProviderMetrics | None = None,
    ) -> None:
        super().__init__(
            label=label,
            capabilities=ASRCapabilities(
                streaming=True, partial_results=True, grammar=False, sample_rates=(SAMPLE_RATE,)
            ),
            metrics=metrics,
        )
        if not url.startswith(("ws://", "wss://")):
            raise ProviderUsageError(f"url must be ws:// or wss://, got {url!r}")
        query = {
            "model": model,
            "language": language,
            "encoding": "linear16",
            "sample_rate": str(SAMPLE_RATE),
            "channels": "1",
            "interim_results": "true",
            **(params or {}),
        }
        self.url = f"{url}?{urlencode(query)}"
        self._headers = {"Authorization": f"Token {api_key}"}
        self._session = session
        self._owns_session = False
        self.connect_timeout = connect_timeout
        self.finalize_timeout = finalize_timeout
        self.keepalive_interval = keepalive_interval
        self.late_results = 0
        self._streams: set[DeepgramStream] = set()

    async def start(self) -> None:
        """Make the HTTP session (unless one was given)."""
        if self._session is None:
            self._session = aiohttp.ClientSession()
            self._owns_session = True

    async def aclose(self) -> None:
        """Close every open stream, then the session if we made it."""
        for stream in list(self._streams):
            await stream.aclose()
        if self._owns_session and self._session is not None:
            await self._session.close()
            self._session = None
            self._owns_session = False

    def _stream_impl(self, *, grammar: str | None, call_id: str) -> DeepgramStream:
        if self._session is None or self._session.closed:
            raise ProviderUsageError("DeepgramASR.stream() before start() or after aclose()")
        stream = DeepgramStream(self, self._session, call_id)
        self._streams.add(stream)
        return stream


class DeepgramStream(ASRStream):
    """One call's Deepgram socket; see the module docstring."""

    def __init__(self, asr: DeepgramASR, session: aiohttp.ClientSession, call_id: str) -> None:
        super().__init__(provider=asr.label, call_id=call_id, metrics=asr._metrics)
        self._asr = asr
        self._outbox: deque[bytes | str] = deque()
        self._backlog = 0  # audio bytes in the outbox
        self._ready = asyncio.Event()  # the outbox has something
        self._sent_s = 0.0  # stream seconds pushed so far
        self._current: Utterance | None = None  # audio pushed since the last flush
        self._waiting: deque[Utterance] = deque()  # flushed, Final not yet emitted
        self._timers: dict[int, asyncio.TimerHandle] = {}
        self._closing = False  # CloseStream is queued
        self._last_partial = ""
        self._task = asyncio.create_task(self._run(session), name=f"deepgram {call_id}")

    # -- the caller's side (ASRStream hooks) ----------------------------------------------

    def _push_impl(self, pcm: bytes) -> None:
        if self._backlog + len(pcm) > MAX_BACKLOG_S * _BYTES_PER_S:
            self._fail(
                ProviderError("audio backlog over 10 s", provider=self.provider, retryable=True)
            )
            return
        if self._current is None:
            self._current = Utterance(self._sent_s)
        self._sent_s += len(pcm) / _BYTES_PER_S
        self._send(pcm)

    def _flush_impl(self) -> None:
        if not self._close_utterance():
            self._emit_final_now(Utterance(self._sent_s, self._sent_s))
        elif self._waiting[-1].covered(COVER_TOLERANCE_S):
            self._emit_through(self._waiting[-1])  # final segments already cover it all
        else:
            self._send(_FINALIZE)

    def _end_input_impl(self) -> None:
        self._close_utterance()
        self._closing = True
        self._send(_CLOSE_STREAM)
        self._later(id(self), self._asr.finalize_timeout, self._give_up_closing)

    async def _aclose_impl(self) -> None:
        for handle in self._timers.values():
            handle.cancel()
        self._timers.clear()
        self._asr._streams.discard(self)
        await cancel_and_wait(self._task)

    def _close_utterance(self) -> bool:
        """Move the utterance in progress to the waiting ones; False if it had no audio."""
        utterance, self._current = self._current, None
        self._last_partial = ""
        if utterance is None:
            return False
        utterance.end = self._sent_s
        self._waiting.append(utterance)
        self._later(id(utterance), self._asr.finalize_timeout, self._finalize_timed_out, utterance)
        return True

    def _send(self, item: bytes | str) -> None:
        if isinstance(item, bytes):
            self._backlog += len(item)
        self._outbox.append(item)
        self._ready.set()

    def _later(self, key: int, delay: float, callback: Callable[..., None], *args: object) -> None:
        def fire() -> None:
            self._timers.pop(key, None)
            callback(*args)

        self._timers[key] = asyncio.get_running_loop().call_later(delay, fire)

    # -- results ------------------------------------------------------------------------

    def _on_segment(self, seg: Segment) -> None:
        waiting = self._waiting
        # Results come in audio order: one that starts before the oldest waiting
        # utterance's end is that utterance's; before its start, an answered one's.
        target = None
        for utterance in waiting:
            if seg.start < (utterance.end or 0.0) - 1e-3:
                target = utterance
                break
        if target is None:
            target = self._current
        if target is None or seg.start < target.start - COVER_TOLERANCE_S:
            self._asr.late_results += 1
            log.debug("%s: result for audio already answered dropped", self.call_id)
            return
        target.add(seg)
        if target is self._current:
            text = target.text(target.interim.text if target.interim is not None else "")
            if text and text != self._last_partial:
                self._last_partial = text
                self._emit(Partial(text))
        elif seg.is_final and (seg.from_finalize or target.covered(COVER_TOLERANCE_S)):
            self._emit_through(target)

    def _emit_through(self, target: Utterance, *, with_interim: bool = False) -> None:
        """Emit the Finals of the waiting utterances up to ``target``, in flush order.

        Those before ``target`` never got their final results: their last guess counts.
        """
        while self._waiting:
            utterance = self._waiting.popleft()
            done = utterance is target
            self._emit_final_now(utterance, with_interim=with_interim or not done)
            if done:
                break

    def _emit_final_now(self, utterance: Utterance, *, with_interim: bool = False) -> None:
        timer = self._timers.pop(id(utterance), None)
        if timer is not None:
            timer.cancel()
        self._emit(utterance.final(with_interim=with_interim))

    def _finalize_timed_out(self, utterance: Utterance) -> None:
        if utterance in self._waiting:
            log.info(
                "%s: no final results within %.1f s of a flush",
                self.call_id,
                self._asr.finalize_timeout,
            )
            self._emit_through(utterance, with_interim=True)

    def _emit_all(self) -> None:
        if self._waiting:
            self._emit_through(self._waiting[-1], with_interim=True)

    def _give_up_closing(self) -> None:
        log.info(
            "%s: no close within %.1f s of CloseStream", self.call_id, self._asr.finalize_timeout
        )
        self._emit_all()
        self._finish()
        self._task.cancel()

    # -- the socket ---------------------------------------------------------------------

    async def _run(self, session: aiohttp.ClientSession) -> None:
        try:
            await self._connect_and_serve(session)
        except Exception as exc:  # a bug, or an error aiohttp did not document: fail, not hang
            log.exception("%s: Deepgram stream failed", self.call_id)
            self._fail(
                ProviderError(f"stream failed: {exc!r}", provider=self.provider, retryable=True)
            )

    async def _connect_and_serve(self, session: aiohttp.ClientSession) -> None:
        asr = self._asr
        try:
            async with asyncio.timeout(asr.connect_timeout):
                ws = await session.ws_connect(asr.url, headers=asr._headers, autoping=True)
        except TimeoutError:
            self._fail(APITimeoutError("WebSocket handshake timed out", provider=self.provider))
            return
        except aiohttp.WSServerHandshakeError as exc:
            self._fail(
                APIStatusError(
                    f"handshake refused: {exc.message}", provider=self.provider, status=exc.status
                )
            )
            return
        except (aiohttp.ClientError, OSError) as exc:
            self._fail(APIConnectionError(f"cannot connect: {exc!r}", provider=self.provider))
            return
        writer = asyncio.create_task(self._write(ws), name=f"deepgram writer {self.call_id}")
        try:
            await self._read(ws)
        except (aiohttp.ClientError, OSError) as exc:
            self._fail(APIConnectionError(f"connection broke: {exc!r}", provider=self.provider))
        finally:
            try:
                await cancel_and_wait(writer)
            finally:  # even when aclose() cancels us here: the socket must not leak
                await ws.close()
        if writer.done() and not writer.cancelled() and writer.exception() is not None:
            self._fail(
                APIConnectionError(f"send failed: {writer.exception()!r}", provider=self.provider)
            )
            return
        self._closed_by_server(ws.close_code)

    async def _read(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        async for msg in ws:
            if msg.type is WSMsgType.TEXT:
                try:
                    seg = parse_result(msg.data)
                except ServerError as exc:
                    error = f"server error: {exc}"
                    self._fail(ProviderError(error, provider=self.provider, retryable=True))
                    return
                except ValueError as exc:
                    self._fail(ProviderError(f"malformed message: {exc}", provider=self.provider))
                    return
                if seg is not None:
                    self._on_segment(seg)
            elif msg.type is WSMsgType.ERROR:
                return

    async def _write(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        outbox = self._outbox
        while True:
            try:
                async with asyncio.timeout(self._asr.keepalive_interval):
                    await self._ready.wait()
            except TimeoutError:
                await ws.send_str(_KEEPALIVE)
                continue
            self._ready.clear()
            while outbox:
                item = outbox.popleft()
                if isinstance(item, str):
                    await ws.send_str(item)
                    continue
                parts = [item]
                while outbox and isinstance(outbox[0], bytes):
                    parts.append(outbox.popleft())  # type: ignore[arg-type]
                audio = b"".join(parts)
                self._backlog -= len(audio)
                await ws.send_bytes(audio)

    def _closed_by_server(self, code: int | None) -> None:
        if self._closing and code == 1000:
            self._emit_all()
            self._finish()
            return
        self._fail(
            ProviderError(
                f"server closed the stream (code {code})",
                provider=self.provider,
                retryable=code is None or code in _RETRYABLE_CLOSES,
            )
        )

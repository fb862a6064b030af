"""A local server speaking Deepgram's live-streaming protocol, with scripted transcripts.

It does **not** recognise speech. It speaks the protocol faithfully (the handshake with
``Authorization: Token KEY`` and the query parameters, binary audio frames, the
``KeepAlive`` / ``Finalize`` / ``CloseStream`` control messages, ``Results`` and
``Metadata`` messages, close codes) and "hears" each utterance as the next entry of a
script: the audio between two ``Finalize`` messages (or up to ``CloseStream``) is
utterance *n*, heard as ``transcripts[n]`` (or ``transcripts(n)``; "" when the script
is used up). What it derives from the audio is honest but cheap: how much arrived.
Interim results reveal the script's words one per ``partial_every_ms`` of audio, final
segments cut every ``segment_ms`` (if set), and word times are spread evenly over the
utterance's audio.

Faults (``fail(kind, after=ms)``, one per connection, after ``ms`` of audio received):
``close`` (close with ``status`` as the code, e.g. 1011), ``drop`` (TCP dropped, no close
frame), ``garbage`` (a text message that is not JSON), ``stall`` (no more results and no
close). ``status`` (``after`` ignored) refuses the handshake with that HTTP status.
With ``answer_finalize=False`` a ``Finalize`` gets no answer (Deepgram documents that
its ``from_finalize`` answer is not guaranteed). No message for ``idle_close_s`` closes
with 1011 ``NET-0001``, as Deepgram does after 10 s.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

from trunkline.providers.testing.base import Fault, LocalServer

__all__ = ["DeepgramServer", "DeepgramStats"]


@dataclass(slots=True)
class DeepgramStats:
    """What the server saw, over all connections."""

    connections: int = 0
    audio_bytes: int = 0
    keepalives: int = 0
    finalizes: int = 0
    close_streams: int = 0
    queries: list[dict[str, str]] = field(default_factory=list)


@dataclass(slots=True)
class _Conn:
    """One connection: the stream clock and the utterance in progress."""

    rate: int
    fault: Fault | None
    stream_s: float = 0.0  # seconds of audio received
    utt_index: int = 0
    utt_start: float | None = None  # stream time of the utterance's first audio
    seg_start: float = 0.0  # stream time where the next final segment starts
    finalized_words: int = 0  # words of the script already sent in final segments
    stalled: bool = False


class DeepgramServer(LocalServer):
    """The server; see the module docstring.

    Args:
        transcripts: what utterance n is heard as.
        api_key: the key clients must send (``Token``).
        partial_every_ms: audio per revealed word in interim results.
        segment_ms: cut a final segment after this much audio (None: only on Finalize).
        confidence: the confidence of every result.
        answer_finalize: answer ``Finalize`` with a ``from_finalize`` result.
        idle_close_s: close a connection that sends nothing for this long.

    ``stats`` counts what came in; ``url`` is ``ws://127.0.0.1:PORT/v1/listen``.
    """

    def __init__(
        self,
        transcripts: Sequence[str] | Callable[[int], str] = (),
        *,
        api_key: str = "test-key",
        partial_every_ms: int = 200,
        segment_ms: int | None = None,
        confidence: float = 0.95,
        answer_finalize: bool = True,
        idle_close_s: float = 10.0,
    ) -> None:
        super().__init__()
        self.transcripts = transcripts
        self.api_key = api_key
        self.partial_every_ms = max(1, partial_every_ms)
        self.segment_ms = segment_ms
        self.confidence = confidence
        self.answer_finalize = answer_finalize
        self.idle_close_s = idle_close_s
        self.stats = DeepgramStats()
        self._sockets: set[web.WebSocketResponse] = set()

    @property
    def url(self) -> str:
        """The listen endpoint clients are given."""
        return f"ws://{self.host}:{self.port}/v1/listen"

    def build_app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/v1/listen", self._listen)
        return app

    async def before_close(self) -> None:
        for ws in list(self._sockets):
            await ws.close(code=1001, message=b"server going away")

    def transcript(self, index: int) -> str:
        """What utterance ``index`` is heard as."""
        if callable(self.transcripts):
            return self.transcripts(index)
        return self.transcripts[index] if index < len(self.transcripts) else ""

    # -- the connection ----------------------------------------------------------------------

    async def _listen(self, request: web.Request) -> web.StreamResponse:
        if request.headers.get("Authorization") != f"Token {self.api_key}":
            return web.json_response({"err_code": "INVALID_AUTH", "err_msg": "bad key"}, status=401)
        query = dict(request.query)
        rate = query.get("sample_rate", "")
        if (
            query.get("encoding") != "linear16"
            or not rate.isdigit()
            or query.get("channels") != "1"
        ):
            return web.json_response(
                {"err_code": "Bad Request", "err_msg": "expected linear16 mono with sample_rate"},
                status=400,
            )
        fault = self.take_fault()
        if fault is not None and fault.kind == "status":
            return web.json_response({"err_code": "INJECTED"}, status=fault.status)
        self.stats.connections += 1
        self.stats.queries.append(query)
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        self._sockets.add(ws)
        conn = _Conn(int(rate), fault)
        try:
            await self._serve(request, ws, conn)
        finally:
            self._sockets.discard(ws)
        return ws

    async def _serve(self, request: web.Request, ws: web.WebSocketResponse, conn: _Conn) -> None:
        while True:
            try:
                msg = await ws.receive(timeout=self.idle_close_s)
            except TimeoutError:
                await ws.close(code=1011, message=b"NET-0001")
                return
            if msg.type is WSMsgType.BINARY:
                if not await self._audio(request, ws, conn, msg.data):
                    return
            elif msg.type is WSMsgType.TEXT:
                if not await self._control(ws, conn, msg.data):
                    return
            else:  # CLOSE, CLOSING, CLOSED, ERROR
                return

    async def _audio(
        self, request: web.Request, ws: web.WebSocketResponse, conn: _Conn, data: bytes
    ) -> bool:
        if conn.utt_start is None:
            conn.utt_start = conn.stream_s
            conn.seg_start = conn.stream_s
        before_ms = self._utt_ms(conn)
        conn.stream_s += len(data) / (2 * conn.rate)
        self.stats.audio_bytes += len(data)
        fault = conn.fault
        if fault is not None and conn.stream_s * 1000 >= fault.after:
            conn.fault = None
            if fault.kind == "close":
                await ws.close(code=fault.status, message=b"injected")
                return False
            if fault.kind == "drop":
                if request.transport is not None:
                    request.transport.abort()
                return False
            if fault.kind == "garbage":
                await ws.send_str("this is not JSON")
            if fault.kind == "stall":
                conn.stalled = True
        if conn.stalled:
            return True
        words = self.transcript(conn.utt_index).split()
        after_ms = self._utt_ms(conn)
        step = self.partial_every_ms
        if after_ms // step > before_ms // step and words:
            heard = min(len(words), int(after_ms // step))
            seg_ms = (conn.stream_s - conn.seg_start) * 1000
            if self.segment_ms is not None and seg_ms >= self.segment_ms:
                await self._result(ws, conn, words[conn.finalized_words : heard], final=True)
                conn.finalized_words = max(conn.finalized_words, heard)
            else:
                await self._result(ws, conn, words[conn.finalized_words : heard], final=False)
        return True

    async def _control(self, ws: web.WebSocketResponse, conn: _Conn, text: str) -> bool:
        try:
            kind = json.loads(text).get("type")
        except (ValueError, AttributeError):
            await ws.close(code=1008, message=b"DATA-0000")
            return False
        if kind == "KeepAlive":
            self.stats.keepalives += 1
        elif kind == "Finalize":
            self.stats.finalizes += 1
            if conn.utt_start is not None and self.answer_finalize and not conn.stalled:
                await self._finish_utterance(ws, conn, from_finalize=True)
            elif conn.utt_start is not None:
                self._next_utterance(conn)
        elif kind == "CloseStream":
            self.stats.close_streams += 1
            if conn.stalled:
                return True
            if conn.utt_start is not None:
                await self._finish_utterance(ws, conn, from_finalize=False)
            await ws.send_str(json.dumps(_metadata(conn.stream_s)))
            await ws.close(code=1000)
            return False
        else:
            await ws.close(code=1008, message=b"unknown message type")
            return False
        return True

    # -- results -------------------------------------------------------------------------

    def _utt_ms(self, conn: _Conn) -> float:
        return 0.0 if conn.utt_start is None else (conn.stream_s - conn.utt_start) * 1000

    async def _finish_utterance(
        self, ws: web.WebSocketResponse, conn: _Conn, *, from_finalize: bool
    ) -> None:
        words = self.transcript(conn.utt_index).split()
        rest = words[conn.finalized_words :]
        await self._result(ws, conn, rest, final=True, from_finalize=from_finalize)
        self._next_utterance(conn)

    def _next_utterance(self, conn: _Conn) -> None:
        conn.utt_index += 1
        conn.utt_start = None
        conn.finalized_words = 0
        conn.seg_start = conn.stream_s

    async def _result(
        self,
        ws: web.WebSocketResponse,
        conn: _Conn,
        words: list[str],
        *,
        final: bool,
        from_finalize: bool = False,
    ) -> None:
        start, end = conn.seg_start, conn.stream_s
        span = max(end - start, 1e-3)
        per_word = span / max(1, len(words))
        timed = [
            {
                "word": w.lower().strip(".,?!"), "start": round(start + i * per_word, 3),
                "end": round(start + (i + 1) * per_word, 3), "confidence": self.confidence,
                "punctuated_word": w,
            }
            for i, w in enumerate(words)
        ]  # fmt: skip
        doc: dict[str, Any] = {
            "type": "Results", "channel_index": [0, 1], "duration": round(end - start, 3),
            "start": round(start, 3), "is_final": final, "speech_final": final,
            "channel": {"alternatives": [{
                "transcript": " ".join(words), "confidence": self.confidence if words else 0.0,
                "words": timed,
            }]},
            "metadata": {"request_id": str(uuid.uuid4()), "model_uuid": str(uuid.uuid4()),
                         "model_info": {"name": "scripted", "version": "0", "arch": "none"}},
            "from_finalize": from_finalize,
        }  # fmt: skip
        await ws.send_str(json.dumps(doc))
        if final:
            conn.seg_start = end


def _metadata(duration: float) -> dict[str, Any]:
    return {
        "type": "Metadata", "transaction_key": "deprecated", "request_id": str(uuid.uuid4()),
        "sha256": "0" * 64, "created": "1970-01-01T00:00:00.000Z",
        "duration": round(duration, 3), "channels": 1,
    }  # fmt: skip

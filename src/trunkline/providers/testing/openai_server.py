"""A local server speaking the OpenAI API's streaming chat and speech endpoints.

For tests, benchmarks and the demo: it answers what an OpenAI-compatible client sends,
on the wire format the real service uses, with scripted content, latency and failures.
It is not a model: replies are scripted (:class:`ChatReply`, in order, or a function of
the messages) or, when the script is used up, made by a fixed rule (see
:func:`rule_reply`); speech is a tone whose length follows the text.

- ``POST /v1/chat/completions`` (``"stream": true`` only): SSE ``chat.completion.chunk``
  events: a first chunk with the role, the text in word tokens (each with its leading
  space, as tokenizers cut it), tool calls in fragments (the first with ``id`` and
  ``function.name``, then ``arguments`` in ``arg_fragment`` characters), a last chunk
  with ``finish_reason``, then ``data: [DONE]``.
- ``POST /v1/audio/speech`` with ``response_format`` ``pcm`` (24 kHz s16le mono, no
  header) or ``wav`` (a streaming header with a placeholder data size), sent in chunks
  of ``speech_chunk_bytes`` (odd by default, so chunks split samples as real ones do).

Faults (``fail(kind, after=n)``, one per request): ``status`` (e.g. 500, 429 with
``Retry-After``), ``hang`` (no answer), ``stall``, ``garbage`` (a ``data:`` line that
is not JSON; for speech, a 200 with a JSON body), ``cut`` (connection dropped) and
``truncate`` (clean end, no ``[DONE]``), after ``n`` tokens (chat) or bytes (speech).
A wrong API key answers 401 as OpenAI does. ``client_gone`` counts chat streams whose
client closed the connection before the end (a barge-in cancelling the request).
"""

from __future__ import annotations

import asyncio
import json
import re
import struct
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from aiohttp import web

from trunkline.providers.testing.base import Fault, LocalServer

__all__ = ["ChatReply", "OpenAIServer", "RecordedRequest", "ScriptedToolCall", "rule_reply"]

#: OpenAI's ``pcm`` rate.
SPEECH_RATE = 24_000
#: Largest request body read (a long chat history is tens of kilobytes).
MAX_BODY = 4 * 1024 * 1024
_TOKEN = re.compile(r"\s*\S+")


@dataclass(frozen=True, slots=True)
class ScriptedToolCall:
    """A tool call the server will stream; ``arguments`` is sent as JSON text."""

    name: str
    arguments: Mapping[str, Any] | str = field(default_factory=dict)
    id: str | None = None


@dataclass(frozen=True, slots=True)
class ChatReply:
    """One scripted assistant answer: text, then tool calls."""

    text: str = ""
    tool_calls: tuple[ScriptedToolCall, ...] = ()


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """What a client sent: path, headers, JSON body."""

    path: str
    headers: Mapping[str, str]
    body: Mapping[str, Any]


ReplyScript = Sequence[ChatReply] | Callable[[list[dict[str, Any]]], ChatReply]


def rule_reply(messages: list[dict[str, Any]]) -> ChatReply:
    """The fixed rule used when no script applies: answer the last message plainly.

    A tool result is acknowledged ("I checked that."); a user message is repeated back
    ("You said: ..."); anything else gets "How can I help you?".
    """
    last = messages[-1] if messages else {}
    if last.get("role") == "tool":
        return ChatReply("I checked that.")
    content = last.get("content")
    if last.get("role") == "user" and isinstance(content, str) and content.strip():
        return ChatReply(f"You said: {content.strip()}.")
    return ChatReply("How can I help you?")


class OpenAIServer(LocalServer):
    """The server; see the module docstring.

    Args:
        replies: scripted chat replies in order (then the rule), or a function of the
            messages.
        api_key: the key clients must send (``Bearer``); None accepts any.
        first_token_delay: seconds after the headers before the first token.
        token_delay: seconds between tokens.
        arg_fragment: characters of tool arguments per fragment.
        speech_ms_per_char: audio per character of speech input.
        speech_chunk_bytes: bytes per chunk of speech audio.
        speech_first_byte_delay: seconds before the speech body's first chunk.

    ``requests`` records every request; ``base_url`` is ``http://127.0.0.1:PORT/v1``.
    """

    def __init__(
        self,
        replies: ReplyScript = (),
        *,
        api_key: str | None = "test-key",
        first_token_delay: float = 0.0,
        token_delay: float = 0.0,
        arg_fragment: int = 7,
        speech_ms_per_char: float = 60.0,
        speech_chunk_bytes: int = 4801,
        speech_first_byte_delay: float = 0.0,
    ) -> None:
        super().__init__()
        self.replies = replies
        self.api_key = api_key
        self.first_token_delay = first_token_delay
        self.token_delay = token_delay
        self.arg_fragment = max(1, arg_fragment)
        self.speech_ms_per_char = speech_ms_per_char
        self.speech_chunk_bytes = max(1, speech_chunk_bytes)
        self.speech_first_byte_delay = speech_first_byte_delay
        self.requests: list[RecordedRequest] = []
        self.client_gone = 0
        self._chats = 0

    @property
    def base_url(self) -> str:
        """The API root clients are given."""
        return f"http://{self.host}:{self.port}/v1"

    def build_app(self) -> web.Application:
        app = web.Application(client_max_size=MAX_BODY, middlewares=[refusals])
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_post("/v1/audio/speech", self._speech)
        return app

    # -- scripted content ------------------------------------------------------------------

    def next_reply(self, messages: list[dict[str, Any]]) -> ChatReply:
        """The reply to this request (consumes one scripted reply)."""
        script = self.replies
        if callable(script):
            return script(messages)
        index, self._chats = self._chats, self._chats + 1
        return script[index] if index < len(script) else rule_reply(messages)

    def speech_audio(self, text: str) -> bytes:
        """The 24 kHz s16le audio the server renders for ``text`` (a 440 Hz tone)."""
        n = round(len(text) * self.speech_ms_per_char * SPEECH_RATE / 1000)
        t = np.arange(n) / SPEECH_RATE
        pcm: bytes = (np.sin(2 * np.pi * 440.0 * t) * 8000).astype("<i2").tobytes()
        return pcm

    # -- common request handling -------------------------------------------------------------

    async def _admit(self, request: web.Request) -> tuple[dict[str, Any], Fault | None]:
        """Record the request; check the key and the body; take the request's fault."""
        try:
            body = await request.json()
        except (ValueError, UnicodeDecodeError):
            body = None
        recorded = body if isinstance(body, dict) else {}
        self.requests.append(RecordedRequest(request.path, dict(request.headers), recorded))
        key = self.api_key
        if key is not None and request.headers.get("Authorization") != f"Bearer {key}":
            raise _error(401, "Incorrect API key provided.", "invalid_request_error")
        if not isinstance(body, dict):
            raise _error(400, "We could not parse the JSON body of your request.")
        fault = self.take_fault()
        if fault is not None and fault.kind == "status":
            headers = {"Retry-After": "0"} if fault.status == 429 else None
            kind = "rate_limit_exceeded" if fault.status == 429 else "server_error"
            raise _error(fault.status, f"Injected failure {fault.status}.", kind, headers)
        if fault is not None and fault.kind == "hang":
            await self.hang()
            raise _error(503, "The server was closing.")
        return body, fault

    async def _fault_now(
        self, request: web.Request, response: web.StreamResponse, fault: Fault | None, sent: int
    ) -> bool:
        """Act on a mid-stream fault due at ``sent`` units; True when the stream is over."""
        if fault is None or fault.after != sent:
            return False
        if fault.kind == "stall":
            await self.hang()
            return True
        if fault.kind == "cut":
            if request.transport is not None:
                request.transport.abort()
            return True
        if fault.kind == "truncate":
            await response.write_eof()
            return True
        return False

    # -- chat ------------------------------------------------------------------------------

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        body, fault = await self._admit(request)
        messages = body.get("messages")
        if not isinstance(body.get("model"), str) or not isinstance(messages, list):
            raise _error(400, "'model' and 'messages' are required.")
        if body.get("stream") is not True:
            raise _error(400, "This local server answers streaming requests only.")
        reply = self.next_reply(messages)
        response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
        )
        await response.prepare(request)
        chunk_id = f"chatcmpl-{len(self.requests)}"
        created = int(time.time())

        def event(delta: dict[str, Any], finish: str | None = None) -> bytes:
            doc = {
                "id": chunk_id, "object": "chat.completion.chunk", "created": created,
                "model": body["model"],
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            }  # fmt: skip
            return b"data: " + json.dumps(doc).encode() + b"\n\n"

        try:
            await self._stream_chat(request, response, reply, fault, event)
        except ConnectionResetError:  # the client went away mid-stream
            self.client_gone += 1
        return response

    async def _stream_chat(
        self,
        request: web.Request,
        response: web.StreamResponse,
        reply: ChatReply,
        fault: Fault | None,
        event: Callable[..., bytes],
    ) -> None:
        await response.write(event({"role": "assistant", "content": ""}))
        await asyncio.sleep(self.first_token_delay)
        sent = 0
        for delta in self._deltas(reply):
            if await self._fault_now(request, response, fault, sent):
                return
            if fault is not None and fault.kind == "garbage" and fault.after == sent:
                await response.write(b"data: {not json\n\n")
            if sent and self.token_delay:
                await asyncio.sleep(self.token_delay)
            await response.write(event(delta))
            sent += 1
        if await self._fault_now(request, response, fault, sent):
            return
        await response.write(event({}, "tool_calls" if reply.tool_calls else "stop"))
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()

    def _deltas(self, reply: ChatReply) -> list[dict[str, Any]]:
        deltas: list[dict[str, Any]] = [{"content": t} for t in _TOKEN.findall(reply.text)]
        for index, call in enumerate(reply.tool_calls):
            args = call.arguments if isinstance(call.arguments, str) else json.dumps(call.arguments)
            deltas.append(
                {"tool_calls": [{
                    "index": index, "id": call.id or f"call_{index}_{len(self.requests)}",
                    "type": "function", "function": {"name": call.name, "arguments": ""},
                }]}
            )  # fmt: skip
            for i in range(0, len(args), self.arg_fragment):
                piece = args[i : i + self.arg_fragment]
                deltas.append({"tool_calls": [{"index": index, "function": {"arguments": piece}}]})
        return deltas

    # -- speech ----------------------------------------------------------------------------

    async def _speech(self, request: web.Request) -> web.StreamResponse:
        body, fault = await self._admit(request)
        text, voice = body.get("input"), body.get("voice")
        if not isinstance(body.get("model"), str) or not isinstance(voice, str):
            raise _error(400, "'model' and 'voice' are required.")
        if not isinstance(text, str) or not text.strip():
            raise _error(400, "'input' must be non-empty text.")
        fmt = body.get("response_format", "mp3")
        if fmt not in ("pcm", "wav"):
            raise _error(400, f"This local server renders pcm and wav, not {fmt!r}.")
        if fault is not None and fault.kind == "garbage":
            return web.json_response({"note": "not audio"})
        audio = self.speech_audio(text)
        if fmt == "wav":
            audio = _streaming_wav_header(SPEECH_RATE) + audio
        response = web.StreamResponse(headers={"Content-Type": f"audio/{fmt}"})
        await response.prepare(request)
        await asyncio.sleep(self.speech_first_byte_delay)
        step = self.speech_chunk_bytes
        for start in range(0, len(audio), step):
            piece = audio[start : start + step]
            if (
                fault is not None
                and fault.kind != "garbage"
                and start <= fault.after < start + step
            ):
                cut = fault.after - start
                if cut:
                    await response.write(piece[:cut])
                await self._fault_now(request, response, fault, fault.after)
                return response
            await response.write(piece)
        await response.write_eof()
        return response


def _streaming_wav_header(rate: int) -> bytes:
    """A 16-bit mono PCM WAV header whose sizes are streaming placeholders."""
    fmt = struct.pack("<HHIIHH", 1, 1, rate, rate * 2, 2, 16)
    return (
        b"RIFF" + struct.pack("<I", 0xFFFFFFFF) + b"WAVE"
        + b"fmt " + struct.pack("<I", len(fmt)) + fmt
        + b"data" + struct.pack("<I", 0xFFFFFFFF)
    )  # fmt: skip


class Refusal(Exception):
    """An error answer raised from a handler; the middleware sends ``response``."""

    def __init__(self, response: web.Response) -> None:
        super().__init__(response.status)
        self.response = response


@web.middleware
async def refusals(request: web.Request, handler: Any) -> web.StreamResponse:
    """Turn a raised :class:`Refusal` into its response."""
    try:
        response: web.StreamResponse = await handler(request)
    except Refusal as refusal:
        return refusal.response
    return response


def _error(
    status: int, message: str, kind: str = "invalid_request_error",
    headers: Mapping[str, str] | None = None,
) -> Refusal:  # fmt: skip
    """An OpenAI-shaped error answer, to raise from a handler."""
    doc = {"error": {"message": message, "type": kind, "param": None, "code": None}}
    return Refusal(web.json_response(doc, status=status, headers=headers))

"""Server-sent events (the ``text/event-stream`` format), decoded incrementally, sans-IO.

OpenAI-compatible chat servers stream their answer as SSE: ``data: {...}`` lines, each
event ended by a blank line, the stream ended by ``data: [DONE]``. ``SseDecoder.feed``
takes bytes as they arrive (cut anywhere, even inside a UTF-8 character) and returns
the events completed so far, following the WHATWG parsing rules that matter here:

- lines end with LF or CRLF (a lone CR as terminator, allowed by the spec but used by no
  server we know of, is not supported: it stays part of the line);
- ``field: value`` with one leading space of the value dropped; ``data`` lines of one
  event are joined with LF; ``event`` names the event; ``id`` and ``retry`` are
  ignored (we never reconnect a chat answer); a line starting with ``:`` is a comment
  (keep-alive pings);
- an event is dispatched at a blank line, and only if it has data.

Anything that cannot be an event stream (a line that is not UTF-8, a line longer than
``MAX_LINE_BYTES``) raises ``SseError``.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["MAX_LINE_BYTES", "SseDecoder", "SseError", "SseEvent"]

#: Longest line accepted. A chat chunk is a few hundred bytes (a tool call's arguments
#: arrive in fragments); a megabyte without a newline is a broken or hostile server, and
#: buffering more would let it take the process's memory.
MAX_LINE_BYTES = 1 << 20


class SseError(ValueError):
    """The bytes are not an event stream."""


@dataclass(frozen=True, slots=True)
class SseEvent:
    """One dispatched event: its ``event`` name ("message" by default) and data."""

    data: str
    event: str = "message"


class SseDecoder:
    """Incremental SSE decoder; see the module docstring."""

    def __init__(self, max_line_bytes: int = MAX_LINE_BYTES) -> None:
        self._max = max_line_bytes
        self._rest = b""
        self._data: list[str] = []
        self._event = ""

    def feed(self, chunk: bytes) -> list[SseEvent]:
        """Take the next bytes; return the events they complete.

        Raises:
            SseError: a line is not UTF-8 or is too long.
        """
        data = self._rest + chunk if self._rest else chunk
        lines = data.split(b"\n")
        self._rest = lines.pop()
        if len(self._rest) > self._max:
            raise SseError(f"event-stream line longer than {self._max} bytes")
        events: list[SseEvent] = []
        for raw in lines:
            if len(raw) > self._max:
                raise SseError(f"event-stream line longer than {self._max} bytes")
            event = self._line(raw[:-1] if raw.endswith(b"\r") else raw)
            if event is not None:
                events.append(event)
        return events

    @property
    def pending(self) -> bool:
        """True when bytes or data lines wait for the end of their event."""
        return bool(self._rest or self._data)

    def _line(self, raw: bytes) -> SseEvent | None:
        if not raw:
            if not self._data:
                self._event = ""
                return None
            event = SseEvent("\n".join(self._data), self._event or "message")
            self._data, self._event = [], ""
            return event
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise SseError("event-stream line is not UTF-8") from None
        if line.startswith(":"):
            return None
        name, colon, value = line.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        # "id", "retry" and unknown fields are ignored, as the spec says.
        return None

"""The session checkpoint of a live call, and the in-memory ``SessionStore``.

Theory of operation
-------------------
After every turn the runtime saves the call's :class:`Session` (flow state, slots,
transcript, the tool call in flight, SIP dialog state). If the worker that runs the call
dies, another worker loads the session and restores it into a new pipeline.

Two workers must never both think they own a call. Saves therefore use optimistic
concurrency: each save carries ``version`` = the stored version + 1 (a new session saves
version 1). A save that does not is refused with :class:`SessionConflict`, and the worker
that gets it should stop driving the call. The owner bumps ``version`` before each save.

The serialized form is JSON with a ``format`` number, so a fleet can be upgraded while
sessions are live: a reader that meets a format it does not know raises
:class:`SessionFormatError` instead of guessing.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Protocol

#: Version of the JSON layout written by :meth:`Session.to_json`.
SESSION_FORMAT = 1


class SessionStoreError(Exception):
    """Base error of the session stores.

    ``retryable`` is True when the same call may succeed later (the store is down, slow
    or restarting) and False when retrying cannot help (bad data, a refused write).
    """

    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable


class SessionConflict(SessionStoreError):
    """A save whose version is not the stored version + 1: another worker owns the call."""

    def __init__(self, call_id: str, *, stored: int, offered: int) -> None:
        super().__init__(
            f"session {call_id!r}: save of version {offered} but the store holds version "
            f"{stored} (expected {stored + 1}); another worker is writing this call",
            retryable=False,
        )
        self.call_id = call_id
        self.stored = stored
        self.offered = offered


class SessionFormatError(SessionStoreError):
    """A session that cannot be encoded (non-JSON values) or decoded (corrupt, unknown format)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, retryable=False)


@dataclass
class Session:
    """What is checkpointed after every turn of a call.

    ``slots``, ``transcript``, ``pending_tool`` and ``sip_dialog`` must hold JSON values
    only (str, int, float, bool, None, lists, dicts with str keys): they cross processes.
    Transcript entries look like ``{"role": "caller" | "agent", "text": ..., "at": ...}``.
    ``updated_at`` is set by the owner (wall-clock seconds); the stores do not touch it.
    """

    call_id: str
    agent: str
    tenant: str = "default"
    flow_state: str | None = None
    slots: dict[str, Any] = field(default_factory=dict)
    transcript: list[dict[str, Any]] = field(default_factory=list)
    pending_tool: dict[str, Any] | None = None
    sip_dialog: dict[str, Any] | None = None
    brain: dict[str, Any] | None = None
    version: int = 1
    updated_at: float = 0.0

    def to_json(self) -> bytes:
        """Encode as UTF-8 JSON.

        Raises:
            SessionFormatError: a value is not JSON (a set, bytes, NaN, a non-str key...).
        """
        doc = {
            "format": SESSION_FORMAT,
            "call_id": self.call_id,
            "agent": self.agent,
            "tenant": self.tenant,
            "flow_state": self.flow_state,
            "slots": self.slots,
            "transcript": self.transcript,
            "pending_tool": self.pending_tool,
            "sip_dialog": self.sip_dialog,
            "brain": self.brain,
            "version": self.version,
            "updated_at": self.updated_at,
        }
        try:
            # No NaN/Infinity: they are not JSON and other readers (Redis Lua, JS) reject them.
            text = json.dumps(doc, allow_nan=False, separators=(",", ":"))
        except (TypeError, ValueError) as exc:
            raise SessionFormatError(f"session {self.call_id!r} is not JSON: {exc}") from exc
        return text.encode("ascii")  # ensure_ascii: lone surrogates survive too

    @classmethod
    def from_json(cls, data: bytes) -> Session:
        """Decode what :meth:`to_json` wrote.

        Raises:
            SessionFormatError: the data is not a session, or its ``format`` is unknown.
        """
        try:
            doc = json.loads(data)
        except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
            raise SessionFormatError(f"session data is not JSON: {exc}") from exc
        if not isinstance(doc, dict):
            raise SessionFormatError("session data is not a JSON object")
        fmt = doc.get("format")
        if fmt != SESSION_FORMAT:
            raise SessionFormatError(
                f"session format {fmt!r} is not supported (this reader knows {SESSION_FORMAT})"
            )
        try:
            return cls._from_doc(doc)
        except OverflowError as exc:  # an integer too large for a float timestamp
            raise SessionFormatError(f"session field out of range: {exc}") from exc

    @classmethod
    def _from_doc(cls, doc: dict[str, Any]) -> Session:
        return cls(
            call_id=_field(doc, "call_id", str),
            agent=_field(doc, "agent", str),
            tenant=_field(doc, "tenant", str),
            flow_state=_optional(doc, "flow_state", str),
            slots=_field(doc, "slots", dict),
            transcript=_transcript(doc),
            pending_tool=_optional(doc, "pending_tool", dict),
            sip_dialog=_optional(doc, "sip_dialog", dict),
            brain=_optional(doc, "brain", dict),
            version=_version(doc),
            updated_at=float(_field(doc, "updated_at", (int, float))),
        )


def _field(doc: dict[str, Any], name: str, kind: type | tuple[type, ...]) -> Any:
    value = doc.get(name)
    # bool is an int subclass; a boolean version or timestamp is corrupt data.
    if not isinstance(value, kind) or isinstance(value, bool):
        raise SessionFormatError(f"session field {name!r} is missing or not {_kind_name(kind)}")
    return value


def _optional(doc: dict[str, Any], name: str, kind: type) -> Any:
    if doc.get(name) is None:
        return None
    return _field(doc, name, kind)


def _version(doc: dict[str, Any]) -> int:
    version: int = _field(doc, "version", int)
    if version < 1:
        raise SessionFormatError(f"session version {version} is below 1")
    return version


def _transcript(doc: dict[str, Any]) -> list[dict[str, Any]]:
    entries: list[Any] = _field(doc, "transcript", list)
    if not all(isinstance(e, dict) for e in entries):
        raise SessionFormatError("session transcript holds an entry that is not an object")
    return entries


def _kind_name(kind: type | tuple[type, ...]) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    return " or ".join(k.__name__ for k in kinds)


class SessionStore(Protocol):
    """Where live calls are checkpointed. Every method may raise :class:`SessionStoreError`."""

    async def save(self, session: Session) -> None:
        """Store ``session``; its version must be the stored one + 1 (1 if none is stored).

        Raises:
            SessionConflict: the version does not follow the stored one.
            SessionStoreError: the store failed (see ``retryable``).
        """
        ...

    async def load(self, call_id: str) -> Session | None:
        """The last saved session of ``call_id``, or None."""
        ...

    async def delete(self, call_id: str) -> None:
        """Forget ``call_id`` (the call ended). Deleting an unknown call is not an error."""
        ...

    async def list_active(self) -> list[str]:
        """Call-IDs of every stored session, in no particular order."""
        ...

    async def aclose(self) -> None:
        """Release connections. The store is not used afterwards."""
        ...


class MemorySessionStore:
    """The embedded default: sessions live in this process, as JSON.

    Storing the encoded form (not the object) means a session that Redis would refuse is
    refused here too, and a loaded session shares nothing with the one that was saved.
    """

    def __init__(self) -> None:
        self._data: dict[str, tuple[int, bytes]] = {}

    async def save(self, session: Session) -> None:
        encoded = session.to_json()
        stored = self._data.get(session.call_id, (0, b""))[0]
        if session.version != stored + 1:
            raise SessionConflict(session.call_id, stored=stored, offered=session.version)
        self._data[session.call_id] = (session.version, encoded)

    async def load(self, call_id: str) -> Session | None:
        entry = self._data.get(call_id)
        return None if entry is None else Session.from_json(entry[1])

    async def delete(self, call_id: str) -> None:
        self._data.pop(call_id, None)

    async def list_active(self) -> list[str]:
        return list(self._data)

    async def aclose(self) -> None:
        self._data.clear()

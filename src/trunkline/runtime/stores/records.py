"""The call record (one per call) and the ``RecordBackend`` interface the databases implement.

A record is written once, when the call ends, by :class:`~trunkline.runtime.stores.writer.
RecordWriter`, which queues and spools it so that a slow or absent database never blocks
a call and never loses a record. Backends upsert by ``call_id`` and never replace a
stored record with one of a lower ``revision``: replaying a spool after a crash (records
that had already landed) creates no duplicate, and an older copy replayed late cannot
overwrite a newer one.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Protocol

#: Version of the JSON layout of :meth:`CallRecord.to_json` (spool lines, database column).
RECORD_FORMAT = 1


class RecordStoreError(Exception):
    """Base error of the record backends; ``retryable`` says whether trying again may help."""

    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable


class RecordFormatError(RecordStoreError):
    """A record that cannot be encoded (non-JSON values) or decoded (corrupt data)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, retryable=False)


@dataclass
class TurnTiming:
    """When each stage of one turn happened, in seconds since the call started.

    None means the stage did not happen in this turn (the caller hung up mid-turn, the
    brain answered with silence...).
    """

    turn: int
    end_of_speech: float | None = None
    asr_final: float | None = None
    first_brain_output: float | None = None
    first_tts_audio: float | None = None
    first_outbound_packet: float | None = None


@dataclass
class CallRecord:
    """Everything kept about one call once it is over.

    ``started_at`` and ``ended_at`` are wall-clock (Unix) seconds. The list and dict
    fields must hold JSON values only. ``revision`` orders several records of one call:
    0 lets :meth:`RecordWriter.submit` stamp the submit time.
    """

    call_id: str
    agent: str
    tenant: str
    started_at: float
    ended_at: float | None = None
    transcript: list[dict[str, Any]] = field(default_factory=list)
    turns: list[TurnTiming] = field(default_factory=list)
    dtmf: str = ""
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    outcome: str = ""
    transfer: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    revision: int = 0

    def to_json(self) -> bytes:
        """One line of ASCII JSON (no newline).

        Raises:
            RecordFormatError: a field holds a value that is not JSON.
        """
        # Built by hand: dataclasses.asdict deep-copies every value, several times slower.
        doc = {
            "format": RECORD_FORMAT,
            "call_id": self.call_id,
            "agent": self.agent,
            "tenant": self.tenant,
            "started_at": self.started_at,
            "ended_at": self.ended_at,
            "transcript": self.transcript,
            "turns": [_turn_dict(t) for t in self.turns],
            "dtmf": self.dtmf,
            "tool_calls": self.tool_calls,
            "outcome": self.outcome,
            "transfer": self.transfer,
            "extra": self.extra,
            "revision": self.revision,
        }
        try:
            text = json.dumps(doc, allow_nan=False, separators=(",", ":"))
        except (TypeError, ValueError) as exc:
            raise RecordFormatError(f"record {self.call_id!r} is not JSON: {exc}") from exc
        return text.encode("ascii")

    @classmethod
    def from_json(cls, data: bytes | str) -> CallRecord:
        """Decode what :meth:`to_json` wrote.

        Raises:
            RecordFormatError: the data is not a record of a known format.
        """
        try:
            doc = json.loads(data)
        except (ValueError, RecursionError) as exc:
            raise RecordFormatError(f"record data is not JSON: {exc}") from exc
        if not isinstance(doc, dict):
            raise RecordFormatError("record data is not a JSON object")
        if doc.get("format") != RECORD_FORMAT:
            raise RecordFormatError(f"record format {doc.get('format')!r} is not supported")
        try:
            turns = [TurnTiming(**t) for t in _get(doc, "turns", list)]
            for t in turns:
                _check_turn(t)
            return cls(
                call_id=_get(doc, "call_id", str),
                agent=_get(doc, "agent", str),
                tenant=_get(doc, "tenant", str),
                started_at=float(_get(doc, "started_at", (int, float))),
                ended_at=_opt_float(doc, "ended_at"),
                transcript=_objects(doc, "transcript"),
                turns=turns,
                dtmf=_get(doc, "dtmf", str),
                tool_calls=_objects(doc, "tool_calls"),
                outcome=_get(doc, "outcome", str),
                transfer=None if doc.get("transfer") is None else _get(doc, "transfer", dict),
                extra=_get(doc, "extra", dict),
                revision=_get(doc, "revision", int),
            )
        except (TypeError, OverflowError) as exc:  # a malformed turn; an int too big for float
            raise RecordFormatError(f"record is malformed: {exc}") from exc


def _turn_dict(t: TurnTiming) -> dict[str, Any]:
    return {
        "turn": t.turn,
        "end_of_speech": t.end_of_speech,
        "asr_final": t.asr_final,
        "first_brain_output": t.first_brain_output,
        "first_tts_audio": t.first_tts_audio,
        "first_outbound_packet": t.first_outbound_packet,
    }


def _get(doc: dict[str, Any], name: str, kind: type | tuple[type, ...]) -> Any:
    value = doc.get(name)
    if not isinstance(value, kind) or isinstance(value, bool):
        raise RecordFormatError(f"record field {name!r} is missing or of the wrong type")
    return value


def _objects(doc: dict[str, Any], name: str) -> list[dict[str, Any]]:
    items: list[Any] = _get(doc, name, list)
    if not all(isinstance(item, dict) for item in items):
        raise RecordFormatError(f"record field {name!r} holds an entry that is not an object")
    return items


def _opt_float(doc: dict[str, Any], name: str) -> float | None:
    return None if doc.get(name) is None else float(_get(doc, name, (int, float)))


def _check_turn(t: TurnTiming) -> None:
    if not isinstance(t.turn, int) or isinstance(t.turn, bool):
        raise RecordFormatError("record turn number is not an integer")
    for name in ("end_of_speech", "asr_final", "first_brain_output", "first_tts_audio",
                 "first_outbound_packet"):
        value = getattr(t, name)
        if value is not None and (not isinstance(value, (int, float)) or isinstance(value, bool)):
            raise RecordFormatError(f"record turn field {name!r} is not a number")


class RecordBackend(Protocol):
    """A database of call records. Every method may raise :class:`RecordStoreError`."""

    async def start(self) -> None:
        """Connect and create the schema. ``write_many`` also does this lazily, so a backend
        that is down at start-up can still be used once it comes back."""
        ...

    async def write_many(self, records: list[CallRecord]) -> None:
        """Upsert ``records`` by ``call_id`` in one transaction; a stored record of a higher
        revision is kept. Either every record is stored or none is."""
        ...

    async def get(self, call_id: str) -> CallRecord | None:
        """The stored record of ``call_id``, or None."""
        ...

    async def count(self) -> int:
        """How many records are stored."""
        ...

    async def list_recent(self, limit: int) -> list[CallRecord]:
        """Up to ``limit`` records, the most recently started first."""
        ...

    async def aclose(self) -> None:
        """Release connections and threads."""
        ...


def newest_per_call(records: list[CallRecord]) -> list[CallRecord]:
    """One record per call_id, the highest revision (the later one on a tie).

    Backends call this before a multi-row upsert: PostgreSQL refuses an ``ON CONFLICT``
    statement that touches one row twice, and it keeps the result independent of order.
    """
    newest: dict[str, CallRecord] = {}
    for r in records:
        kept = newest.get(r.call_id)
        if kept is None or r.revision >= kept.revision:
            newest[r.call_id] = r
    return list(newest.values())

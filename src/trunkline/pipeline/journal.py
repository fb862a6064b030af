"""What a call keeps about itself: transcript, brain events, turn timings; as Session and record.

The brain's events are the source of truth for what was said and done (they are
already masked: a PIN never reaches them in clear), so the transcript, the DTMF
field, the tool calls and the outcome of the :class:`CallRecord` are all read from
them. The pipeline adds what only it knows: per-turn timings, how each turn ended
(silence, early, DTMF...), and what went wrong with providers and stores.

The session checkpoint carries the brain's snapshot: the typed fields of ``Session``
(flow state, slots, pending tool) and, when ``Session`` has a ``brain`` field, the whole
snapshot (see :func:`trunkline.pipeline.checkpoint.snapshot_from_session`).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterable, Mapping
from typing import Any

from trunkline.agent.brain import BrainEvent, EventKind
from trunkline.runtime.stores.records import CallRecord, TurnTiming
from trunkline.runtime.stores.session import Session

_SESSION_FIELDS = frozenset(f.name for f in dataclasses.fields(Session))
#: Whether this Session can carry the whole brain snapshot (see the module docstring).
SESSION_HAS_BRAIN = "brain" in _SESSION_FIELDS


class CallJournal:
    """The running account of one call.

    Args:
        call_id, agent, tenant: identify the call.
        brain_t0: the brain's clock at the start of the call (event times are relative).
        transcript: the transcript so far, when the call was restored from a session.
    """

    def __init__(
        self,
        *,
        call_id: str,
        agent: str,
        tenant: str = "default",
        brain_t0: float = 0.0,
        transcript: Iterable[dict[str, Any]] = (),
    ) -> None:
        self.call_id = call_id
        self.agent = agent
        self.tenant = tenant
        self.started_at = time.time()
        self.brain_t0 = brain_t0
        self.transcript: list[dict[str, Any]] = list(transcript)
        self.events: list[dict[str, Any]] = []
        self.tool_calls: list[dict[str, Any]] = []
        self.dtmf: list[str] = []
        self.turns: list[TurnTiming] = []
        self.turn_details: list[dict[str, Any]] = []
        self.outcome = ""
        self.transfer: dict[str, Any] | None = None
        self.counters: dict[str, int] = {}

    def count(self, name: str, n: int = 1) -> None:
        self.counters[name] = self.counters.get(name, 0) + n

    def add_events(self, events: Iterable[BrainEvent]) -> None:
        """Take the brain's drained events into the transcript and record fields."""
        for event in events:
            at = round(event.at - self.brain_t0, 3)
            doc = event.as_dict()
            doc["at"] = at
            self.events.append(doc)
            data = event.data
            kind = event.kind
            if kind is EventKind.AGENT:
                self.transcript.append({"role": "agent", "text": data.get("text", ""), "at": at})
            elif kind is EventKind.CALLER:
                entry = {"role": "caller", "text": data.get("text", ""), "at": at}
                if data.get("intent"):
                    entry["intent"] = data["intent"]
                self.transcript.append(entry)
            elif kind is EventKind.INTERRUPTED:
                self.transcript.append(
                    {"role": "agent", "text": "", "interrupted": True, "at": at,
                     "played_text": data.get("played_text", "")}
                )  # fmt: skip
            elif kind is EventKind.DTMF:
                self.dtmf.append(str(data.get("digits", "")))
            elif kind is EventKind.TOOL:
                self.tool_calls.append({"at": at, "state": event.state, **data})
            elif kind is EventKind.OUTCOME:
                self.outcome = str(data.get("outcome", ""))

    def add_turn(self, timing: TurnTiming, **detail: Any) -> None:
        self.turns.append(timing)
        self.turn_details.append({"turn": timing.turn, **detail})

    def session(self, snapshot: Mapping[str, Any], version: int) -> Session:
        """The checkpoint of the call now, at ``version``."""
        pending = snapshot.get("pending_tool")
        fields: dict[str, Any] = {
            "call_id": self.call_id,
            "agent": self.agent,
            "tenant": self.tenant,
            "flow_state": snapshot.get("state"),
            "slots": dict(snapshot.get("slots", {})),
            "transcript": list(self.transcript),
            "pending_tool": {"tool": pending} if pending else None,
            "version": version,
            "updated_at": time.time(),
        }
        if SESSION_HAS_BRAIN:
            fields["brain"] = dict(snapshot)
        return Session(**fields)

    def record(self, extra: Mapping[str, Any] | None = None) -> CallRecord:
        """The call record, as of now (``ended_at`` is now)."""
        return CallRecord(
            call_id=self.call_id,
            agent=self.agent,
            tenant=self.tenant,
            started_at=self.started_at,
            ended_at=time.time(),
            transcript=list(self.transcript),
            turns=list(self.turns),
            dtmf=" ".join(d for d in self.dtmf if d),
            tool_calls=list(self.tool_calls),
            outcome=self.outcome,
            transfer=self.transfer,
            extra={
                "turn_details": list(self.turn_details),
                "events": list(self.events),
                "counters": dict(self.counters),
                **(extra or {}),
            },
        )

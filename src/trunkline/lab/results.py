"""What a pretest run measured: one ``CallResult`` per synthetic call, one ``RunResult`` per run.

The caller engine fills these in; the reports (JSON, JUnit, HTML, the verdict, A/B) only
read them. Every time is taken at the caller, on one monotonic clock, and stored in
milliseconds relative to the call's own start (``offset_s`` places the call in the run).
``None`` means "not measured" (no reply, no RTP), never zero.

The JSON form is ``as_dict()`` / ``from_dict()``; its ``schema`` number changes when a
field's meaning does, so an old report is refused rather than misread.
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal

#: Bumped when a field changes meaning (not when one is added with a default).
SCHEMA_VERSION = 1

Transport = Literal["sip", "ws"]

#: Failure categories a call can end in; ``None`` on a call that completed. A setup
#: failure by SIP status is ``setup_<code>`` (e.g. ``setup_486``), not listed here.
FAILURE_CATEGORIES = (
    "setup_timeout",  # no final answer to INVITE / no WebSocket in time
    "setup_refused",  # connection refused, WebSocket handshake rejected
    "no_media",  # answered, but no audio ever arrived
    "garbage_media",  # audio arrived but none of it decodes (bad RTP, bad WS messages)
    "stream_closed",  # the target closed the WebSocket or hung up before the script ended
    "no_reply",  # a turn waited for the agent and it never spoke
    "max_duration",  # the call was still going at the scenario's time limit
    "expectation",  # the call ran, an expectation failed
    "lab_error",  # our own fault (a bug): counted apart, never blamed on the target
    "lab_worker_lost",  # the lab process running the call died or went silent (fan-out)
)
#: The failure of a call whose lab process died or went silent (fan-out).
WORKER_LOST = "lab_worker_lost"
#: Failures that are the lab's, not the target's: counted apart, and a run with any of
#: them lost is not a verdict on the target.
LAB_FAILURES = frozenset({"lab_error", WORKER_LOST})


@dataclass(slots=True)
class TurnResult:
    """One scripted caller turn and what the caller heard after it.

    Attributes:
        index: position in the scenario's turns.
        kind: ``say``, ``dtmf``, ``silence``, ``barge_in``, ``hangup`` or ``listen``.
        text: what the caller said (``say``/``barge_in``) or pressed (``dtmf``).
        caller_end_ms: the caller's last speech sample (or last digit) was sent.
        agent_start_ms: the first agent speech sample heard after ``caller_end_ms``.
        latency_ms: ``agent_start_ms - caller_end_ms`` (turn latency), or None.
        barge_reaction_ms: for ``barge_in``: caller speech onset -> agent audio stops.
        heard: the agent's words for this turn, from its transcript or keyword spotting.
        expect_ok: None when the turn expected nothing, or it could not be checked;
            else whether it matched.
        expect_detail: why it did not match, or why it was not checked.
        checked_by: ``transcript`` or ``kws`` (keyword spotting on the received audio)
            when the expectation was checked; empty when it was not.
    """

    index: int
    kind: str
    text: str = ""
    caller_end_ms: float | None = None
    agent_start_ms: float | None = None
    latency_ms: float | None = None
    barge_reaction_ms: float | None = None
    heard: str = ""
    expect_ok: bool | None = None
    expect_detail: str = ""
    checked_by: str = ""


@dataclass(slots=True)
class ExpectationResult:
    """A scenario-level expectation (transfer, hangup side, check URL, reply text)."""

    name: str
    ok: bool
    detail: str = ""


@dataclass(slots=True)
class MediaQuality:
    """RTP (or WS media) quality as the caller received it, and the E-model's view of it."""

    packets_expected: int = 0
    packets_received: int = 0
    loss_pct: float = 0.0
    jitter_ms: float = 0.0  # RFC 3550 interarrival jitter
    r_factor: float | None = None
    mos: float | None = None


@dataclass(slots=True)
class CallResult:
    """One synthetic call, measured from the caller's ear.

    Attributes:
        index: the call's number in the run (0-based).
        scenario: the scenario's name.
        target: what was called (``sip:HOST:PORT`` or ``ws://...``).
        transport: ``sip`` or ``ws``.
        seed: everything random in this call derives from it (replay with ``--replay``).
        offset_s: when the call started, seconds since the run started.
        concurrency: calls in progress (including this one) when it started.
        setup_ms: INVITE -> 200 OK, or WebSocket connect -> stream started.
        setup_status: the final SIP status (200 on success), or None over WS / on timeout.
        failure: None, a FAILURE_CATEGORIES entry or ``setup_<code>``.
        failure_detail: a human sentence about the failure.
        duration_ms: call start -> call end.
        time_to_first_word_ms: answer -> first agent speech sample.
        turns: every scripted turn.
        talk_over_ms: total time both sides spoke at once.
        dead_air_ms: every gap over 2 s in which the caller waited on the agent.
        caller_pauses_ms: every gap over 2 s in which nobody spoke and the caller was
            not waiting on the agent (a silence turn, the time after it gave up).
        transfer_requested: the agent asked to transfer (REFER, or the WS transfer event).
        transfer_target: where to.
        hangup_by: ``caller``, ``agent`` or None (the call failed before either).
        media: RTP loss, jitter, R-factor, MOS.
        wer: word error rate of the agent's recognizer against what the caller said, where
            the agent exposes a transcript; None where it does not.
        wer_words: reference words the WER was computed over.
        expectations: scenario-level expectations.
        task_success: every expectation and every turn expectation held.
        agent_call_id: the call's id at the agent (for fetching its transcript).
        replay: a command that replays this call exactly.
    """

    index: int
    scenario: str
    target: str
    transport: Transport
    seed: int
    offset_s: float = 0.0
    concurrency: int = 0
    setup_ms: float | None = None
    setup_status: int | None = None
    failure: str | None = None
    failure_detail: str = ""
    duration_ms: float | None = None
    time_to_first_word_ms: float | None = None
    turns: list[TurnResult] = field(default_factory=list)
    talk_over_ms: float = 0.0
    dead_air_ms: list[float] = field(default_factory=list)
    caller_pauses_ms: list[float] = field(default_factory=list)
    transfer_requested: bool = False
    transfer_target: str = ""
    hangup_by: Literal["caller", "agent"] | None = None
    media: MediaQuality = field(default_factory=MediaQuality)
    wer: float | None = None
    wer_words: int = 0
    expectations: list[ExpectationResult] = field(default_factory=list)
    task_success: bool = False
    agent_call_id: str = ""
    replay: str = ""

    @property
    def setup_failed(self) -> bool:
        """The call never got to media: refused, timed out or rejected."""
        return self.failure is not None and self.failure.startswith("setup")

    @property
    def turn_latencies_ms(self) -> list[float]:
        return [t.latency_ms for t in self.turns if t.latency_ms is not None]

    @property
    def barge_reactions_ms(self) -> list[float]:
        return [t.barge_reaction_ms for t in self.turns if t.barge_reaction_ms is not None]

    @property
    def lab_fault(self) -> bool:
        """The call failed for the lab's reasons (:data:`LAB_FAILURES`), not the target's."""
        return self.failure in LAB_FAILURES

    def as_dict(self) -> dict[str, Any]:
        """The call as plain JSON types (the same keys and values as ``dataclasses.asdict``)."""
        out = _flat(self, _CALL_FIELDS)
        out["turns"] = [_flat(t, _TURN_FIELDS) for t in self.turns]
        out["dead_air_ms"] = list(self.dead_air_ms)
        out["media"] = _flat(self.media, _MEDIA_FIELDS)
        out["expectations"] = [_flat(e, _EXPECTATION_FIELDS) for e in self.expectations]
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CallResult:
        values = dict(data)
        values["turns"] = [TurnResult(**t) for t in data.get("turns", [])]
        values["expectations"] = [ExpectationResult(**e) for e in data.get("expectations", [])]
        values["media"] = MediaQuality(**data.get("media", {}))
        values["dead_air_ms"] = list(data.get("dead_air_ms", []))
        return cls(**values)


@dataclass(slots=True)
class LabHealth:
    """The lab's own load: when it is overloaded its figures are not trusted.

    Attributes:
        send_lateness_p99_ms: how late the lab put its own packets on the wire (p99).
        cpu_pct: the lab processes' CPU over the run (100 = one core).
        overloaded: lateness or CPU passed the point where measurements stay honest.
        note: a sentence for the report when ``overloaded``.
        worker: which lab process this is, in a fanned-out run (empty for the whole lab).
    """

    send_lateness_p99_ms: float = 0.0
    cpu_pct: float = 0.0
    overloaded: bool = False
    note: str = ""
    worker: str = ""

    def as_dict(self) -> dict[str, Any]:
        return _flat(self, _LAB_FIELDS)


@dataclass(slots=True)
class TimelinePoint:
    """The run's state once a second: for plots of latency against concurrency over time."""

    t_s: float
    active_calls: int
    started: int
    failed: int
    turn_latency_p50_ms: float | None = None
    turn_latency_p95_ms: float | None = None


@dataclass(slots=True)
class RunResult:
    """A whole pretest run: what was called, how, and every call."""

    target: str
    profile: str
    scenarios: list[str]
    started_at: str  # ISO 8601, wall clock, for the reader only
    duration_s: float
    seed: int
    calls: list[CallResult] = field(default_factory=list)
    timeline: list[TimelinePoint] = field(default_factory=list)
    lab: LabHealth = field(default_factory=LabHealth)
    label: str = ""  # the A/B side's name, or empty
    breakpoint: dict[str, Any] | None = None  # the knee search, for a breakpoint profile
    schema: int = SCHEMA_VERSION
    # Each lab process's own health in a fanned-out run (``lab`` is their merge).
    lab_workers: list[LabHealth] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """The run as plain JSON types (the same document as ``dataclasses.asdict``,
        which took 10 s and more for 20,000 calls: it deep-copies every value through
        a generic walk; this names each field once)."""
        out = _flat(self, _RUN_FIELDS)
        out["scenarios"] = list(self.scenarios)
        out["calls"] = [c.as_dict() for c in self.calls]
        out["timeline"] = [_flat(p, _TIMELINE_FIELDS) for p in self.timeline]
        out["lab"] = self.lab.as_dict()
        out["lab_workers"] = [w.as_dict() for w in self.lab_workers]
        out["breakpoint"] = copy.deepcopy(self.breakpoint)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunResult:
        if data.get("schema") != SCHEMA_VERSION:
            raise ValueError(
                f"report schema {data.get('schema')!r} is not {SCHEMA_VERSION}; "
                "re-run the pretest with this version"
            )
        values = dict(data)
        values["calls"] = [CallResult.from_dict(c) for c in data.get("calls", [])]
        values["timeline"] = [TimelinePoint(**p) for p in data.get("timeline", [])]
        values["lab"] = LabHealth(**data.get("lab", {}))
        values["lab_workers"] = [LabHealth(**w) for w in data.get("lab_workers", [])]
        return cls(**values)


def _names(cls: type) -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(cls))


def _flat(obj: object, names: tuple[str, ...]) -> dict[str, Any]:
    """A dataclass of scalars as a dict (its fields hold no lists or dataclasses)."""
    return {name: getattr(obj, name) for name in names}


_TURN_FIELDS = _names(TurnResult)
_EXPECTATION_FIELDS = _names(ExpectationResult)
_MEDIA_FIELDS = _names(MediaQuality)
_TIMELINE_FIELDS = _names(TimelinePoint)
_LAB_FIELDS = _names(LabHealth)
# Every field, in order: ``as_dict`` then replaces the nested ones in place (a dict keeps
# a key's position when its value is replaced), so the keys come out in field order.
_CALL_FIELDS = _names(CallResult)
_RUN_FIELDS = _names(RunResult)

"""What a pretest run measured: one ``CallResult`` per synthetic call, one ``RunResult`` per run.

The caller engine fills these in; the reports (JSON, JUnit, HTML, the verdict, A/B) only
read them. Every time is taken at the caller, on one monotonic clock, and stored in
milliseconds relative to the call's own start (``offset_s`` places the call in the run).
``None`` means "not measured" (no reply, no RTP), never zero.

The JSON form is ``as_dict()`` / ``from_dict()``; its ``schema`` number changes when a
field's meaning does, so an old report is refused rather than misread.
"""

from __future__ import annotations

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
)


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
        expect_ok: None when the turn expected nothing; else whether it matched.
        expect_detail: why it did not match.
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

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CallResult:
        values = dict(data)
        values["turns"] = [TurnResult(**t) for t in data.get("turns", [])]
        values["expectations"] = [ExpectationResult(**e) for e in data.get("expectations", [])]
        values["media"] = MediaQuality(**data.get("media", {}))
        return cls(**values)


@dataclass(slots=True)
class LabHealth:
    """The lab's own load: when it is overloaded its figures are not trusted.

    Attributes:
        send_lateness_p99_ms: how late the lab put its own packets on the wire (p99).
        cpu_pct: the lab processes' CPU over the run (100 = one core).
        overloaded: lateness or CPU passed the point where measurements stay honest.
        note: a sentence for the report when ``overloaded``.
    """

    send_lateness_p99_ms: float = 0.0
    cpu_pct: float = 0.0
    overloaded: bool = False
    note: str = ""


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

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

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
        return cls(**values)

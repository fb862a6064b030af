"""A pretest scenario: who calls, what they say and press, and what must happen.

A scenario is a script for one kind of synthetic caller, written in YAML and validated
into the frozen dataclasses below (:func:`trunkline.lab.scenario_build.load_scenarios`).
Where it leaves room (variants of a line, a range of pauses), a seed decides:
:func:`trunkline.lab.scenario_plan.plan_call` turns a scenario and a seed into the
concrete :class:`~trunkline.lab.script.CallScript` the caller engine executes, so a run
is varied and a replay exact.

Turns run in order:

- ``say`` and ``dtmf``: by default wait until the agent has finished speaking, pause the
  persona's gap, then speak or press keys (``wait_for_agent: false``: at once);
- ``barge_in``: speak ``after_ms`` after the agent *starts* speaking;
- ``silence``: once the agent has finished, say nothing for a while (no-input tests);
- ``wait_for_agent``: only listen, until the agent has spoken and finished;
- ``hangup``: the caller hangs up (after the agent's reply, unless told not to wait).

A turn's ``expect`` is checked against what the agent says in reply (case ignored):
every ``contains`` phrase must be in it, and ``matches`` (a regular expression) must
match it. Scenario-level expectations are checked when the call ends.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from trunkline.agent.errors import SpecIssue
from trunkline.lab.impairment_spec import ImpairmentSpec

__all__ = [
    "BargeInTurn",
    "DtmfTurn",
    "Expectations",
    "HangupTurn",
    "ImpairmentSpec",
    "ListenTurn",
    "PersonaSpec",
    "ReplyExpectation",
    "SayTurn",
    "Scenario",
    "ScenarioError",
    "SilenceTurn",
    "TransportHints",
    "Turn",
    "UrlCheck",
]

Transport = Literal["sip", "ws"]
HangupSide = Literal["agent", "caller"]


class ScenarioError(Exception):
    """Scenario files do not load. Lists every problem of every file, each as
    ``file:line: field.path: message``."""

    def __init__(self, problems: Sequence[tuple[str, SpecIssue]]) -> None:
        self.problems: tuple[tuple[str, SpecIssue], ...] = tuple(
            sorted(problems, key=lambda p: (p[0], p[1].line or 0, p[1].path))
        )
        lines = [issue.format(source) for source, issue in self.problems]
        count = len(lines)
        head = f"{count} problem{'s' if count != 1 else ''} in scenarios"
        super().__init__("\n".join([head, *lines]))


@dataclass(frozen=True, slots=True)
class PersonaSpec:
    """How the synthetic caller sounds and paces itself.

    ``voice`` is an espeak-ng voice name (``en-us``, ``en-gb``, ``en+f3``); whether it is
    installed is found out where espeak-ng runs, not here. ``gap_ms`` is the range of
    the pause between the end of the agent's speech and the caller's next words; the
    call's seed draws one per turn.
    """

    voice: str = "en-us"
    rate_wpm: int = 160  # a calm speaker; espeak-ng's own default (175) sounds hurried
    pitch: int = 50  # espeak-ng's default
    gap_ms: tuple[int, int] = (400, 400)  # a typical conversational turn gap


@dataclass(frozen=True, slots=True)
class TransportHints:
    """Optional wishes about the call leg. ``kind``: this scenario is meant for SIP only
    or WebSocket media only; ``caller``: the calling number or user (SIP From, Twilio
    ``from``); ``params``: extra parameters (SIP X- headers, Twilio ``customParameters``)."""

    kind: Transport | None = None
    caller: str | None = None
    params: Mapping[str, str] | None = None


@dataclass(frozen=True, slots=True)
class ReplyExpectation:
    """What the agent's reply to a turn must hold (case ignored): every ``contains``
    phrase, and a match of ``matches`` (``re.search``)."""

    contains: tuple[str, ...] = ()
    matches: str | None = None


@dataclass(frozen=True, slots=True)
class SayTurn:
    """Speak one of ``variants`` (the seed picks)."""

    kind: ClassVar[str] = "say"
    variants: tuple[str, ...]
    wait_for_agent: bool
    expect: ReplyExpectation | None
    line: int | None


@dataclass(frozen=True, slots=True)
class DtmfTurn:
    """Press ``digits`` (0-9, *, #, A-D), ``inter_digit_ms`` apart."""

    kind: ClassVar[str] = "dtmf"
    digits: str
    inter_digit_ms: int
    wait_for_agent: bool
    expect: ReplyExpectation | None
    line: int | None


@dataclass(frozen=True, slots=True)
class SilenceTurn:
    """Say nothing for ``seconds`` (a caller who does not answer)."""

    kind: ClassVar[str] = "silence"
    seconds: float
    expect: ReplyExpectation | None
    line: int | None


@dataclass(frozen=True, slots=True)
class BargeInTurn:
    """Wait for the agent to *start* speaking, then speak ``after_ms`` later."""

    kind: ClassVar[str] = "barge_in"
    after_ms: int
    variants: tuple[str, ...]
    expect: ReplyExpectation | None
    line: int | None


@dataclass(frozen=True, slots=True)
class ListenTurn:
    """Only listen: wait for the agent to speak and finish (at most ``timeout_s``)."""

    kind: ClassVar[str] = "listen"
    timeout_s: float
    expect: ReplyExpectation | None
    line: int | None


@dataclass(frozen=True, slots=True)
class HangupTurn:
    """The caller hangs up (first letting the agent finish, when ``wait_for_agent``)."""

    kind: ClassVar[str] = "hangup"
    wait_for_agent: bool
    line: int | None
    expect: ClassVar[None] = None


Turn = SayTurn | DtmfTurn | SilenceTurn | BargeInTurn | ListenTurn | HangupTurn


@dataclass(frozen=True, slots=True)
class UrlCheck:
    """After the call: ``GET url`` must answer ``status`` and, when ``path`` is given, a
    JSON body with a value at ``path`` (dotted: ``calls.0.outcome``) equal to ``value``
    (any value, when ``value`` is None).

    ``url`` is a template: ``{call_id}``, ``{scenario}``, ``{seed}`` and ``{index}`` are
    filled by the lab for each call, the scenario's ``vars`` as written (a base URL).
    """

    url: str
    status: int
    path: str
    value: Any
    line: int | None


@dataclass(frozen=True, slots=True)
class Expectations:
    """Checked when the call ends; None: not checked."""

    transfer: bool | None = None
    transfer_target: str | None = None  # when given, part of the transfer target
    hangup_by: HangupSide | None = None
    max_duration_s: float | None = None
    checks: tuple[UrlCheck, ...] = ()


@dataclass(frozen=True, slots=True)
class Scenario:
    """One validated scenario.

    ``impairment_ref`` names a preset; ``impairment`` is the inline spec, or the preset
    once resolved (:func:`~trunkline.lab.scenario_build.load_scenarios` resolves names
    when given the presets). ``reply_timeout_s``: how long the caller waits for the
    agent to say anything (None: the engine's default). ``variables`` fill
    ``check_url`` templates; a run may override them.
    """

    name: str
    description: str
    weight: float
    transport: TransportHints
    persona: PersonaSpec
    turns: tuple[Turn, ...]
    expect: Expectations
    impairment: ImpairmentSpec | None
    impairment_ref: str | None
    reply_timeout_s: float | None
    variables: Mapping[str, str]
    source: str
    line: int | None

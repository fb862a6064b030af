"""A call's concrete script: what one synthetic caller does, step by step, with every draw made.

A scenario (``lab/scenario.py``) says what callers of a kind may do: variants, gap ranges,
impairments. Planning it with a seed gives a :class:`CallScript`, in which nothing is left
to chance: the caller engine (``lab/caller.py``) only executes it. Replaying a call means
planning again with the same seed.
"""

from __future__ import annotations

from dataclasses import dataclass

from trunkline.lab.impairment_spec import ImpairmentSpec
from trunkline.lab.voices import Persona


@dataclass(frozen=True, slots=True)
class Expect:
    """What the agent's reply to a turn should contain (all of) or match (a regex)."""

    contains: tuple[str, ...] = ()
    matches: str | None = None


@dataclass(frozen=True, slots=True)
class Say:
    """Speak ``text``; by default after the agent has finished talking and ``gap_s`` passed."""

    text: str
    gap_s: float = 0.4
    wait_for_agent: bool = True
    expect: Expect | None = None


@dataclass(frozen=True, slots=True)
class Press:
    """Press DTMF ``digits``, ``gap_s`` after the agent finished, ``inter_digit_s`` apart."""

    digits: str
    gap_s: float = 0.4
    inter_digit_s: float = 0.25
    wait_for_agent: bool = True
    expect: Expect | None = None


@dataclass(frozen=True, slots=True)
class Silence:
    """Say nothing for ``seconds`` (a no-input test)."""

    seconds: float
    expect: Expect | None = None


@dataclass(frozen=True, slots=True)
class BargeIn:
    """Speak ``text`` ``after_s`` after the agent *starts* speaking."""

    text: str
    after_s: float = 0.5
    expect: Expect | None = None


@dataclass(frozen=True, slots=True)
class Listen:
    """Wait for the agent to speak and finish (at most ``timeout_s``)."""

    timeout_s: float = 10.0
    expect: Expect | None = None


@dataclass(frozen=True, slots=True)
class HangUp:
    """The caller hangs up (after the agent finished, unless ``wait_for_agent`` is off)."""

    wait_for_agent: bool = True


Step = Say | Press | Silence | BargeIn | Listen | HangUp


@dataclass(frozen=True, slots=True)
class CheckUrl:
    """A URL (with ``{call_id}``) fetched after the call; its JSON must hold ``path == value``."""

    url: str
    path: str = ""
    value: object = None
    status: int = 200


@dataclass(frozen=True, slots=True)
class CallExpectations:
    """What must hold for the call as a whole."""

    transfer: bool | None = None
    transfer_target: str | None = None
    hangup_by: str | None = None  # "agent" | "caller"
    max_duration_s: float | None = None
    checks: tuple[CheckUrl, ...] = ()


@dataclass(frozen=True, slots=True)
class CallScript:
    """One call, fully decided.

    Attributes:
        scenario: the scenario's name.
        seed: the seed it was planned with (stored in the result, for replay).
        persona: the caller's voice.
        steps: what the caller does, in order.
        expect: call-level expectations.
        impairment: what the caller's line does to its voice (None: a clean line).
        max_duration_s: a hard bound on the call, whatever the agent does.
        reply_timeout_s: how long the caller waits for the agent to say anything.
    """

    scenario: str
    seed: int
    persona: Persona = Persona()
    steps: tuple[Step, ...] = ()
    expect: CallExpectations = CallExpectations()
    impairment: ImpairmentSpec | None = None
    max_duration_s: float = 120.0
    reply_timeout_s: float = 8.0

    def lines(self) -> set[tuple[Persona, str]]:
        """Every (persona, text) this call will speak, for pre-rendering."""
        return {(self.persona, step.text) for step in self.steps if isinstance(step, Say | BargeIn)}

"""The agent spec as a validated, typed, immutable model.

Load it with :func:`trunkline.agent.spec_build.load_agent_spec` (or
:func:`trunkline.agent.load_agent_spec`); every object here is built only by that
validator, so code that holds an :class:`AgentSpec` may trust it: states named by a
``goto`` exist, templates refer to real slots and tool results, slot rules are coherent,
and every grammar word is in the recognizer's dictionary.

A spec's behaviour is a set of *steps* (say, tool, goto, transfer, hangup, if). Intents,
``on_enter``, ``on_filled``, tool failure branches and the no-input/no-match escalation
are all step lists, run by the flow engine (:mod:`trunkline.agent.flow`).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass

from trunkline.agent.template import Template, TemplatePath


class BrainKind(enum.StrEnum):
    """Which brain runs the agent."""

    FLOW = "flow"  # the flow engine: states, intents, slots
    LLM = "llm"  # an OpenAI-compatible chat model with tools


class SlotType(enum.StrEnum):
    """What a slot holds and how its value is heard."""

    DIGITS = "digits"  # a string of digits: "12345" (spoken "one two three four five")
    DATE = "date"  # an ISO date "2025-01-10" (spoken "friday", "tomorrow", "may third")
    YES_NO = "yes_no"  # True / False
    LIST = "list"  # one canonical value from a closed list, with synonyms


class DateFormat(enum.StrEnum):
    """Ways a caller may say a date (``formats:`` of a date slot)."""

    WEEKDAY = "weekday"  # "friday", "next friday": the next such day after today
    RELATIVE = "relative"  # "today", "tomorrow", "day after tomorrow"
    MONTH_DAY = "month_day"  # "january tenth", "may twenty first": next such date
    ISO = "iso"  # "2025-01-10": typed text or an external ASR; not in the spoken grammar


class InputMode(enum.StrEnum):
    """How a slot may be filled."""

    ANY = "any"
    SPEECH = "speech"
    DTMF = "dtmf"


@dataclass(frozen=True, slots=True)
class DigitsRule:
    min_length: int
    max_length: int


@dataclass(frozen=True, slots=True)
class DateRule:
    formats: tuple[DateFormat, ...]
    allow_past: bool


@dataclass(frozen=True, slots=True)
class YesNoRule:
    yes: tuple[str, ...]  # normalized phrases meaning yes
    no: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ListRule:
    values: Mapping[str, tuple[str, ...]]  # canonical value -> phrases (itself included)


SlotRule = DigitsRule | DateRule | YesNoRule | ListRule


@dataclass(frozen=True, slots=True)
class SlotSpec:
    """One piece of information a state collects."""

    name: str
    type: SlotType
    rule: SlotRule
    prompt: Template | None  # asked when this slot is the next one to fill
    reprompt: Template | None  # said when a heard value fails validation
    phrases: tuple[tuple[str, ...], ...]  # carrier phrases, words; "{value}" marks the slot
    input: InputMode
    sensitive: bool  # redacted in events (a PIN)
    line: int | None


@dataclass(frozen=True, slots=True)
class SayStep:
    text: Template
    line: int | None


@dataclass(frozen=True, slots=True)
class ToolStep:
    tool: str
    on_failure: tuple[Step, ...] | None  # None: say the tool's fallback, then goto start
    on_reject: tuple[Step, ...] | None  # 4xx answer; None: treated as a failure
    line: int | None


@dataclass(frozen=True, slots=True)
class GotoStep:
    state: str
    line: int | None


@dataclass(frozen=True, slots=True)
class TransferStep:
    target: Template
    summary: Template
    line: int | None


@dataclass(frozen=True, slots=True)
class HangupStep:
    reason: str
    line: int | None


@dataclass(frozen=True, slots=True)
class IfStep:
    path: TemplatePath  # e.g. ("slots", "confirm"); true when set and truthy
    equals: str | None  # when given: true when the value's text equals it
    then: tuple[Step, ...]
    otherwise: tuple[Step, ...]
    line: int | None


Step = SayStep | ToolStep | GotoStep | TransferStep | HangupStep | IfStep


@dataclass(frozen=True, slots=True)
class IntentSpec:
    """Something the caller may ask for, with example phrases that build the grammar."""

    name: str
    examples: tuple[tuple[str, ...], ...]  # normalized words of each example phrase
    dtmf: str | None  # a key sequence that selects it ("1")
    steps: tuple[Step, ...]
    line: int | None


@dataclass(frozen=True, slots=True)
class DtmfSpec:
    """How the pipeline should collect keypad digits in a state."""

    max_digits: int
    terminator: str | None  # "#" ends entry early; not part of the delivered digits
    timeout_ms: int  # inter-digit timeout: deliver what was typed after this pause


@dataclass(frozen=True, slots=True)
class StateSpec:
    """One state of the flow."""

    name: str
    prompt: Template | None
    reprompt: Template | None  # said after a no-input/no-match message; default: prompt
    intents: tuple[IntentSpec, ...]
    slots: tuple[SlotSpec, ...]
    dtmf: DtmfSpec | None
    on_enter: tuple[Step, ...]
    on_filled: tuple[Step, ...]
    silence_ms: int | None  # endpointing override
    no_input_ms: int | None  # no-input timeout override
    barge_in: bool
    line: int | None


@dataclass(frozen=True, slots=True)
class RepromptPolicy:
    """What happens on silence (no_input) or on unrecognized input (no_match)."""

    timeout_ms: int  # no_input only; 0 for no_match
    reprompts: int  # how many times to reprompt before escalating
    message: Template  # said before re-asking
    escalate: tuple[Step, ...]


@dataclass(frozen=True, slots=True)
class ToolSpec:
    """An HTTP integration the flow can call."""

    name: str
    method: str
    url: Template
    headers: Mapping[str, Template]
    body: Mapping[str, Template] | None  # JSON object of templated strings
    timeout_ms: int  # per attempt
    retries: int  # extra attempts after a retryable failure
    fallback: Template  # said when the tool fails
    result: Mapping[str, tuple[str, ...]]  # variable -> dotted path in the JSON answer
    line: int | None


@dataclass(frozen=True, slots=True)
class LlmSpec:
    """The chat model of a ``brain: llm`` agent. The connection fields (``base_url``,
    ``api_key_env``, the timeouts) are read by ``trunkline serve`` to build the model;
    empty or None means the provider's default."""

    model: str
    system_prompt: str
    tools: tuple[str, ...]
    temperature: float
    base_url: str = ""  # an OpenAI-compatible API root (.../v1); "" for OpenAI's
    api_key_env: str = ""  # the environment variable holding the key; "" for OPENAI_API_KEY
    first_token_timeout_ms: int | None = None
    idle_timeout_ms: int | None = None


@dataclass(frozen=True, slots=True, eq=False, weakref_slot=True)
class AgentSpec:
    """A whole agent. Compared by identity (it is loaded once and shared by calls)."""

    name: str
    language: str
    greeting: Template | None
    brain: BrainKind
    llm: LlmSpec | None
    silence_ms: int
    no_input: RepromptPolicy
    no_match: RepromptPolicy
    variables: Mapping[str, str]
    tools: Mapping[str, ToolSpec]
    global_intents: tuple[IntentSpec, ...]
    states: Mapping[str, StateSpec]
    start: str
    source: str

    def state(self, name: str) -> StateSpec:
        """The state called ``name`` (KeyError if there is none)."""
        return self.states[name]

    def slot(self, name: str) -> SlotSpec | None:
        """The first declared slot called ``name`` in any state."""
        for state in self.states.values():
            for slot in state.slots:
                if slot.name == name:
                    return slot
        return None

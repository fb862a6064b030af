"""The brain contract: what the pipeline feeds a brain and what it gets back.

The pipeline (VAD, endpointing, ASR, barge-in, TTS) owns time and audio; the brain owns
the conversation. The pipeline calls:

- ``start()`` once when the call is answered: greeting and first prompt;
- ``listen_spec()`` after each turn: which grammar to load into the recognizer, how long
  a silence ends the caller's turn, how long to wait before "no input", how to collect
  keypad digits;
- ``respond(event)`` (streaming) or ``on_input(event)`` (all at once) for each caller
  turn: a final transcript, typed digits, a no-input timeout, or a barge-in;
- ``snapshot()`` after every turn (the session store checkpoints it) and
  ``restore(spec, snapshot, context)`` + ``resume()`` in a new process after a crash;
- ``drain_events()`` to move what happened into the call record;
- optionally ``on_barge_in(played_text) -> bool`` (:class:`BargeInAware`), in the frame
  where the caller cut the agent off while a turn is still running: True asks the
  pipeline to cancel that turn (the LLM brain, whose answer is still streaming), so
  nothing more of it is generated or spoken. A brain without it keeps its turn running
  (the flow brain: what it says after a slow tool is new, and is spoken).

Both brains (the flow engine and, later, the LLM) implement :class:`Brain`. Neither
raises for anything a caller or an integration does: a failed tool is a fallback
prompt, not an exception.
"""

from __future__ import annotations

import datetime as dt
import enum
import logging
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from trunkline.agent.spec import AgentSpec, DtmfSpec

if TYPE_CHECKING:
    from trunkline.agent.grammar import GrammarMatcher
    from trunkline.agent.tools import ToolCaller
    from trunkline.providers.llm import LLM

# --- input ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Speech:
    """What the recognizer heard. ``final`` False: a partial result (see FlowBrain)."""

    text: str
    confidence: float = 1.0
    final: bool = True


@dataclass(frozen=True, slots=True)
class Digits:
    """Keypad entry collected per ``ListenSpec.dtmf``; a trailing terminator is ignored."""

    digits: str


@dataclass(frozen=True, slots=True)
class NoInput:
    """The caller said nothing for ``ListenSpec.no_input_timeout_ms``."""


@dataclass(frozen=True, slots=True)
class Interrupted:
    """The caller barged in; ``played_text`` is how much of the prompt they heard."""

    played_text: str


UserInput = Speech | Digits | NoInput | Interrupted

# --- output -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Say:
    """Speak ``text``. ``cacheable``: a fixed prompt whose audio the TTS may cache."""

    text: str
    interruptible: bool = True
    cacheable: bool = False


@dataclass(frozen=True, slots=True)
class Transfer:
    """Hand the call to ``target`` (a SIP URI) with a summary for the human."""

    target: str
    summary: str


@dataclass(frozen=True, slots=True)
class Hangup:
    """End the call after what was said before it has played."""

    reason: str


Action = Say | Transfer | Hangup


@dataclass(frozen=True, slots=True)
class ListenSpec:
    """What the pipeline should listen for in the current state.

    ``grammar`` is JSGF for the embedded recognizer (None: use the general model) and
    ``grammar_id`` a stable name to cache its search under. ``matcher`` says when a
    partial transcript already completes the grammar (early endpointing).
    """

    grammar: str | None
    grammar_id: str | None
    matcher: GrammarMatcher | None
    endpoint_silence_ms: int
    no_input_timeout_ms: int
    dtmf: DtmfSpec | None
    barge_in: bool = True


# --- what happened ----------------------------------------------------------------------


class EventKind(enum.StrEnum):
    """Kinds of :class:`BrainEvent`, for the call record."""

    STATE = "state"  # entered a state: {"state"}
    AGENT = "agent"  # said: {"text"}
    CALLER = "caller"  # heard: {"text", "confidence", "intent", "slots"}
    DTMF = "dtmf"  # keys: {"digits"} (masked for sensitive slots)
    INTERRUPTED = "interrupted"  # barge-in: {"played_text"}
    NO_INPUT = "no_input"  # {"count"}
    NO_MATCH = "no_match"  # {"count", "text"}
    TOOL = "tool"  # {"tool", "method", "url", "outcome", "status", "attempts", "ms", "error"}
    SLOT = "slot"  # {"slot", "value", "valid", "reason"}
    OUTCOME = "outcome"  # the end: {"outcome": "transfer"|"hangup", "target"|"reason"}


@dataclass(frozen=True, slots=True)
class BrainEvent:
    """One thing the brain did or heard; ``at`` is the brain's clock (monotonic s)."""

    kind: EventKind
    at: float
    state: str
    data: Mapping[str, Any]

    def as_dict(self) -> dict[str, Any]:
        """JSON-able form for the record store."""
        return {"kind": self.kind.value, "at": self.at, "state": self.state, **self.data}


# --- dependencies -----------------------------------------------------------------------


@dataclass(slots=True)
class BrainContext:
    """What a brain needs from the call and the process, injected for tests.

    ``variables`` override the spec's ``vars`` (the runtime sets ``crm`` to the demo
    CRM's address); ``call`` fills ``{{call.*}}`` (id, caller, callee); ``llm`` is the
    chat model of an ``llm`` agent (the flow brain has none).
    """

    tools: ToolCaller | None = None
    variables: Mapping[str, str] = field(default_factory=dict)
    call: Mapping[str, str] = field(default_factory=dict)
    clock: Callable[[], float] = time.monotonic
    today: Callable[[], dt.date] = dt.date.today
    log: logging.Logger | logging.LoggerAdapter[logging.Logger] = field(
        default_factory=lambda: logging.getLogger("trunkline.agent")
    )
    llm: LLM | None = None


class BargeInAware(Protocol):
    """A brain that wants a say when a barge-in hits a running turn (see the module docstring)."""

    def on_barge_in(self, played_text: str) -> bool:
        """The caller barged in with ``played_text`` heard; True: cancel the running turn."""
        ...


class Brain(Protocol):
    """The conversation half of a call. See the module docstring for the call order."""

    def start(self) -> list[Action]:
        """Greeting and the first state's prompt. Call once, before any input."""
        ...

    async def on_input(self, event: UserInput) -> list[Action]:
        """One caller turn; all its actions at once. Never raises for caller/tool faults."""
        ...

    def respond(self, event: UserInput) -> AsyncIterator[Action]:
        """One caller turn, streamed: a ``Say`` before a slow tool call arrives early."""
        ...

    def listen_spec(self) -> ListenSpec:
        """What to listen for now (changes after every turn)."""
        ...

    def snapshot(self) -> dict[str, Any]:
        """JSON-able state: the state name, slots, counters, tool results, pending tool."""
        ...

    def resume(self) -> list[Action]:
        """After ``restore``: what to say to pick the conversation up again."""
        ...

    def drain_events(self) -> list[BrainEvent]:
        """Events since the last drain, oldest first."""
        ...

    @property
    def ended(self) -> bool:
        """True once a Transfer or Hangup was returned; further input is ignored."""
        ...

    @classmethod
    def restore(cls, spec: AgentSpec, snapshot: Mapping[str, Any], context: BrainContext) -> Brain:
        """A brain that continues from ``snapshot`` (raises AgentUsageError if it does not fit)."""
        ...

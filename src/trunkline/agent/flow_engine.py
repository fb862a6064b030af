"""The flow engine's sans-IO core: one conversation's state and the step interpreter.

Theory of operation
-------------------
The conversation is always *in* one state. A turn (speech, digits, no-input, barge-in)
is handled in that state:

1. Speech is matched against the state's grammar (:class:`GrammarMatcher`); if the whole
   utterance is not a grammar sentence (free speech from the general model), intents are
   matched on content words (:class:`IntentIndex`) and slot values searched for in the text.
2. An intent runs its steps. A slot value is validated and stored; an invalid one is
   re-asked. When every slot of the state is filled, ``on_filled`` runs.
3. Nothing usable is a *no-match*; silence is a *no-input*. Each has a counter: the
   policy's message and a re-ask until ``reprompts`` are used up, then the ``escalate``
   steps. Entering a state clears its slots and both counters; a match clears no-match,
   any input clears no-input.
4. Steps run in order: ``say`` adds a Say; ``tool`` calls an integration (on failure:
   its fallback, then ``on_failure`` or back to the start state; a 4xx runs ``on_reject``
   when given); ``if`` picks a branch; ``goto`` enters a state (its ``on_enter``, prompt
   and first slot prompt); ``transfer`` and ``hangup`` end the conversation.

Nothing here awaits: a turn is a generator that *yields* each tool request and receives
the :class:`ToolResult` back (``program.send(result)``). :class:`~trunkline.agent.flow.
FlowBrain` drives it with real I/O; a test can drive it by hand.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass
from typing import Any

from trunkline.agent.brain import (
    Action,
    BrainContext,
    BrainEvent,
    Digits,
    EventKind,
    Hangup,
    Interrupted,
    NoInput,
    Say,
    Speech,
    Transfer,
    UserInput,
)
from trunkline.agent.errors import AgentUsageError
from trunkline.agent.flow_scope import MASK, FlowScope
from trunkline.agent.grammar import state_grammars
from trunkline.agent.intents import IntentIndex
from trunkline.agent.lexicon import words
from trunkline.agent.slots import Heard, accepts_dtmf, accepts_speech, find_in_text, from_dtmf
from trunkline.agent.spec import (
    AgentSpec,
    DtmfSpec,
    GotoStep,
    HangupStep,
    IfStep,
    IntentSpec,
    RepromptPolicy,
    SayStep,
    SlotSpec,
    StateSpec,
    Step,
    ToolSpec,
    ToolStep,
    TransferStep,
)
from trunkline.agent.template import Template
from trunkline.agent.tools import ToolOutcome, ToolRequest, ToolResult

# States one turn may pass through: a real flow moves one or two; more is a goto loop in
# the spec (A enters B enters A), which must end the call rather than spin the loop.
MAX_HOPS_PER_TURN = 16
# Inter-digit timeout for intents chosen by keypad in a state without a digits slot.
MENU_DTMF_TIMEOUT_MS = 3000


@dataclass(frozen=True, slots=True)
class Goto:
    state: str


class Signal:
    """How a step list ended early: STOP (stay in the state) or END (transfer/hangup)."""


STOP, END = Signal(), Signal()
Flow = Goto | Signal | None  # None: the list ran to its end
ToolCall = tuple[ToolSpec, ToolRequest]
Program = Generator[ToolCall, ToolResult, Flow]
Turn = Generator[ToolCall, ToolResult, None]


class FlowEngine:
    """One conversation: current state, slots (in ``scope``), counters, output, events."""

    def __init__(self, spec: AgentSpec, ctx: BrainContext) -> None:
        self.spec = spec
        self.ctx = ctx
        self.grammars = state_grammars(spec)
        self.scope = FlowScope(spec, ctx.variables, ctx.call)
        self.state: StateSpec = spec.states[spec.start]
        self.no_input = 0
        self.no_match = 0
        self.ended = False
        self.pending_tool: str | None = None
        self.out: list[Action] = []
        self.events: list[BrainEvent] = []

    # --- entry points (each returns a program for FlowBrain to drive) ------------------

    def begin(self) -> Turn:
        """The call starts: greeting, then the start state."""
        if self.spec.greeting is not None:
            self.say(self.spec.greeting)
        return self.follow(Goto(self.spec.start))

    def turn(self, event: UserInput) -> Turn:
        """One caller turn."""
        if self.ended:
            return
        if isinstance(event, Speech):
            flow = yield from self._speech(event)
        elif isinstance(event, Digits):
            flow = yield from self._digits(event)
        elif isinstance(event, NoInput):
            flow = yield from self._counted(self.spec.no_input, EventKind.NO_INPUT, {})
        elif isinstance(event, Interrupted):
            self.record(EventKind.INTERRUPTED, played_text=event.played_text)
            flow = None
        else:
            raise AgentUsageError(f"not a UserInput: {event!r}")
        yield from self.follow(flow)

    def follow(self, flow: Flow) -> Turn:
        """Enter states while steps say goto; stop a goto loop after MAX_HOPS_PER_TURN."""
        hops = 0
        while isinstance(flow, Goto):
            hops += 1
            if hops > MAX_HOPS_PER_TURN:
                self.ctx.log.error("flow loops through %s; hanging up", flow.state)
                self.say(Template.parse("Sorry, something went wrong. Goodbye."))
                self._end(Hangup("flow loop"), outcome="hangup", reason="flow loop")
                return
            flow = yield from self._enter(self.spec.states[flow.state])

    # --- turns --------------------------------------------------------------------------

    def _speech(self, event: Speech) -> Program:
        ws = words(event.text)
        grammar = self.grammars[self.state.name]
        match = grammar.matcher.match(ws, today=self.ctx.today()) if grammar.matcher else None
        if not event.final and not (match is not None and match.complete):
            return None  # a partial that does not complete the grammar: keep listening
        self.no_input = 0
        intent: IntentSpec | None = None
        heard: Sequence[Heard] = ()
        if match is not None and match.complete:
            intent = self._intent(match.intent)
            heard = match.heard
        elif ws:
            intent = self._intent(self._intent_index().best(ws))
            if intent is None:
                heard = self._search_slots(ws)
        # While a sensitive slot (a PIN) is being asked for, whatever the caller says may
        # be that secret, so the record keeps none of it.
        secret = any(s.sensitive for s in self.state.slots if s.name not in self.scope.slots)
        text = MASK if secret else self.scope.masked_text(event.text, heard)
        intent_name = intent.name if intent else None
        self.record(EventKind.CALLER, text=text, confidence=event.confidence, intent=intent_name)
        if intent is not None:
            self.no_match = 0
            return (yield from self._steps(intent.steps))
        if heard:
            return (yield from self._fill(heard))
        return (yield from self._counted(self.spec.no_match, EventKind.NO_MATCH, {"text": text}))

    def _digits(self, event: Digits) -> Program:
        self.no_input = 0
        state = self.state
        terminator = state.dtmf.terminator if state.dtmf else "#"
        digits = event.digits.removesuffix(terminator) if terminator else event.digits
        intent = next(
            (i for i in (*state.intents, *self.spec.global_intents) if i.dtmf == digits), None
        )
        slot = None if intent else self.next_slot(accepts_dtmf)
        heard = from_dtmf(slot, digits) if slot is not None else None
        self.record(EventKind.DTMF, digits=MASK if slot is not None and slot.sensitive else digits)
        if intent is not None:
            self.no_match = 0
            return (yield from self._steps(intent.steps))
        if heard is not None:
            return (yield from self._fill([heard]))
        return (yield from self._counted(self.spec.no_match, EventKind.NO_MATCH, {}))

    def _fill(self, heard: Sequence[Heard]) -> Program:
        bad: Heard | None = None
        filled = False
        for h in heard:
            shown = MASK if self.scope.sensitive(h.slot) else h.value
            self.record(EventKind.SLOT, slot=h.slot, value=shown, valid=h.valid, reason=h.reason)
            if h.valid:
                self.scope.slots[h.slot] = h.value
                filled = True
            elif bad is None:
                bad = h
        if not filled and bad is not None:
            slot = self.spec.slot(bad.slot)
            reprompt = slot.reprompt if slot is not None else None
            return (yield from self._counted(self.spec.no_match, EventKind.NO_MATCH, {}, reprompt))
        self.no_match = 0
        if all(s.name in self.scope.slots for s in self.state.slots):
            return (yield from self._steps(self.state.on_filled))
        self._ask_slot()
        return None

    def _counted(
        self,
        policy: RepromptPolicy,
        kind: EventKind,
        data: dict[str, Any],
        message: Template | None = None,
    ) -> Program:
        """A no-input or no-match: reprompt, or escalate once the reprompts are used up."""
        if kind is EventKind.NO_INPUT:
            self.no_input += 1
            count = self.no_input
        else:
            self.no_match += 1
            count = self.no_match
        self.record(kind, count=count, **data)
        if count > policy.reprompts:
            return (yield from self._steps(policy.escalate))
        self.say(message or policy.message)
        self.reask()
        return None

    # --- steps --------------------------------------------------------------------------

    def _steps(self, steps: Sequence[Step]) -> Program:
        for step in steps:
            if isinstance(step, SayStep):
                self.say(step.text)
            elif isinstance(step, GotoStep):
                return Goto(step.state)
            elif isinstance(step, TransferStep):
                target = self.scope.render(step.target)
                summary = self.scope.render(step.summary)
                return self._end(Transfer(target, summary), outcome="transfer", target=target)
            elif isinstance(step, HangupStep):
                return self._end(Hangup(step.reason), outcome="hangup", reason=step.reason)
            else:
                if isinstance(step, IfStep):
                    branch = step.then if self.scope.test(step) else step.otherwise
                    flow = yield from self._steps(branch)
                else:
                    flow = yield from self._tool(step)
                if flow is not None:
                    return flow
        return None

    def _tool(self, step: ToolStep) -> Program:
        tool = self.spec.tools[step.tool]
        request = self.scope.request(tool)
        self.pending_tool = tool.name
        result = yield tool, request
        self.pending_tool = None
        self.record(
            EventKind.TOOL, tool=tool.name, method=tool.method,
            url=self.scope.masked_url(request.url), outcome=result.outcome.value,
            status=result.status, attempts=result.attempts, ms=round(result.duration_ms, 1),
            error=result.error,
        )  # fmt: skip
        if result.ok:
            self.scope.tool_values[tool.name] = dict(result.values)
            return None
        if result.outcome is ToolOutcome.REJECTED and step.on_reject is not None:
            return (yield from self._steps(step.on_reject)) or STOP
        self.say(tool.fallback)
        if step.on_failure is None:
            return Goto(self.spec.start)
        return (yield from self._steps(step.on_failure)) or STOP

    def _enter(self, state: StateSpec) -> Program:
        self.state = state
        for slot in state.slots:
            self.scope.slots.pop(slot.name, None)
        self.no_input = self.no_match = 0
        self.record(EventKind.STATE)
        flow = yield from self._steps(state.on_enter)
        if isinstance(flow, Goto) or flow is END:
            return flow
        if state.prompt is not None:
            self.say(state.prompt)
        self._ask_slot()
        return None

    def _end(self, final: Transfer | Hangup, **data: Any) -> Signal:
        self.out.append(final)
        self.ended = True
        self.record(EventKind.OUTCOME, **data)
        return END

    # --- helpers ------------------------------------------------------------------------

    def say(self, template: Template) -> None:
        """Queue a Say (empty text, from unset values, says nothing)."""
        text = self.scope.render_spoken(template).strip()
        if text:
            self.out.append(Say(text, self.state.barge_in, template.is_static))
            self.record(EventKind.AGENT, text=text)

    def reask(self) -> None:
        """Ask again: the state's reprompt, else the next slot's prompt, else the prompt."""
        slot = self.next_slot()
        state = self.state
        prompt = state.reprompt or (slot.prompt if slot is not None else None) or state.prompt
        if prompt is not None:
            self.say(prompt)

    def _ask_slot(self) -> None:
        slot = self.next_slot()
        if slot is not None and slot.prompt is not None:
            self.say(slot.prompt)

    def next_slot(self, accepts: Callable[[SlotSpec], bool] | None = None) -> SlotSpec | None:
        """The first unfilled slot of the state (that ``accepts`` the input, if given)."""
        for slot in self.state.slots:
            if slot.name not in self.scope.slots and (accepts is None or accepts(slot)):
                return slot
        return None

    def menu_dtmf(self) -> DtmfSpec | None:
        """Keypad collection for intents with ``dtmf`` keys, in a state without its own."""
        codes = [i.dtmf for i in (*self.state.intents, *self.spec.global_intents) if i.dtmf]
        if not codes:
            return None
        return DtmfSpec(max(len(c) for c in codes), "#", MENU_DTMF_TIMEOUT_MS)

    def _search_slots(self, ws: tuple[str, ...]) -> list[Heard]:
        today = self.ctx.today()
        speakable = [s for s in self.state.slots if accepts_speech(s)]
        pending = [s for s in speakable if s.name not in self.scope.slots]
        for slot in pending or speakable:
            found = find_in_text(slot, ws, today)
            if found is not None:
                return [found]
        return []

    def _intent(self, name: str | None) -> IntentSpec | None:
        if name is None:
            return None
        for intent in (*self.state.intents, *self.spec.global_intents):
            if intent.name == name:
                return intent
        return None

    def _intent_index(self) -> IntentIndex:
        own = {i.name for i in self.state.intents}
        extra = [i for i in self.spec.global_intents if i.name not in own]
        return IntentIndex([*self.state.intents, *extra])

    def record(self, kind: EventKind, **data: Any) -> None:
        self.events.append(BrainEvent(kind, self.ctx.clock(), self.state.name, data))

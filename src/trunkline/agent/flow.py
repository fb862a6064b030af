"""FlowBrain: the flow engine behind the :class:`~trunkline.agent.brain.Brain` contract.

The conversation logic lives in :mod:`trunkline.agent.flow_engine`, sans-IO: a turn is a
generator that yields tool requests. This module is its adapter (the h11 / aioquic
shape): ``respond`` drives a turn, awaits the injected :class:`ToolCaller` for each
request, and streams the actions produced before each tool call, so the caller hears
"one moment while I look that up" while the CRM answers. ``start`` and ``resume`` drive
the same generators synchronously; the spec validator guarantees that no tool runs
before the first caller turn.
"""

from __future__ import annotations

import copy
import json
from collections.abc import AsyncIterator, Mapping
from typing import Any

from trunkline.agent.brain import Action, Brain, BrainContext, BrainEvent, ListenSpec, UserInput
from trunkline.agent.errors import AgentUsageError
from trunkline.agent.flow_engine import FlowEngine, Goto, Turn
from trunkline.agent.spec import AgentSpec, BrainKind, ToolSpec
from trunkline.agent.tools import ToolOutcome, ToolRequest, ToolResult

SNAPSHOT_VERSION = 1


class FlowBrain:
    """The flow brain of one call. See :class:`~trunkline.agent.brain.Brain`."""

    def __init__(self, spec: AgentSpec, context: BrainContext | None = None) -> None:
        if spec.brain is not BrainKind.FLOW:
            raise AgentUsageError(f"spec {spec.name!r} is for the {spec.brain} brain")
        self._spec = spec
        self._ctx = context if context is not None else BrainContext()
        self._engine = FlowEngine(spec, self._ctx)
        self._started = False
        self._busy = False

    @property
    def ended(self) -> bool:
        return self._engine.ended

    @property
    def state(self) -> str:
        """The current state's name."""
        return self._engine.state.name

    @property
    def slots(self) -> Mapping[str, Any]:
        """A copy of the filled slot values."""
        return dict(self._engine.scope.slots)

    def start(self) -> list[Action]:
        """Greeting, then the start state's on_enter, prompt and first slot prompt."""
        if self._started:
            raise AgentUsageError("start() was already called")
        self._started = True
        self._run_sync(self._engine.begin())
        return self._take()

    async def on_input(self, event: UserInput) -> list[Action]:
        """One caller turn; every action at once. Never raises for caller or tool faults."""
        return [action async for action in self.respond(event)]

    async def respond(self, event: UserInput) -> AsyncIterator[Action]:
        """One caller turn, streamed: actions before a tool call come out before it runs.

        Consume it to the end (or ``aclose()`` it) before the next turn.

        ``Speech(final=False)``: a partial result. If it completes the state's grammar it
        *is* the turn (the pipeline ended the turn early and sends no final); otherwise it
        yields nothing and changes nothing.
        """
        if not self._started:
            raise AgentUsageError("start() must come before the first turn")
        if self._busy:
            raise AgentUsageError("a turn is already running")
        self._busy = True
        try:
            program = self._engine.turn(event)
            result: ToolResult | None = None
            while True:
                try:
                    call = next(program) if result is None else program.send(result)
                except StopIteration:
                    break
                for action in self._take():
                    yield action
                result = await self._call_tool(*call)
            for action in self._take():
                yield action
        finally:
            self._busy = False

    def listen_spec(self) -> ListenSpec:
        """What the current state listens for: grammar, endpointing, no-input, keypad."""
        engine = self._engine
        state = engine.state
        grammar = engine.grammars[state.name]
        return ListenSpec(
            grammar=grammar.jsgf,
            grammar_id=grammar.grammar_id if grammar.jsgf is not None else None,
            matcher=grammar.matcher,
            endpoint_silence_ms=state.silence_ms or self._spec.silence_ms,
            no_input_timeout_ms=state.no_input_ms or self._spec.no_input.timeout_ms,
            dtmf=state.dtmf or engine.menu_dtmf(),
            barge_in=state.barge_in,
        )

    def snapshot(self) -> dict[str, Any]:
        """JSON-able state for the session store (checkpoint it after every turn)."""
        engine = self._engine
        return {
            "version": SNAPSHOT_VERSION,
            "spec": self._spec.name,
            "state": engine.state.name,
            "slots": copy.deepcopy(engine.scope.slots),
            "tools": copy.deepcopy(engine.scope.tool_values),
            "no_input": engine.no_input,
            "no_match": engine.no_match,
            "started": self._started,
            "ended": engine.ended,
            "pending_tool": engine.pending_tool,
        }

    @classmethod
    def restore(
        cls, spec: AgentSpec, snapshot: Mapping[str, Any], context: BrainContext | None = None
    ) -> FlowBrain:
        """A brain that continues from ``snapshot``; call :meth:`resume` next.

        Raises:
            AgentUsageError: the snapshot is not one of ours, or names a state or tool the
                spec lacks (the spec changed under a live call).
        """
        brain = cls(spec, context)
        engine = brain._engine
        try:
            if snapshot.get("version") != SNAPSHOT_VERSION or snapshot.get("spec") != spec.name:
                raise ValueError("version or spec name differs")
            engine.state = spec.states[snapshot["state"]]
            engine.scope.slots = dict(copy.deepcopy(snapshot["slots"]))
            engine.scope.tool_values = {
                str(k): dict(v) for k, v in copy.deepcopy(snapshot["tools"]).items()
            }
            engine.no_input = int(snapshot["no_input"])
            engine.no_match = int(snapshot["no_match"])
            brain._started = bool(snapshot["started"])
            engine.ended = bool(snapshot["ended"])
            pending = snapshot.get("pending_tool")
            if pending is not None and pending not in spec.tools:
                raise ValueError(f"unknown tool {pending!r}")
            engine.pending_tool = pending
            json.dumps([engine.scope.slots, engine.scope.tool_values])
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise AgentUsageError(f"snapshot does not fit spec {spec.name!r}: {exc}") from None
        return brain

    def resume(self) -> list[Action]:
        """Pick up after a restore: ask again where the conversation was.

        A tool that was running when the snapshot was taken is not re-run (it may have
        booked something already): its fallback is said and the start state entered, as
        after any tool failure (the start state runs no tools on entry).
        """
        engine = self._engine
        if engine.ended:
            return []
        self._started = True
        if engine.pending_tool is not None:
            tool = self._spec.tools[engine.pending_tool]
            engine.pending_tool = None
            engine.say(tool.fallback)
            self._run_sync(engine.follow(Goto(self._spec.start)))
        else:
            engine.reask()
        return self._take()

    def drain_events(self) -> list[BrainEvent]:
        """Events since the last drain, oldest first (for the call record)."""
        events, self._engine.events = self._engine.events, []
        return events

    async def _call_tool(self, tool: ToolSpec, request: ToolRequest) -> ToolResult:
        runner = self._ctx.tools
        if runner is None:
            return ToolResult(tool.name, ToolOutcome.ERROR, {}, None, 0, 0.0, "no tool runner")
        try:
            return await runner.call(tool, request)
        except Exception as exc:  # a ToolCaller must not raise; if one does, the call goes on
            self._ctx.log.exception("tool runner raised for %s", tool.name)
            return ToolResult(tool.name, ToolOutcome.ERROR, {}, None, 1, 0.0, repr(exc))

    def _run_sync(self, program: Turn) -> None:
        try:
            call = next(program)
        except StopIteration:
            return
        program.close()
        raise AgentUsageError(f"tool {call[0].name!r} would run outside a turn")

    def _take(self) -> list[Action]:
        out, self._engine.out = self._engine.out, []
        return out


def _conforms(brain: FlowBrain) -> Brain:
    """Never called: makes mypy check FlowBrain against the Brain protocol."""
    return brain

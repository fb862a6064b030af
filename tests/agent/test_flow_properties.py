"""Property test: any sequence of caller inputs and tool outcomes keeps the flow sound.

Walks the Acme flow with random speech (grammar phrases, partials, free speech, noise),
keypad entries, silences and barge-ins, against a fake tool caller whose outcome is
drawn too. After every turn: nothing raised, the caller was never left in silence, an
ended call stays ended, and the snapshot survives a JSON round trip and a restore.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.agent.conftest import TODAY, ManualClock
from tests.conftest import ACME
from trunkline.agent import (
    AgentSpec,
    AgentUsageError,
    BrainContext,
    Digits,
    FlowBrain,
    Hangup,
    Interrupted,
    NoInput,
    Say,
    Speech,
    ToolOutcome,
    ToolRequest,
    ToolResult,
    Transfer,
    UserInput,
    load_agent_spec,
    parse_agent_spec,
)
from trunkline.agent.spec import ToolSpec

_SPEC: dict[str, AgentSpec] = {}


def acme() -> AgentSpec:
    if "acme" not in _SPEC:
        _SPEC["acme"] = load_agent_spec(ACME)
    return _SPEC["acme"]


class FakeTools:
    """Answers each call with the next drawn outcome; mapped fields get made-up values."""

    def __init__(self, outcomes: list[ToolOutcome]) -> None:
        self._outcomes = outcomes or [ToolOutcome.OK]
        self.calls = 0

    async def call(self, tool: ToolSpec, request: ToolRequest) -> ToolResult:
        outcome = self._outcomes[self.calls % len(self._outcomes)]
        self.calls += 1
        values: Mapping[str, str] = (
            {k: f"{k}-value" for k in tool.result} if outcome is ToolOutcome.OK else {}
        )
        return ToolResult(tool.name, outcome, values, 200, 1, 1.0)


PHRASES = [
    "order status", "reschedule appointment", "account balance", "talk to a person",
    "goodbye", "main menu", "yes", "no", "that's right", "friday", "tomorrow please",
    "february thirtieth", "one two three four five", "my order number is nine nine nine",
    "one two", "uh I want to check my order please", "", "purple elephants", "bye",
]  # fmt: skip
inputs = st.one_of(
    st.builds(Speech, st.sampled_from(PHRASES), st.floats(0, 1), st.booleans()),
    st.builds(Digits, st.sampled_from(["0", "1", "2", "3", "12345", "24680#", "1234#", "9", "#"])),
    st.just(NoInput()),
    st.builds(Interrupted, st.sampled_from(["", "How can"])),
)


@settings(max_examples=120, deadline=None)
@given(
    st.lists(inputs, max_size=14),
    st.lists(st.sampled_from(list(ToolOutcome)), max_size=4),
)
def test_any_conversation_stays_sound(script: list[UserInput], outcomes: list[ToolOutcome]) -> None:
    asyncio.run(_walk(script, outcomes))


async def _walk(script: list[UserInput], outcomes: list[ToolOutcome]) -> None:
    spec = acme()
    tools = FakeTools(outcomes)

    def ctx() -> BrainContext:
        return BrainContext(tools=tools, clock=ManualClock(), today=lambda: TODAY)

    brain = FlowBrain(spec, ctx())
    assert brain.start()
    for event in script:
        was_ended = brain.ended
        actions = await brain.on_input(event)
        if was_ended:
            assert actions == []
            continue
        ends = [i for i, a in enumerate(actions) if isinstance(a, Transfer | Hangup)]
        assert ends in ([], [len(actions) - 1]), actions
        assert all(a.text and "{{" not in a.text for a in actions if isinstance(a, Say))
        counts = isinstance(event, Digits | NoInput) or (isinstance(event, Speech) and event.final)
        if counts:
            assert actions, f"silence after {event!r} in state {brain.state}"
        assert brain.listen_spec().no_input_timeout_ms > 0
        snap = json.loads(json.dumps(brain.snapshot()))
        assert FlowBrain.restore(spec, snap, ctx()).snapshot() == snap
    assert all(isinstance(e.as_dict(), dict) for e in brain.drain_events())


def test_goto_loops_end_the_call_instead_of_spinning() -> None:
    spec = parse_agent_spec(
        """
name: loop
states:
  main:
    intents:
      go: {examples: [go], goto: a}
  a:
    on_enter: {goto: b}
  b:
    on_enter: {goto: a}
"""
    )

    async def run() -> None:
        brain = FlowBrain(spec)
        brain.start()
        actions = await brain.on_input(Speech("go"))
        assert actions[-1] == Hangup("flow loop") and brain.ended

    asyncio.run(run())


def test_llm_specs_and_misuse_are_usage_errors() -> None:
    llm = parse_agent_spec("name: x\nbrain: llm\nllm: {model: m, system_prompt: be nice}\n")
    try:
        FlowBrain(llm)
    except AgentUsageError:
        pass
    else:
        raise AssertionError("FlowBrain accepted an llm spec")

    async def run() -> None:
        brain = FlowBrain(acme())
        try:
            await brain.on_input(NoInput())
        except AgentUsageError:
            return
        raise AssertionError("input before start() was accepted")

    asyncio.run(run())

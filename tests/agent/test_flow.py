"""Scripted conversations through the Acme agent against the real demo CRM."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.agent.conftest import context
from trunkline.agent import (
    Action,
    AgentSpec,
    AgentUsageError,
    Digits,
    EventKind,
    FlowBrain,
    Hangup,
    Interrupted,
    NoInput,
    Say,
    Speech,
    ToolRunner,
    Transfer,
    UserInput,
)
from trunkline.agent.demo_crm import CrmServer

MakeBrain = Callable[..., FlowBrain]
MAIN_PROMPT = "How can I help you?"


def texts(actions: list[Action]) -> list[str]:
    return [a.text for a in actions if isinstance(a, Say)]


def said(actions: list[Action]) -> str:
    return " ".join(texts(actions))


async def test_start_greets_and_prompts(make_brain: MakeBrain) -> None:
    brain = make_brain()
    actions = brain.start()
    assert texts(actions)[0] == "Thank you for calling Acme."
    assert texts(actions)[1].startswith(MAIN_PROMPT)
    assert all(isinstance(a, Say) and a.cacheable for a in actions)
    listen = brain.listen_spec()
    assert listen.grammar is not None and "order status" in listen.grammar
    assert listen.endpoint_silence_ms == 700 and listen.no_input_timeout_ms == 6000
    assert listen.dtmf is not None and listen.dtmf.max_digits == 1  # menu keys 0-3
    with pytest.raises(AgentUsageError):
        brain.start()


async def test_order_status(make_brain: MakeBrain) -> None:
    brain = make_brain()
    brain.start()
    actions = await brain.on_input(Speech("order status"))
    assert said(actions) == "Please say or type your five digit order number."
    listen = brain.listen_spec()
    assert listen.endpoint_silence_ms == 1000
    assert listen.dtmf is not None and (listen.dtmf.max_digits, listen.dtmf.terminator) == (5, "#")
    assert listen.matcher is not None
    assert listen.matcher.match("my order number is one two three four five") is not None
    actions = await brain.on_input(Speech("my order number is one two three four five"))
    assert texts(actions) == [
        "One moment while I look that up.",
        "Order 1 2 3 4 5 is shipped. It should arrive on Friday.",
        "Is there anything else I can help you with?",
    ]
    reading = actions[1]
    assert isinstance(reading, Say) and not reading.cacheable  # templated: not a fixed prompt
    tool_events = [e for e in brain.drain_events() if e.kind is EventKind.TOOL]
    assert [(e.data["tool"], e.data["outcome"], e.data["status"]) for e in tool_events] == [
        ("order_status", "ok", 200)
    ]
    assert brain.state == "anything_else"


async def test_order_status_by_keypad_and_unknown_order(make_brain: MakeBrain) -> None:
    brain = make_brain()
    brain.start()
    await brain.on_input(Digits("1"))  # menu key for order status
    assert brain.state == "order_status"
    actions = await brain.on_input(Digits("99999#"))
    assert texts(actions)[1:] == [
        "I couldn't find order 9 9 9 9 9.",
        "Please say or type your five digit order number.",
    ]
    actions = await brain.on_input(Digits("24680"))
    assert "Order 2 4 6 8 0 is being prepared." in said(actions)


async def test_order_number_wrong_length_is_reasked(make_brain: MakeBrain) -> None:
    brain = make_brain()
    brain.start()
    await brain.on_input(Speech("order status"))
    # Free speech (general language model): digits are found in the text, but only three.
    actions = await brain.on_input(Speech("uh it was one two three I think"))
    assert texts(actions) == [
        "Order numbers have five digits.",
        "Please say or type your five digit order number.",
    ]
    assert brain.slots == {}
    events = brain.drain_events()
    slot = [e for e in events if e.kind is EventKind.SLOT][-1]
    assert (slot.data["valid"], slot.data["reason"]) == (False, "too short (3 digits)")


async def test_reschedule_confirm_yes(make_brain: MakeBrain, crm: CrmServer) -> None:
    brain = make_brain()
    brain.start()
    actions = await brain.on_input(Speech("i would like to move my appointment please"))
    assert brain.state == "reschedule"
    assert "Which day" in said(actions)
    actions = await brain.on_input(Speech("next friday please"))
    assert said(actions) == "You said Friday, January 10. Shall I book it?"
    actions = await brain.on_input(Speech("yes"))
    assert texts(actions)[0] == "You are booked for Friday, January 10 at 10 AM."
    rows = crm.db.query("SELECT day FROM appointments WHERE customer = 'demo' ORDER BY id DESC")
    assert rows[0] == ("2025-01-10",)


async def test_reschedule_confirm_no_asks_again(make_brain: MakeBrain) -> None:
    brain = make_brain()
    brain.start()
    await brain.on_input(Speech("reschedule appointment"))
    await brain.on_input(Speech("tomorrow"))
    assert brain.slots["day"] == "2025-01-07"
    actions = await brain.on_input(Speech("no"))
    assert texts(actions)[0] == "Okay, let's pick another day."
    assert brain.state == "reschedule" and "day" not in brain.slots


async def test_balance_with_dtmf_pin(make_brain: MakeBrain) -> None:
    brain = make_brain()
    brain.start()
    await brain.on_input(Speech("account balance"))
    listen = brain.listen_spec()
    assert listen.dtmf is not None and (listen.dtmf.max_digits, listen.dtmf.terminator) == (4, "#")
    assert listen.grammar is not None and "<digit>" not in listen.grammar  # PIN is keypad-only
    actions = await brain.on_input(Digits("0000#"))
    assert texts(actions) == [
        "That pin doesn't match our records.",
        "Please type your four digit pin on the keypad, then press pound.",
    ]
    await brain.on_input(Speech("my pin is one two three four"))  # spoken: not accepted
    actions = await brain.on_input(Digits("1234#"))
    assert texts(actions)[0] == "Your balance is 42.50 dollars."
    events = [e.as_dict() for e in brain.drain_events()]
    assert not any("1234" in str(e) or "one two" in str(e) for e in events)  # PIN masked
    assert any(e["kind"] == "tool" and e["url"].endswith("/accounts/****/balance") for e in events)


async def test_transfer_to_a_person_with_summary(make_brain: MakeBrain) -> None:
    brain = make_brain()
    brain.start()
    await brain.on_input(Speech("order status"))
    await brain.on_input(Speech("one two three four five"))
    actions = await brain.on_input(Speech("i want to talk to a real person"))
    assert texts(actions) == ["Please hold while I transfer you."]
    transfer = actions[-1]
    assert isinstance(transfer, Transfer)
    assert transfer.target == "sip:agent@127.0.0.1"
    assert transfer.summary == "Caller asked for a person. Order 12345, new day ."
    assert brain.ended
    assert await brain.on_input(Speech("hello")) == []  # nothing after the end


async def test_goodbye_hangs_up(make_brain: MakeBrain) -> None:
    brain = make_brain()
    brain.start()
    actions = await brain.on_input(Speech("goodbye"))
    assert actions == [
        Say("Thank you for calling Acme. Goodbye.", True, True),
        Hangup("caller said goodbye"),
    ]
    outcome = [e for e in brain.drain_events() if e.kind is EventKind.OUTCOME]
    assert outcome[0].data == {"outcome": "hangup", "reason": "caller said goodbye"}


async def test_no_input_twice_then_escalate(make_brain: MakeBrain) -> None:
    brain = make_brain()
    brain.start()
    actions = await brain.on_input(NoInput())
    assert texts(actions)[0] == "Sorry, I didn't hear anything."
    assert texts(actions)[1].startswith("Please say order status")  # the state's reprompt
    actions = await brain.on_input(NoInput())
    assert actions[-1] == Hangup("no input")
    assert "Please call again later" in said(actions)


async def test_speech_resets_the_no_input_count(make_brain: MakeBrain) -> None:
    brain = make_brain()
    brain.start()
    await brain.on_input(NoInput())
    await brain.on_input(Speech("order status"))
    actions = await brain.on_input(NoInput())
    assert not brain.ended and texts(actions)[0] == "Sorry, I didn't hear anything."


async def test_no_match_reprompts_then_transfers(make_brain: MakeBrain) -> None:
    brain = make_brain()
    brain.start()
    for _ in range(2):
        actions = await brain.on_input(Speech("purple elephants dancing"))
        assert texts(actions) == [
            "Sorry, I didn't catch that.",
            "Please say order status, reschedule appointment, account balance, or agent.",
        ]
    actions = await brain.on_input(Speech("purple elephants dancing"))
    assert isinstance(actions[-1], Transfer)
    assert actions[-1].summary == "Caller could not be understood by the menu."
    kinds = [e.kind for e in brain.drain_events()]
    assert kinds.count(EventKind.NO_MATCH) == 3


async def test_partial_speech_only_counts_when_it_completes(make_brain: MakeBrain) -> None:
    brain = make_brain()
    brain.start()
    await brain.on_input(Speech("order status"))
    assert await brain.on_input(Speech("my order number is one two", final=False)) == []
    assert brain.state == "order_status" and brain.slots == {}
    actions = await brain.on_input(Speech("one two three four five", final=False))
    assert "Order 1 2 3 4 5 is shipped." in said(actions)


async def test_barge_in_is_recorded(make_brain: MakeBrain) -> None:
    brain = make_brain()
    brain.start()
    assert await brain.on_input(Interrupted("How can I")) == []
    events = brain.drain_events()
    assert events[-1].kind is EventKind.INTERRUPTED
    assert events[-1].data == {"played_text": "How can I"}


@pytest.mark.parametrize(
    ("mode", "outcome", "attempts"),
    [("slow", "timeout", 2), ("error", "error", 2), ("garbage", "garbage", 1)],
)
async def test_tool_failure_says_fallback_and_goes_on(
    make_brain: MakeBrain, crm: CrmServer, mode: str, outcome: str, attempts: int
) -> None:
    # order_status: timeout_ms 1500, retries 1. The slow CRM answers after 3 s.
    crm.faults.mode, crm.faults.delay_s = mode, 3.0
    brain = make_brain()
    brain.start()
    await brain.on_input(Speech("order status"))
    actions = await brain.on_input(Speech("one two three four five"))
    assert texts(actions) == [
        "One moment while I look that up.",
        "Sorry, I can't reach our order system right now.",
        "How can I help you? You can say order status, reschedule appointment, "
        "account balance, or talk to a person.",
    ]
    tool = [e for e in brain.drain_events() if e.kind is EventKind.TOOL][0]
    assert (tool.data["outcome"], tool.data["attempts"]) == (outcome, attempts)
    # The call goes on: the CRM recovers and the same request works.
    crm.faults.mode = "none"
    await brain.on_input(Speech("order status"))
    actions = await brain.on_input(Speech("one two three four five"))
    assert "is shipped" in said(actions)


async def test_streaming_yields_the_holding_prompt_before_the_tool(
    make_brain: MakeBrain, crm: CrmServer
) -> None:
    brain = make_brain()
    brain.start()
    await brain.on_input(Speech("order status"))
    crm.faults.mode, crm.faults.delay_s = "slow", 0.2
    stream = brain.respond(Speech("one two three four five"))
    first = await anext(stream)
    assert first == Say("One moment while I look that up.", True, True)
    assert brain.snapshot()["pending_tool"] == "order_status"  # the tool is now in flight
    rest = [a async for a in stream]
    assert "is shipped" in said(rest)
    assert brain.snapshot()["pending_tool"] is None


SCRIPT: list[UserInput] = [
    Speech("order status"),
    Speech("one two three"),
    Digits("12345#"),
    Speech("yes"),
    Speech("reschedule"),
    NoInput(),
    Speech("on friday"),
    Speech("yes"),
    Speech("yes"),
    Speech("account balance"),
    Digits("1234#"),
    Speech("no"),
]


async def run_script(brain: FlowBrain, script: list[UserInput]) -> list[list[Action]]:
    return [await brain.on_input(event) for event in script]


async def test_snapshot_restore_resumes_identically(
    acme_spec: AgentSpec, crm: CrmServer, tools: ToolRunner
) -> None:
    reference = FlowBrain(acme_spec, context(crm.url, tools))
    reference.start()
    expected = await run_script(reference, SCRIPT)
    assert isinstance(expected[-1][-1], Hangup)
    for cut in range(1, len(SCRIPT)):
        brain = FlowBrain(acme_spec, context(crm.url, tools))
        brain.start()
        await run_script(brain, SCRIPT[:cut])
        snap = brain.snapshot()
        restored = FlowBrain.restore(acme_spec, _json_roundtrip(snap), context(crm.url, tools))
        assert restored.snapshot() == snap
        assert await run_script(restored, SCRIPT[cut:]) == expected[cut:], f"cut at {cut}"


async def test_resume_reasks_and_restarts_after_a_pending_tool(
    acme_spec: AgentSpec, crm: CrmServer, tools: ToolRunner
) -> None:
    brain = FlowBrain(acme_spec, context(crm.url, tools))
    brain.start()
    await brain.on_input(Speech("order status"))
    restored = FlowBrain.restore(acme_spec, brain.snapshot(), context(crm.url, tools))
    assert texts(restored.resume()) == ["Please say or type your five digit order number."]
    snap = brain.snapshot() | {"pending_tool": "order_status"}
    crashed = FlowBrain.restore(acme_spec, snap, context(crm.url, tools))
    actions = crashed.resume()
    assert texts(actions)[0] == "Sorry, I can't reach our order system right now."
    assert crashed.state == "main"


def test_restore_rejects_foreign_snapshots(acme_spec: AgentSpec) -> None:
    good = FlowBrain(acme_spec, context("http://127.0.0.1:9", None))
    good.start()
    snap = good.snapshot()
    for bad in (
        {},
        snap | {"state": "nowhere"},
        snap | {"version": 99},
        snap | {"slots": [1, 2]},
        snap | {"pending_tool": "nope"},
    ):
        with pytest.raises(AgentUsageError):
            FlowBrain.restore(acme_spec, bad, context("http://127.0.0.1:9", None))


def _json_roundtrip(data: dict[str, Any]) -> dict[str, Any]:
    import json

    result: dict[str, Any] = json.loads(json.dumps(data))
    return result

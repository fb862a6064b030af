"""The turn manager on a fake leg: the real flow brain on the Acme spec and the demo CRM.

Caller speech is a loud tone (webrtcvad hears it as speech); what the recognizer makes
of it is scripted per utterance. Time is the fake leg's tick count (20 ms each).
"""

from __future__ import annotations

import asyncio
from collections import deque

import pytest

from tests.conftest import ACME
from trunkline.agent import AgentSpec, ToolRunner, parse_agent_spec
from trunkline.agent.demo_crm import CrmServer
from trunkline.net.leg import TransferResult
from trunkline.pipeline import listener
from trunkline.pipeline.caller import PREROLL_FRAMES
from trunkline.pipeline.endpointing import frames_for
from trunkline.runtime.stores import MemorySessionStore, Session, SessionStoreError

from .fakes import FakeLeg, FakeTTS, Heard, talk
from .harness import start_call

MAIN_PROMPT = [
    "Thank you for calling Acme.",
    "How can I help you?",
    "You can say order status, reschedule appointment, account balance, or talk to a person.",
]
ORDER_PROMPT = "Please say or type your five digit order number."


async def test_order_status_by_voice(
    acme_spec: AgentSpec, crm: CrmServer, tools: ToolRunner
) -> None:
    call = await start_call(acme_spec, crm, tools)
    await call.until_listening("the greeting")
    assert call.said() == MAIN_PROMPT
    greeting_frames = sum(call.tts.frames_of(t) for t in MAIN_PROMPT)
    assert len(call.leg.audible_ticks()) == greeting_frames  # every frame was played

    await call.say(talk(600), "order status")
    await call.until_listening("the order number prompt")
    assert call.said()[-1] == ORDER_PROMPT
    assert call.asr.streams[0].grammar is not None  # the main menu's grammar was loaded

    await call.say(talk(1200), "one two three four five")
    await call.until_listening("the order status")
    assert call.said()[-4:] == [
        "One moment while I look that up.",
        "Order 1 2 3 4 5 is shipped.",
        "It should arrive on Friday.",
        "Is there anything else I can help you with?",
    ]

    await call.say(talk(400), "no")
    record = await call.ended()
    # "Thank you for calling Acme." is a fixed prompt, said in the greeting: from the cache.
    assert call.said()[-1] == "Goodbye."
    assert call.app.cache.hits == 1
    assert call.leg.hangups == ["done"]
    assert record.outcome == "hangup"
    callers = [t["text"] for t in record.transcript if t["role"] == "caller"]
    assert callers == ["order status", "one two three four five", "no"]
    assert any("is shipped" in t["text"] for t in record.transcript if t["role"] == "agent")
    assert [c["tool"] for c in record.tool_calls] == ["order_status"]
    assert record.tool_calls[0]["outcome"] == "ok"
    # Timings: the opening turn and three caller turns, each stage in order.
    assert [t.turn for t in record.turns] == [0, 1, 2, 3]
    for t in record.turns[1:]:
        stages = [t.end_of_speech, t.asr_final, t.first_brain_output, t.first_tts_audio,
                  t.first_outbound_packet]  # fmt: skip
        assert None not in stages, t
        assert stages == sorted(stages), t  # type: ignore[type-var]
    details = record.extra["turn_details"]
    assert [d["endpoint"] for d in details] == [None, "silence", "silence", "silence"]
    assert await call.sessions.load(call.leg.call_id) is None  # the call is over: forgotten


async def test_silence_endpoint_waits_for_the_states_silence(
    acme_spec: AgentSpec, crm: CrmServer, tools: ToolRunner
) -> None:
    call = await start_call(acme_spec, crm, tools)
    await call.until_listening()
    first = await call.say(talk(600), "order status")
    last_voiced = first + 30 - 1
    flushed = await call.leg.until(
        lambda: bool(call.asr.streams) and call.asr.streams[0].flushes == 1, "the endpoint"
    )
    # main: 700 ms of silence after the last voiced frame, not a frame more or less.
    assert flushed == last_voiced + frames_for(700)


async def test_account_balance_after_a_dtmf_pin(
    acme_spec: AgentSpec, crm: CrmServer, tools: ToolRunner
) -> None:
    call = await start_call(acme_spec, crm, tools)
    await call.until_listening()
    await call.say(talk(600), "account balance")
    await call.until_listening("the PIN prompt")
    assert call.said()[-1] == "Please type your four digit pin on the keypad, then press pound."
    call.expect_turns = call.conv.turns + 1
    call.leg.press("1234#")
    await call.until_listening("the balance")
    assert "Your balance is 42.50 dollars." in call.said()
    call.leg.caller_hangs_up()
    record = await call.ended()
    assert record.outcome == "caller_hangup"
    assert "1234" not in record.to_json().decode()  # the PIN is masked everywhere
    assert record.dtmf and set(record.dtmf) <= {"*", " "}
    assert record.extra["turn_details"][-1]["endpoint"] == "dtmf"


async def test_dtmf_inter_digit_timeout_and_menu_keys(
    acme_spec: AgentSpec, crm: CrmServer, tools: ToolRunner
) -> None:
    call = await start_call(acme_spec, crm, tools)

    async def keys(digits: str) -> int:
        """Press ``digits``; returns how many frames later the brain's turn started."""
        call.expect_turns = call.conv.turns + 1
        pressed = call.leg.ticks
        call.leg.press(digits)
        started = await call.leg.until(lambda: call.conv.turns >= call.expect_turns, "a turn")
        await call.until_listening(f"the answer to {digits}")
        return started - pressed

    await call.until_listening()
    assert await keys("1") <= 1  # the main menu's key for order status
    assert call.said()[-1] == ORDER_PROMPT
    assert await keys("123") == frames_for(5000)  # the state's inter-digit timeout
    assert call.said()[-1] == "Order numbers have five digits."
    assert await keys("12345") <= 1  # max_digits: complete without '#', at once
    assert "Order 1 2 3 4 5 is shipped." in call.said()


async def test_barge_in_stops_the_agent_within_two_frames(
    acme_spec: AgentSpec, crm: CrmServer, tools: ToolRunner
) -> None:
    call = await start_call(acme_spec, crm, tools)
    leg = call.leg
    await leg.until(lambda: len(leg.audible_ticks()) >= 62, "the agent to be mid-prompt")
    first = await call.say(talk(600), "order status")
    confirmed = first + 2  # webrtcvad: the tone is voiced from its first frame; 3 confirm
    await leg.until(lambda: bool(leg.clears), "the barge-in")
    assert 0 <= leg.clears[0] - confirmed <= 2
    played_frames = len([t for t in leg.audible_ticks() if t < leg.clears[0]])
    await call.until_listening("the answer to the barge-in utterance")
    # Nothing more of the greeting was sent after the clear, until the next reply.
    reply = [t for t in leg.audible_ticks() if t >= leg.clears[0]]
    assert reply and reply[0] > first + 30 + frames_for(700)
    assert call.said()[-1] == ORDER_PROMPT

    words = MAIN_PROMPT[2].split()
    heard_words = len(words) * (played_frames - 50) // call.tts.frames_of(MAIN_PROMPT[2])
    expected = " ".join([*MAIN_PROMPT[:2], *words[:heard_words]])
    assert call.conv.caller.barge_ins == [(call.conv.caller.barge_ins[0][0], expected)]
    call.leg.caller_hangs_up()
    record = await call.ended()
    interrupted = [e for e in record.extra["events"] if e["kind"] == "interrupted"]
    assert [e["played_text"] for e in interrupted] == [expected]
    assert record.extra["counters"]["barge_ins"] == 1


async def test_no_barge_in_where_the_state_forbids_it(
    acme_spec: AgentSpec, crm: CrmServer, tools: ToolRunner
) -> None:
    spec = parse_agent_spec(ACME.read_text().replace("  main:\n", "  main:\n    barge_in: false\n"))
    call = await start_call(spec, crm, tools)
    leg = call.leg
    await leg.until(lambda: len(leg.audible_ticks()) >= 30, "the agent to be mid-prompt")
    await call.say(talk(600), "order status")
    call.expect_turns = call.conv.turns  # no turn is expected from talking over the prompt
    await call.until_listening("the end of the prompt")
    assert leg.clears == []
    assert call.asr.streams == []  # the talk-over was not taken as a turn
    assert len(leg.audible_ticks()) == sum(call.tts.frames_of(t) for t in MAIN_PROMPT)


async def test_early_endpointing_on_a_partial_that_completes_the_grammar(
    acme_spec: AgentSpec, crm: CrmServer, tools: ToolRunner
) -> None:
    call = await start_call(acme_spec, crm, tools)
    await call.until_listening()
    await call.say(talk(600), "order status")
    await call.until_listening("the order number prompt")
    # 60 voiced frames; the stream gets the pre-roll, then the frames from the third voiced
    # one: the last voiced frame is push number PREROLL_FRAMES + 58. The recognizer's
    # partial completes the five digits 15 frames later (after the VAD's talkspurt stop).
    last_push = PREROLL_FRAMES + 58
    heard = Heard(
        "one two three four five",
        partials={40: "one two three", last_push + 15: "one two three four five"},
    )
    first = await call.say(talk(1200), heard)
    last_voiced = first + 59
    await call.until_listening("the order status")
    reply = [t for t in call.leg.audible_ticks() if t > last_voiced]
    assert reply[0] < last_voiced + frames_for(1000)  # sooner than the silence endpoint
    assert "Order 1 2 3 4 5 is shipped." in call.said()
    call.leg.caller_hangs_up()
    record = await call.ended()
    detail = record.extra["turn_details"][2]
    assert detail["endpoint"] == "early"
    assert detail["early_saving_ms"] == 700.0  # 1000 ms silence, ended 15 frames into it
    callers = [t["text"] for t in record.transcript if t["role"] == "caller"]
    assert callers == ["order status", "one two three four five"]  # the turn counted once
    assert record.extra["counters"]["early_endpoints"] == 1


async def test_a_partial_that_does_not_complete_the_grammar_changes_nothing(
    acme_spec: AgentSpec, crm: CrmServer, tools: ToolRunner
) -> None:
    call = await start_call(acme_spec, crm, tools)
    await call.until_listening()
    first = await call.say(talk(600), Heard("order status", partials={20: "order"}))
    await call.until_listening("the order number prompt")
    assert call.asr.streams[0].flushes == 1
    assert call.said()[-1] == ORDER_PROMPT
    assert call.conv.journal.turn_details[-1]["endpoint"] == "silence"
    assert first > 0


async def test_no_input_reprompts_then_escalates(
    acme_spec: AgentSpec, crm: CrmServer, tools: ToolRunner
) -> None:
    call = await start_call(acme_spec, crm, tools)
    await call.until_listening()
    armed = call.leg.ticks
    call.expect_turns = 2
    started = await call.leg.until(lambda: call.conv.turns >= 2, "the no-input turn")
    assert started - armed == frames_for(6000)  # the agent's no_input.timeout_ms
    await call.until_listening("the reprompt")
    assert call.said()[-2:] == [
        "Sorry, I didn't hear anything.",
        "Please say order status, reschedule appointment, account balance, or agent.",
    ]
    record = await call.ended()  # silence again: the escalation says goodbye and hangs up
    assert call.said()[-3:] == ["I still can't hear you.", "Please call again later.", "Goodbye."]
    assert call.leg.hangups == ["no input"]
    assert record.outcome == "hangup"
    assert [d["endpoint"] for d in record.extra["turn_details"]] == [None, "no_input", "no_input"]


async def test_asr_failures_are_a_no_match_and_the_call_goes_on(
    acme_spec: AgentSpec, crm: CrmServer, tools: ToolRunner
) -> None:
    call = await start_call(acme_spec, crm, tools)
    await call.until_listening()
    # The recognizer crashes on flush: the caller hears the no-match reprompt quickly.
    first = await call.say(talk(600), Heard("order status", fail_on_flush=True))
    await call.until_listening("the no-match reprompt")
    assert call.said()[-2:] == [
        "Sorry, I didn't catch that.",
        "Please say order status, reschedule appointment, account balance, or agent.",
    ]
    reply = [t for t in call.leg.audible_ticks() if t > first + 30]
    assert reply[0] - (first + 30) < frames_for(2000)  # no dead air past 2 s
    # The recognizer cannot even open a stream: the same.
    call.asr.fail_open = 1
    await call.say(talk(600))
    await call.until_listening("the second reprompt")
    # And then it works again.
    await call.say(talk(600), "order status")
    await call.until_listening("the order number prompt")
    assert call.said()[-1] == ORDER_PROMPT
    # It fails in the middle of an utterance: the same, in the new state.
    await call.say(talk(600), RuntimeError("worker died"))
    await call.until_listening("the third reprompt")
    agent = [t["text"] for t in call.conv.journal.transcript if t["role"] == "agent"]
    assert agent[-2:] == ["Sorry, I didn't catch that.", ORDER_PROMPT]
    call.leg.caller_hangs_up()
    record = await call.ended()
    assert record.extra["counters"]["asr_errors"] == 3
    assert len(call.asr.streams) == 3  # each failure retired its stream; a new one took over


async def test_a_recognizer_that_never_answers_times_out(
    acme_spec: AgentSpec, crm: CrmServer, tools: ToolRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(listener, "ASR_FINAL_TIMEOUT_S", 0.05)
    call = await start_call(acme_spec, crm, tools)
    await call.until_listening()
    heard = Heard("order status")
    await call.say(talk(600), heard)
    await call.leg.until(lambda: bool(call.asr.streams), "the stream")
    hung: list[bool] = []
    call.asr.streams[0]._flush_impl = lambda: hung.append(True)  # type: ignore[method-assign]
    await call.leg.until(lambda: bool(hung), "the endpoint")
    await asyncio.sleep(0.1)  # real time: the recognizer's deadline is on the loop's clock
    await call.until_listening("the no-match reprompt")
    assert call.said()[-2] == "Sorry, I didn't catch that."
    assert call.conv.journal.counters["asr_errors"] == 1


async def test_tts_failures_retry_then_skip_the_sentence(
    acme_spec: AgentSpec, crm: CrmServer, tools: ToolRunner
) -> None:
    tts = FakeTTS()
    tts.fail = {"Acme": 1, "help you": 2}  # the greeting fails once, "How can I..." twice
    call = await start_call(acme_spec, crm, tools, tts=tts)
    await call.until_listening()
    assert call.said() == [MAIN_PROMPT[0], MAIN_PROMPT[0], MAIN_PROMPT[1], MAIN_PROMPT[1],
                           MAIN_PROMPT[2]]  # fmt: skip
    played = sum(tts.frames_of(t) for t in (MAIN_PROMPT[0], MAIN_PROMPT[2]))
    assert len(call.leg.audible_ticks()) == played  # the second sentence was skipped
    await call.say(talk(600), "order status")
    await call.until_listening("the order number prompt")
    assert call.said()[-1] == ORDER_PROMPT
    call.leg.caller_hangs_up()
    record = await call.ended()
    assert record.extra["counters"]["tts_errors"] == 1  # the provider retried the others
    assert record.extra["counters"]["tts_skipped_sentences"] == 1


async def test_checkpoint_then_restore_after_a_crash(
    acme_spec: AgentSpec, crm: CrmServer, tools: ToolRunner
) -> None:
    sessions = MemorySessionStore()
    call = await start_call(acme_spec, crm, tools, sessions=sessions)
    await call.until_listening()
    await call.say(talk(600), "order status")
    await call.until_listening("the order number prompt")
    saved = await sessions.load("call-1")
    assert saved is not None and saved.version == 2  # after the opening turn and turn 1
    assert saved.flow_state == "order_status"
    assert [t["text"] for t in saved.transcript if t["role"] == "caller"] == ["order status"]

    await call.crash()  # the worker dies mid-call: no goodbye, no delete
    assert call.records.records[0].outcome == "abandoned"
    assert await sessions.load("call-1") is not None

    # The call comes back (a re-INVITE to another worker, a reconnected stream).
    again = await start_call(acme_spec, crm, tools, sessions=sessions, leg=FakeLeg("call-1"))
    await again.until_listening("the resumed prompt")
    assert again.said() == [ORDER_PROMPT]  # picks up where it was, no greeting
    await again.say(talk(1200), "one two three four five")
    await again.until_listening("the order status")
    assert "Order 1 2 3 4 5 is shipped." in again.said()
    assert (await sessions.load("call-1")).version == 4  # type: ignore[union-attr]
    again.leg.caller_hangs_up()
    record = await again.ended()
    callers = [t["text"] for t in record.transcript if t["role"] == "caller"]
    assert callers == ["order status", "one two three four five"]  # both halves of the call
    assert record.extra["restored"] is True
    assert await sessions.load("call-1") is None


class FailingStore(MemorySessionStore):
    def __init__(self) -> None:
        super().__init__()
        self.failures = 0

    async def save(self, session: Session) -> None:
        self.failures += 1
        raise SessionStoreError("redis is down", retryable=True)

    async def load(self, call_id: str) -> Session | None:
        raise SessionStoreError("redis is down", retryable=True)


async def test_a_failing_session_store_never_stops_the_call(
    acme_spec: AgentSpec, crm: CrmServer, tools: ToolRunner
) -> None:
    store = FailingStore()
    call = await start_call(acme_spec, crm, tools, sessions=store)
    await call.until_listening()
    await call.say(talk(600), "order status")
    await call.until_listening("the order number prompt")
    call.leg.caller_hangs_up()
    record = await call.ended()
    assert store.failures == 2
    assert record.extra["counters"]["session_errors"] == 2


async def test_transfer_to_a_person(
    acme_spec: AgentSpec, crm: CrmServer, tools: ToolRunner
) -> None:
    call = await start_call(acme_spec, crm, tools)
    await call.until_listening()
    await call.say(talk(600), "talk to a person")
    record = await call.ended()
    assert call.said()[-1] == "Please hold while I transfer you."
    assert call.leg.transfers == ["sip:agent@127.0.0.1"]
    # The transfer came after the last frame of "please hold" was played.
    assert call.leg.out == deque() and call.leg.hangups == ["transferred"]
    assert record.outcome == "transfer"
    assert record.transfer is not None and record.transfer["ok"] is True
    assert record.transfer["summary"].startswith("Caller asked for a person.")


async def test_a_failed_transfer_says_sorry_and_hangs_up(
    acme_spec: AgentSpec, crm: CrmServer, tools: ToolRunner
) -> None:
    leg = FakeLeg()
    leg.transfer_result = TransferResult(False, 486, "busy")
    call = await start_call(acme_spec, crm, tools, leg=leg)
    await call.until_listening()
    call.leg.press("0")
    record = await call.ended()
    assert call.said()[-1] == "Goodbye."  # the end of TRANSFER_FAILED_TEXT
    assert leg.hangups == ["transfer failed"]
    assert record.outcome == "transfer_failed"
    assert record.transfer is not None
    assert record.transfer == {
        "target": "sip:agent@127.0.0.1", "summary": record.transfer["summary"], "ok": False,
        "status": 486, "detail": "busy",
    }  # fmt: skip


async def test_caller_hangs_up_while_a_tool_is_slow(
    acme_spec: AgentSpec, crm: CrmServer, tools: ToolRunner
) -> None:
    crm.faults.mode, crm.faults.delay_s = "slow", 30.0
    call = await start_call(acme_spec, crm, tools)
    await call.until_listening()
    await call.say(talk(600), "order status")
    await call.until_listening("the order number prompt")
    call.leg.press("12345")
    await call.leg.until(lambda: "One moment while I look that up." in call.said(), "the tool")
    await call.leg.run(50)
    call.leg.caller_hangs_up()
    record = await call.ended()
    assert record.outcome == "caller_hangup"
    assert [t.turn for t in record.turns][-1] == 2


async def test_barge_in_during_a_tool_call_keeps_what_the_turn_says_next(
    acme_spec: AgentSpec, crm: CrmServer, tools: ToolRunner
) -> None:
    crm.faults.mode, crm.faults.delay_s = "slow", 0.1  # within the tool's 1.5 s timeout
    call = await start_call(acme_spec, crm, tools)
    await call.until_listening()
    call.leg.press("1")
    await call.leg.until(lambda: call.said()[-1] == ORDER_PROMPT, "the order number prompt")
    await call.until_listening("the order number prompt to play")
    call.leg.press("12345")
    await call.leg.until(lambda: "One moment while I look that up." in call.said(), "the tool")
    await call.say(talk(300), "")  # "uh huh" over "one moment..."
    await call.leg.until(lambda: bool(call.leg.clears), "the barge-in")
    cut = call.leg.clears[0]
    await asyncio.sleep(0.3)  # real time, for the slow CRM (ticks run far faster than 20 ms)
    await call.leg.until(lambda: "Order 1 2 3 4 5 is shipped." in call.said(), "the status")
    await call.leg.until(lambda: len(call.leg.audible_ticks(cut)) > 0, "the status to play")
    call.leg.caller_hangs_up()
    record = await call.ended()
    played = [e["played_text"] for e in record.extra["events"] if e["kind"] == "interrupted"]
    assert len(played) == 1 and "One moment while I look that up.".startswith(played[0])


@pytest.mark.parametrize(
    ("partials", "endpoint", "saving_ms"),
    [
        # Complete while the caller still talks: judged when the talkspurt stops (10
        # frames of STOP_FRAMES into the 1000 ms silence), and still complete then.
        ({20: "one two three four five"}, "early", 800.0),
        # A passing complete-looking hypothesis, overtaken by one that is not complete
        # (six digits): the turn waits for the silence endpoint and the final.
        ({20: "one two oh three four", 50: "one two oh three four five"}, "silence", None),
    ],
)
async def test_partials_while_the_caller_talks_wait_for_a_pause(
    acme_spec: AgentSpec,
    crm: CrmServer,
    tools: ToolRunner,
    partials: dict[int, str],
    endpoint: str,
    saving_ms: float | None,
) -> None:
    call = await start_call(acme_spec, crm, tools)
    await call.until_listening()
    await call.say(talk(600), "order status")
    await call.until_listening("the order number prompt")
    await call.say(talk(1200), Heard("one two three four five", partials=partials))
    await call.until_listening("the order status")
    assert "Order 1 2 3 4 5 is shipped." in call.said()
    detail = call.conv.journal.turn_details[-1]
    assert (detail["endpoint"], detail["early_saving_ms"]) == (endpoint, saving_ms)


async def test_a_key_pressed_during_a_prompt_cuts_it(
    acme_spec: AgentSpec, crm: CrmServer, tools: ToolRunner
) -> None:
    call = await start_call(acme_spec, crm, tools)
    leg = call.leg
    await leg.until(lambda: len(leg.audible_ticks()) >= 10, "the greeting to be playing")
    call.expect_turns = call.conv.turns + 2  # the barge-in, then the key's turn
    leg.press("1")
    assert leg.clears == [leg.ticks]  # cut in the same tick, before the next frame went out
    await call.until_listening("the order number prompt")
    assert call.said()[-1] == ORDER_PROMPT
    assert call.conv.caller.barge_ins[0][1] == "Thank you"  # 10 frames: two words of five

"""Reply expectations against the agent's transcript, aligned turn by turn.

The scripts are the Acme scenarios (``examples/acme/scenarios``) planned with a seed;
the lab's side of each call (what it said, when each step began, what it heard) is laid
out as ``ScriptRunner`` and the ear would record it against the Acme agent, and the
transcript is what trunkline's records API returns for such a call (entries with
``at``, seconds on the agent's clock, which starts a little before the lab's answer).
"""

from __future__ import annotations

import pathlib
from typing import Any

import pytest

from trunkline.lab import expect
from trunkline.lab.caller import CallTrace, Spoken
from trunkline.lab.ear import Ear
from trunkline.lab.measure import Timeline, fill_timing
from trunkline.lab.results import CallResult
from trunkline.lab.scenario_build import load_scenarios
from trunkline.lab.scenario_plan import plan_call
from trunkline.lab.script import CallScript, CheckUrl, Expect

SCENARIOS = pathlib.Path(__file__).resolve().parents[2] / "examples" / "acme" / "scenarios"
ACME = {s.name: s for s in load_scenarios([SCENARIOS])}
T0 = 50.0
#: The agent's clock runs this far behind the lab's answer (its call starts earlier).
AGENT_LAG = 0.2


def planned(name: str) -> CallScript:
    return plan_call(ACME[name], seed=3)


def lay_out(
    script: CallScript,
    steps_at: list[float],
    spoken: list[tuple[int, str, float, float]],
    heard: list[tuple[float, float]],
    ended: float,
) -> tuple[CallResult, Timeline]:
    ear = Ear()
    ear.frames = 1
    ear.segments = [[T0 + s, T0 + e] for s, e in heard]
    trace = CallTrace(
        answered_at=T0,
        ended_at=T0 + ended,
        spoken=[Spoken(step, kind, "", T0 + a, T0 + b) for step, kind, a, b in spoken],
        step_times=[T0 + t for t in steps_at],
    )
    result = CallResult(0, script.scenario, "sip:x", "sip", 1)
    return result, fill_timing(result, trace, ear, script)


def agent(at: float, text: str) -> dict[str, Any]:
    return {"role": "agent", "text": text, "at": round(at - AGENT_LAG, 3)}


def caller(at: float, text: str) -> dict[str, Any]:
    return {"role": "caller", "text": text, "at": round(at - AGENT_LAG, 3)}


def untimed(transcript: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in e.items() if k != "at"} for e in transcript]


def silent_caller() -> tuple[CallResult, Timeline, CallScript, list[dict[str, Any]]]:
    script = planned("silent-caller")
    # Greeting 0.3-4.0 s (agent time 0.1: the decision to speak, before its TTS); the
    # no-input reprompt 6 s after it, the second silence begins at its onset (the
    # silence's sleep wakes there); the goodbye 6 s after the reprompt, then the agent
    # hangs up.
    result, timeline = lay_out(
        script,
        steps_at=[0.0, 10.0],
        spoken=[],
        heard=[(0.3, 4.0), (10.0, 11.5), (17.5, 21.0)],
        ended=21.2,
    )
    transcript = [
        agent(0.1, "Thank you for calling Acme. How can I help you?"),
        agent(9.9, "Sorry, I didn't hear anything."),
        agent(17.4, "I still can't hear you. Please call again later. Goodbye."),
    ]
    return result, timeline, script, transcript


def test_the_silent_callers_reprompt_answers_its_first_silence() -> None:
    result, timeline, script, transcript = silent_caller()
    expect.check_turns(result, script, timeline, transcript)
    assert [t.kind for t in result.turns] == ["silence", "silence"]
    assert result.turns[0].heard == "Sorry, I didn't hear anything."
    assert result.turns[1].heard.startswith("I still can't hear you")
    assert [t.expect_ok for t in result.turns] == [True, True], [
        t.expect_detail for t in result.turns
    ]
    assert {t.checked_by for t in result.turns} == {"transcript"}


def test_the_old_alignment_by_caller_entries_fails_the_silent_caller() -> None:
    # What check_turns did before reply windows: replies after the k-th caller entry.
    # A silent caller leaves no caller entry, so everything lands in the greeting.
    _, _, _, transcript = silent_caller()
    assert expect.agent_replies(transcript)[1:] == []


def test_untimed_transcripts_fall_back_to_one_entry_per_stretch_of_speech() -> None:
    result, timeline, script, transcript = silent_caller()
    expect.check_turns(result, script, timeline, untimed(transcript))
    assert [t.expect_ok for t in result.turns] == [True, True]


def balance_pin() -> tuple[CallResult, Timeline, CallScript, list[dict[str, Any]]]:
    script = planned("balance-pin")
    said = script.steps[0].text  # type: ignore[union-attr]
    result, timeline = lay_out(
        script,
        steps_at=[0.0, 5.4, 13.0, 18.4],
        spoken=[(0, "say", 4.6, 5.4), (1, "dtmf", 10.4, 11.5), (2, "say", 17.8, 18.4)],
        heard=[(0.3, 3.8), (6.0, 9.5), (12.2, 16.8), (19.0, 21.0)],
        ended=21.1,
    )
    transcript = [
        agent(0.1, "Thank you for calling Acme. How can I help you?"),
        caller(6.0, said),
        agent(6.0, "Please type your four digit pin on the keypad, then press pound."),
        # Key presses leave no caller entry.
        agent(11.9, "Your balance is 42.50 dollars."),
        agent(11.9, "Is there anything else I can help you with?"),
        caller(18.9, "no"),
        agent(18.9, "Thank you for calling Acme. Goodbye."),
    ]
    return result, timeline, script, transcript


@pytest.mark.parametrize("timed", [True, False], ids=["timed", "untimed"])
def test_key_presses_get_the_reply_that_followed_them(timed: bool) -> None:
    result, timeline, script, transcript = balance_pin()
    expect.check_turns(result, script, timeline, transcript if timed else untimed(transcript))
    assert [t.kind for t in result.turns] == ["say", "dtmf", "say"]
    assert "pin on the keypad" in result.turns[0].heard
    assert result.turns[1].heard.startswith("Your balance is 42.50 dollars.")
    assert result.turns[2].heard == "Thank you for calling Acme. Goodbye."
    assert [t.expect_ok for t in result.turns] == [True, True, True], [
        t.expect_detail for t in result.turns
    ]


def test_a_wrong_reply_fails_with_what_was_heard() -> None:
    result, timeline, script, transcript = balance_pin()
    transcript[3] = agent(11.9, "That pin doesn't match our records.")
    expect.check_turns(result, script, timeline, transcript)
    turn = result.turns[1]
    assert turn.expect_ok is False and turn.checked_by == "transcript"
    assert "'your balance is'" in turn.expect_detail and "records" in turn.expect_detail


def test_a_barge_in_reply_is_not_the_greeting() -> None:
    script = planned("barge-in-greeting")
    result, timeline = lay_out(
        script,
        steps_at=[0.0, 3.1, 9.0, 14.0],
        spoken=[(0, "barge_in", 1.5, 2.3), (1, "dtmf", 8.0, 9.0), (2, "say", 13.5, 14.0)],
        heard=[(0.3, 1.9), (3.0, 6.0), (9.6, 12.5), (14.6, 16.0)],
        ended=16.2,
    )
    transcript = [
        agent(0.1, "Thank you for calling Acme. How can I help you? You can say order status"),
        {"role": "agent", "text": "", "interrupted": True, "played_text": "Thank you", "at": 1.7},
        caller(2.8, "order status"),
        agent(2.8, "Please say or type your five digit order number."),
        agent(9.4, "One moment while I look that up."),
        agent(9.5, "Order 2 4 6 8 0 is being prepared. It will ship within two days."),
        caller(14.4, "no"),
        agent(14.4, "Thank you for calling Acme. Goodbye."),
    ]
    expect.check_turns(result, script, timeline, transcript)
    assert [t.expect_ok for t in result.turns] == [True, True, True], [
        t.expect_detail for t in result.turns
    ]
    assert "Thank you" not in result.turns[0].heard  # the interrupted greeting stays there


def test_without_a_transcript_nothing_passes() -> None:
    result, timeline, script, _ = balance_pin()
    expect.check_turns(result, script, timeline, None)
    assert [t.expect_ok for t in result.turns] == [None, None, None]
    assert {t.expect_detail for t in result.turns} == {expect.NO_TRANSCRIPT}
    assert {t.checked_by for t in result.turns} == {""}


def test_reply_matches_contains_and_regex() -> None:
    want = Expect(("shipped", "friday"), r"order 1 ?2 ?3 ?4 ?5 is shipped")
    assert expect.reply_matches(want, "Order 12345 is shipped. It should arrive on Friday.")[0]
    ok, detail = expect.reply_matches(want, "Order 12345 is delivered.")
    assert not ok and "'shipped'" in detail
    ok, detail = expect.reply_matches(want, "Shipped on friday: order 99")
    assert not ok and "does not match" in detail


def test_check_url_results() -> None:
    check = CheckUrl("http://crm/orders/1", path="status", value="shipped")
    assert expect.check_url_result(check, 200, {"status": "shipped"}, "").ok
    assert not expect.check_url_result(check, 404, None, "").ok
    assert "request failed" in expect.check_url_result(check, None, None, "refused").detail
    assert "no 'status'" in expect.check_url_result(check, 200, {"x": 1}, "").detail
    assert expect.json_path({"a": [{"b": 2}]}, "a.0.b") == 2

"""The figures measured after a call, from synthetic timelines (no audio, no clock).

Each test lays out what a caller did (``CallTrace``: its utterances, key presses and
when each script step began, as ``ScriptRunner`` records them) and what it heard (the
ear's segments), then checks turns, reply windows, dead air and caller pauses.
"""

from __future__ import annotations

from trunkline.lab.caller import QUIET_S, CallTrace, Spoken
from trunkline.lab.ear import HANGOVER_S, Ear
from trunkline.lab.measure import fill_timing, quiet_point
from trunkline.lab.results import CallResult
from trunkline.lab.script import CallScript, HangUp, Listen, Press, Say, Silence, Step

T0 = 100.0


def ear_with(*segments: tuple[float, float]) -> Ear:
    ear = Ear()
    ear.frames = 1
    ear.segments = [[T0 + s, T0 + e] for s, e in segments]
    return ear


def trace_with(
    steps_at: list[float], spoken: list[Spoken] | None = None, ended: float | None = None
) -> CallTrace:
    return CallTrace(
        answered_at=T0,
        ended_at=T0 + ended if ended is not None else 0.0,
        spoken=[
            Spoken(s.step, s.kind, s.text, T0 + s.start, T0 + s.end, s.barge_onset)
            for s in spoken or []
        ],
        step_times=[T0 + t for t in steps_at],
    )


def script(*steps: Step, reply_timeout_s: float = 8.0) -> CallScript:
    return CallScript("test", 1, steps=steps, reply_timeout_s=reply_timeout_s)


def new_result() -> CallResult:
    return CallResult(0, "test", "sip:x", "sip", 1)


def test_latency_and_first_word_of_a_plain_dialogue() -> None:
    ear = ear_with((0.3, 2.0), (4.7, 6.0))
    trace = trace_with([0.0, 4.0], [Spoken(0, "say", "order status", 3.1, 4.0)], ended=6.8)
    result = new_result()
    timeline = fill_timing(result, trace, ear, script(Say("order status"), HangUp()))
    assert result.time_to_first_word_ms == 300.0
    [turn] = result.turns
    assert (turn.kind, turn.caller_end_ms, turn.agent_start_ms) == ("say", 4000.0, 4700.0)
    assert turn.latency_ms == 700.0
    assert result.dead_air_ms == [] and result.caller_pauses_ms == []
    assert [w.start - T0 for w in timeline.windows] == [0.0, 4.0]
    assert timeline.window_of(T0 + 4.7) == 1 and timeline.window_of(T0 + 1.0) == 0
    assert result.duration_ms == 6800.0


def test_silence_turns_are_turns_with_their_own_windows() -> None:
    # The silent-caller shape: greeting, then two silences of 8 s; the agent reprompts
    # 6 s after its greeting ends (the silence's sleep wakes at the reprompt, so the
    # second step begins then), says goodbye 6 s after that, and hangs up.
    ear = ear_with((0.3, 1.8), (7.8, 9.5), (15.5, 18.5))
    trace = trace_with([0.0, 7.8], ended=18.6)
    result = new_result()
    timeline = fill_timing(result, trace, ear, script(Silence(8.0), Silence(8.0)))
    assert [(t.index, t.kind) for t in result.turns] == [(0, "silence"), (1, "silence")]
    # Each silence opens once the agent's speech before it is over (plus QUIET_S).
    starts = [round(w.start - T0, 3) for w in timeline.windows]
    assert starts == [0.0, round(1.8 + QUIET_S, 3), round(9.5 + QUIET_S, 3)]
    assert [w.turns for w in timeline.windows] == [(), (0,), (1,)]
    assert timeline.window_of(T0 + 7.8) == 1  # the reprompt answers the first silence
    assert timeline.window_of(T0 + 15.5) == 2  # the goodbye the second
    # Waiting for the reprompt is the caller's own silence, not the agent's dead air.
    assert result.dead_air_ms == []
    assert result.caller_pauses_ms == [6000.0, 6000.0]


def test_dead_air_stops_where_the_caller_stops_waiting() -> None:
    # The agent greets, then never answers. The caller says something, stays silent
    # 5 s after giving up on a reply (8 s), speaks again, and waits 8 s before hanging up.
    ear = ear_with((0.3, 2.0))
    spoken = [Spoken(0, "say", "order status", 3.1, 4.0), Spoken(2, "say", "hello", 25.4, 26.0)]
    trace = trace_with([0.0, 4.0, 17.0, 26.0], spoken, ended=34.0)
    result = new_result()
    fill_timing(
        result, trace, ear, script(Say("order status"), Silence(5.0), Say("hello"), HangUp())
    )
    # Owed: 8 s after "order status" (the silence step's wait), 8 s after "hello" (the
    # hang-up's). Not owed: the 5 s silence and the next step's wait for an answer to
    # an utterance the agent already ignored for 8 s.
    assert result.dead_air_ms == [8000.0, 8000.0]
    assert result.caller_pauses_ms == [13400.0]  # 12.0 -> 25.4: the caller's own time
    assert [t.latency_ms for t in result.turns if t.kind == "say"] == [None, None]


def test_without_the_script_every_gap_to_the_next_action_is_owed() -> None:
    # The old behaviour, kept for callers that have only the trace.
    ear = ear_with((0.3, 2.0))
    spoken = [Spoken(0, "say", "order status", 3.1, 4.0), Spoken(2, "say", "hello", 25.4, 26.0)]
    trace = trace_with([0.0, 4.0, 17.0, 26.0], spoken, ended=34.0)
    result = new_result()
    fill_timing(result, trace, ear)
    assert result.dead_air_ms == [21400.0, 8000.0]
    assert [t.kind for t in result.turns] == ["say", "say"]


def test_a_caller_that_does_not_wait_owes_nothing_to_its_gap() -> None:
    ear = ear_with((0.3, 1.0))
    spoken = [Spoken(0, "say", "one", 2.0, 2.5), Spoken(1, "say", "two", 6.0, 6.5)]
    trace = trace_with([0.0, 2.5], spoken, ended=7.0)
    result = new_result()
    steps = (Say("one"), Say("two", gap_s=3.5, wait_for_agent=False))
    fill_timing(result, trace, ear, script(*steps, reply_timeout_s=8.0))
    assert result.dead_air_ms == []  # no waiting: the 3.5 s are the caller's
    assert result.caller_pauses_ms == [3500.0]


def test_an_agent_that_never_greets_owes_the_greeting_for_one_wait() -> None:
    ear = ear_with()
    trace = trace_with([0.0], ended=20.0)
    result = new_result()
    fill_timing(result, trace, ear, script(Silence(12.0)))
    assert result.time_to_first_word_ms is None
    assert result.dead_air_ms == [8000.0]  # the silence step waited 8 s, then chose silence
    assert result.caller_pauses_ms == [12000.0]


def test_a_listen_after_a_say_shares_its_window() -> None:
    ear = ear_with((0.3, 2.0), (5.0, 7.0))
    spoken = [Spoken(0, "say", "order status", 3.0, 4.0)]
    trace = trace_with([0.0, 4.0], spoken, ended=8.0)
    result = new_result()
    timeline = fill_timing(result, trace, ear, script(Say("order status"), Listen(5.0)))
    assert [t.kind for t in result.turns] == ["say", "listen"]
    assert [w.turns for w in timeline.windows] == [(), (0, 1)]
    assert timeline.window_of_turn(1) == 1


def test_a_listen_first_hears_the_greeting_and_dtmf_opens_a_window() -> None:
    ear = ear_with((0.3, 2.0), (5.0, 7.0))
    spoken = [Spoken(1, "dtmf", "1#", 3.0, 4.0)]
    trace = trace_with([0.0, 2.7], spoken, ended=8.0)
    result = new_result()
    timeline = fill_timing(result, trace, ear, script(Listen(5.0), Press("1#")))
    assert [w.turns for w in timeline.windows] == [(0,), (1,)]
    assert result.turns[1].latency_ms == 1000.0
    assert timeline.speaks_in(0) == 1 and timeline.speaks_in(1) == 1
    assert timeline.bounds(1) == (T0 + 3.0, T0 + 8.0)  # from the first digit


def test_an_answer_before_the_last_digit_is_the_answer_to_the_key_presses() -> None:
    # "1234#": the agent has its four digits at 3.6 and answers at 3.8, before the '#'.
    ear = ear_with((0.3, 2.0), (3.8, 5.0))
    spoken = [Spoken(0, "dtmf", "1234#", 3.0, 4.0)]
    trace = trace_with([2.7], spoken, ended=6.0)
    timeline = fill_timing(new_result(), trace, ear, script(Press("1234#")))
    assert timeline.window_of(T0 + 3.8) == timeline.window_of_turn(0) == 1
    assert timeline.speaks_in(0) == 1 and timeline.speaks_in(1) == 1


def test_quiet_point_replays_the_runner() -> None:
    segments = [(1.0, 2.0), (2.5, 3.0), (9.0, 10.0)]
    # Speech already started after `since`: wait for the quiet after it (2.5 < 2.0 + 0.7).
    assert quiet_point(segments, 0.0, 1.5, 8.0, HANGOVER_S) == 3.0 + QUIET_S
    # Nothing after `since` and nothing under way: wait for the next onset.
    assert quiet_point(segments, 4.0, 4.0, 8.0, HANGOVER_S) == 10.0 + QUIET_S
    # ... but no longer than the timeout.
    assert quiet_point(segments, 4.0, 4.0, 2.0, HANGOVER_S) == 6.0
    assert quiet_point([], 0.0, 1.0, 8.0, HANGOVER_S) == 9.0

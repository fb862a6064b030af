"""From what happened on the line to the caller's figures (pure: no I/O, no clock).

Every figure here is computed after the call from two timelines on one clock: what the
caller did (``CallTrace.spoken``, ``CallTrace.step_times``) and what it heard
(``Ear.segments``).

- **Turn latency**: the caller's last speech sample (or last digit) to the first agent
  speech that *starts* after it, if that comes before the caller's next action.
- **Time to first word**: answer to the agent's first speech, if it came before the
  caller's first action.
- **Barge-in reaction**: the caller's speech onset to the end of the agent speech that
  was playing then.
- **Talk-over**: agent speech during the caller's own speech, in total.
- **Dead air**: every wait *owed by the agent* longer than ``DEAD_AIR_S``: from the
  answer or the end of a caller's utterance (or digits) to the agent's next speech, cut
  where the caller stopped waiting (its reply timeout, or the next step when it does not
  wait). A caller that is silent on purpose (a ``silence`` turn, its think-time gap, the
  time after it gave up on a reply) owes the agent nothing: those stretches are
  **caller pauses**, reported apart when longer than ``DEAD_AIR_S``.

Reply windows
-------------
Every turn that can carry a reply expectation (``say``, ``dtmf``, ``barge_in``,
``silence``, ``listen``) owns a window of the timeline: the agent speech that *starts*
in it is the agent's answer to that turn. Windows partition the call from the answer
on, in order: the greeting's window first, then one per turn, each running to the next
one's start.

- ``say``/``barge_in``: from the caller's last speech sample; ``dtmf``: from the first
  digit (an agent may answer before the last one: a PIN complete at its fourth digit,
  before the caller's ``#``).
- ``silence``: from the moment the caller went quiet on purpose, i.e. once the agent's
  previous speech was over (the script runner first waits for the agent to finish, as
  ``ScriptRunner._agent_done`` does; that moment is rebuilt here from the ear's
  segments). A no-input reprompt therefore lands in the silence's window, not in the
  reply window of the turn before.
- ``listen``: from the step's start; a listen with no agent speech started since the
  previous window opened shares that window (``Say`` then ``Listen`` both hear the
  reply to the ``Say``).

:mod:`trunkline.lab.expect` assigns transcript entries to these windows and
:mod:`trunkline.lab.kws` cuts the received audio along them.
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass, field

from trunkline.lab.caller import QUIET_S, CallTrace, Spoken
from trunkline.lab.ear import Ear
from trunkline.lab.results import CallResult, TurnResult
from trunkline.lab.script import CallScript, HangUp, Listen, Press, Say, Silence, Step

#: A silence the caller waits through that is longer than this is dead air (ITU-T and
#: contact-centre practice put the point where callers ask "hello?" at about 2 s).
DEAD_AIR_S = 2.0


def _ms(seconds: float) -> float:
    return round(seconds * 1000.0, 2)


@dataclass(frozen=True, slots=True)
class ReplyWindow:
    """A stretch of the call whose agent speech answers ``turns``.

    Attributes:
        start: where it opens (lab clock); it runs to the next window's start.
        turns: positions in ``CallResult.turns`` answered by what starts here; empty for
            the greeting's window.
    """

    start: float
    turns: tuple[int, ...] = ()


@dataclass(slots=True)
class Timeline:
    """The call's reply windows and the agent's speech, on the lab's clock.

    Attributes:
        t0: the answer.
        end: the call's end.
        windows: in time order, the greeting's first.
        segments: the agent's stretches of speech ``(start, end)``.
    """

    t0: float
    end: float
    windows: list[ReplyWindow] = field(default_factory=list)
    segments: list[tuple[float, float]] = field(default_factory=list)

    def window_of(self, t: float) -> int:
        """The index of the window ``t`` falls in (0, the greeting's, for earlier times)."""
        starts = [w.start for w in self.windows]
        return max(0, bisect_right(starts, t) - 1)

    def bounds(self, index: int) -> tuple[float, float]:
        """``[start, end)`` of window ``index``."""
        start = self.windows[index].start
        end = self.windows[index + 1].start if index + 1 < len(self.windows) else self.end
        return start, max(start, end)

    def speaks_in(self, index: int) -> int:
        """How many agent speech stretches start in window ``index``."""
        lo, hi = self.bounds(index)
        return sum(1 for start, _ in self.segments if lo <= start < hi)

    def window_of_turn(self, turn: int) -> int | None:
        """The window whose speech answers ``result.turns[turn]``."""
        for i, window in enumerate(self.windows):
            if turn in window.turns:
                return i
        return None


def _wait_s(step: Step, script: CallScript) -> float:
    """How long the caller waits for the agent when ``step`` begins (0: not at all)."""
    if isinstance(step, Listen):
        return step.timeout_s
    if isinstance(step, Say | Press | HangUp) and not step.wait_for_agent:
        return 0.0
    return script.reply_timeout_s


def quiet_point(
    segments: list[tuple[float, float]],
    since: float,
    begin: float,
    timeout: float,
    hangover_s: float,
) -> float:
    """When a caller that began waiting at ``begin`` decided the agent had finished.

    The script runner's rule (``ScriptRunner._agent_done``) replayed on the segments:
    unless agent speech started after ``since`` (the caller's last action) or is under
    way at ``begin``, wait for some, at most ``timeout``; then wait until ``QUIET_S``
    has passed without speech.
    """
    onset = next((s for s, _ in segments if s >= since), None)
    speaking = any(s <= begin and begin - e < hangover_s for s, e in segments)
    if (onset is not None and onset <= begin) or speaking:
        t = begin
    elif onset is not None and onset <= begin + timeout:
        t = onset
    else:
        return begin + timeout
    while True:
        end = max((e for s, e in segments if s <= t), default=t - QUIET_S)
        if t >= end + QUIET_S:
            return t
        t = end + QUIET_S


def fill_timing(
    result: CallResult, trace: CallTrace, ear: Ear, script: CallScript | None = None
) -> Timeline:
    """Turns, latencies, time to first word, barge-in, talk-over, dead air and caller
    pauses into ``result``; returns the call's reply windows.

    Args:
        script: the call's script; without it only the caller's utterances and digits
            become turns (silence and listen steps are known from the script alone).
    """
    t0 = trace.answered_at
    end_of_call = trace.ended_at or (ear.last_end() or t0)
    segments = [(s, e) for s, e in ear.segments]
    spoken = trace.spoken
    first_action = spoken[0].start if spoken else end_of_call
    first = ear.onset_after(t0)
    if first is not None and first < first_action:
        result.time_to_first_word_ms = _ms(first - t0)
    by_step = {s.step: s for s in spoken}
    timeline = Timeline(t0, end_of_call, [ReplyWindow(t0)], segments)
    turns: list[TurnResult] = []
    steps = script.steps if script is not None else ()
    last_action_end = t0
    indexes = sorted(set(by_step) | {i for i in range(len(trace.step_times)) if i < len(steps)})
    for i in indexes:
        step = steps[i] if i < len(steps) else None
        said = by_step.get(i)
        if said is not None:
            turn = _spoken_turn(said, spoken, t0, end_of_call, ear)
            # Key presses: from the first digit, since an agent may rightly answer before
            # the last one (a PIN complete at its fourth digit, before the caller's '#').
            opens = said.start if said.kind == "dtmf" else said.end
            last_action_end = said.end
        elif isinstance(step, Silence | Listen):
            turn = TurnResult(index=i, kind="silence" if isinstance(step, Silence) else "listen")
            begin = trace.step_times[i]
            if isinstance(step, Silence):
                assert script is not None  # steps come from it
                opens = quiet_point(
                    segments, last_action_end, begin, _wait_s(step, script), ear.hangover_s
                )
            else:
                opens = begin
        else:
            continue  # a hang-up, or a step that never got to speak
        position = len(turns)
        turns.append(turn)
        last = timeline.windows[-1]
        shares = (
            isinstance(step, Listen)
            and said is None
            and not any(last.start <= s < opens for s, _ in segments)
        )
        if shares or opens <= last.start:
            timeline.windows[-1] = ReplyWindow(last.start, (*last.turns, position))
        else:
            timeline.windows.append(ReplyWindow(opens, (position,)))
    result.turns = turns
    result.talk_over_ms = _ms(sum(ear.speech_between(s.start, s.end) for s in spoken))
    owed = _owed_waits(trace, ear, script, end_of_call)
    result.dead_air_ms = [_ms(b - a) for a, b in owed if b - a > DEAD_AIR_S]
    result.caller_pauses_ms = [
        _ms(b - a) for a, b in _quiet_gaps(trace, segments, owed, end_of_call) if b - a > DEAD_AIR_S
    ]
    if trace.ended_at:
        result.duration_ms = _ms(trace.ended_at - t0)
    return timeline


def _spoken_turn(
    said: Spoken, spoken: list[Spoken], t0: float, end_of_call: float, ear: Ear
) -> TurnResult:
    """Latency and barge-in reaction of one utterance or key press."""
    turn = TurnResult(index=said.step, kind=said.kind, text=said.text)
    n = spoken.index(said)
    next_action = spoken[n + 1].start if n + 1 < len(spoken) else end_of_call
    turn.caller_end_ms = _ms(said.end - t0)
    reply = ear.onset_after(said.end)
    if reply is not None and reply < next_action:
        turn.agent_start_ms = _ms(reply - t0)
        turn.latency_ms = _ms(reply - said.end)
    if said.barge_onset is not None:
        stopped = ear.end_after(said.barge_onset, end_of_call + ear.hangover_s)
        if stopped is not None and stopped >= said.barge_onset:
            turn.barge_reaction_ms = _ms(stopped - said.barge_onset)
    return turn


def _owed_waits(
    trace: CallTrace, ear: Ear, script: CallScript | None, end_of_call: float
) -> list[tuple[float, float]]:
    """``(from, to)`` of every stretch in which the caller waited on the agent's speech.

    From the answer and from the end of each utterance or key press, to the agent's
    next speech onset, or else to where the caller stopped waiting: the next step's
    start plus its wait (``reply_timeout_s``, a listen's ``timeout_s``, nothing for a
    step that does not wait), never past the caller's next action or the call's end.
    """
    steps = script.steps if script is not None else ()
    starts = trace.step_times
    spoken = trace.spoken
    # Each wait starts at the answer or at the end of an action; the step after it is
    # the one whose start (plus its wait) says when the caller stopped waiting.
    sources = [(trace.answered_at, 0)] + [(s.end, s.step + 1) for s in spoken]
    waits: list[tuple[float, float]] = []
    for n, (since, next_step) in enumerate(sources):
        limit = min(spoken[n].start if n < len(spoken) else end_of_call, end_of_call)
        if script is not None:
            if next_step < min(len(steps), len(starts)):
                gave_up = max(since, starts[next_step]) + _wait_s(steps[next_step], script)
                limit = min(limit, gave_up)
            elif next_step >= len(steps):  # the script is over: the runner's last wait
                limit = min(limit, since + script.reply_timeout_s)
        reply = ear.onset_after(since)
        until = reply if reply is not None and reply < limit else limit
        if until > since:
            waits.append((since, until))
    return waits


def _quiet_gaps(
    trace: CallTrace,
    segments: list[tuple[float, float]],
    owed: list[tuple[float, float]],
    end_of_call: float,
) -> list[tuple[float, float]]:
    """Stretches in which neither side spoke and the agent owed nothing."""
    busy = sorted([(s.start, s.end) for s in trace.spoken] + list(segments) + list(owed))
    gaps: list[tuple[float, float]] = []
    cursor = trace.answered_at
    for start, end in busy:
        if start > cursor:
            gaps.append((cursor, min(start, end_of_call)))
        cursor = max(cursor, end)
    if end_of_call > cursor:
        gaps.append((cursor, end_of_call))
    return [(a, b) for a, b in gaps if b > a]

"""From what happened on the line to the caller's figures (pure: no I/O, no clock).

Every figure here is computed after the call from two timelines on one clock: what the
caller said (``CallTrace.spoken``) and what it heard (``Ear.segments``).

- **Turn latency**: the caller's last speech sample (or last digit) to the first agent
  speech that *starts* after it, if that comes before the caller's next action.
- **Time to first word**: answer to the agent's first speech, if it came before the
  caller's first action.
- **Barge-in reaction**: the caller's speech onset to the end of the agent speech that
  was playing then.
- **Talk-over**: agent speech during the caller's own speech, in total.
- **Dead air**: every wait on the agent longer than ``DEAD_AIR_S``: from the answer or a
  caller turn to the agent's next speech (or to the caller's next action or hang-up,
  when the agent never spoke).
"""

from __future__ import annotations

from trunkline.lab.caller import CallTrace
from trunkline.lab.ear import Ear
from trunkline.lab.results import CallResult, TurnResult

#: A silence the caller waits through that is longer than this is dead air (ITU-T and
#: contact-centre practice put the point where callers ask "hello?" at about 2 s).
DEAD_AIR_S = 2.0


def _ms(seconds: float) -> float:
    return round(seconds * 1000.0, 2)


def fill_timing(result: CallResult, trace: CallTrace, ear: Ear) -> None:
    """Turn latencies, time to first word, barge-in, talk-over and dead air into ``result``."""
    t0 = trace.answered_at
    end_of_call = trace.ended_at or (ear.last_end() or t0)
    spoken = trace.spoken
    first_action = spoken[0].start if spoken else end_of_call
    first = ear.onset_after(t0)
    if first is not None and first < first_action:
        result.time_to_first_word_ms = _ms(first - t0)
    waits: list[tuple[float, float | None, float]] = [(t0, first, first_action)]
    turns: list[TurnResult] = []
    for i, said in enumerate(spoken):
        next_action = spoken[i + 1].start if i + 1 < len(spoken) else end_of_call
        turn = TurnResult(index=said.step, kind=said.kind, text=said.text)
        turn.caller_end_ms = _ms(said.end - t0)
        reply = ear.onset_after(said.end)
        if reply is not None and reply < next_action:
            turn.agent_start_ms = _ms(reply - t0)
            turn.latency_ms = _ms(reply - said.end)
        else:
            reply = None
        if said.barge_onset is not None:
            stopped = ear.end_after(said.barge_onset, end_of_call + ear.hangover_s)
            if stopped is not None and stopped >= said.barge_onset:
                turn.barge_reaction_ms = _ms(stopped - said.barge_onset)
        waits.append((said.end, reply, next_action))
        turns.append(turn)
    result.turns = turns
    result.talk_over_ms = _ms(sum(ear.speech_between(s.start, s.end) for s in spoken))
    dead: list[float] = []
    for since, reply, until in waits:
        gap = (reply if reply is not None else until) - since
        if gap > DEAD_AIR_S:
            dead.append(_ms(gap))
    result.dead_air_ms = dead
    if trace.ended_at:
        result.duration_ms = _ms(trace.ended_at - t0)

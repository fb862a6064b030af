"""Checking a call against its expectations (pure; the engine fetches what is needed).

The agent's words come from its transcript, where the agent exposes one (trunkline's
records API does: ``GET /calls/{call_id}``). Its entries are ``{"role": "agent" |
"caller", "text": ..., "at": seconds since the call started}`` in order.

Which words answer which turn
-----------------------------
Each turn owns a reply window of the lab's timeline (:mod:`trunkline.lab.measure`:
the greeting's, then one per utterance, key press, silence and listen). An agent entry
belongs to the window in which its audio started:

- **With times** (every agent entry has a numeric ``at``, trunkline's do), the agent's
  clock is tied to the lab's by its first entry: that is the first speech the lab heard.
  Each later entry is placed at ``at`` plus that offset and snapped forward to the start
  of the agent speech it became (an entry is written when the agent decides to speak,
  its audio follows after the TTS's latency), at most ``SNAP_S`` later. A reprompt after
  a caller's silence, or the answer to key presses (which leave no caller entry),
  therefore lands in that turn's window.
- **Without times**, caller entries split the transcript: the k-th caller entry is the
  k-th utterance the lab spoke, and the agent entries after it go to that utterance's
  window and to the windows of the key presses, silences and listens that followed it,
  one stretch of heard speech per entry in order, the last window taking the rest. This
  is a fallback: a recogniser that split or dropped an utterance shifts it.

Where no transcript is available, ``contains`` expectations can be checked by keyword
spotting on the received audio (:mod:`trunkline.lab.kws`); until then, or where that is
impossible (a regex, words the spotter does not know), the turn is reported as not
checked (``expect_ok`` stays None, with the reason), never as passed.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from trunkline.lab.measure import Timeline
from trunkline.lab.results import CallResult, ExpectationResult
from trunkline.lab.script import CallScript, CheckUrl, Expect

#: How far past its estimated time an agent entry is moved to the start of the speech it
#: became: longer than any TTS's time to first audio, shorter than a turn.
SNAP_S = 3.0
#: The detail of a reply expectation that nothing could check (yet).
NO_TRANSCRIPT = "not checked: the target exposes no transcript"

#: Turn kinds whose caller entry the agent's transcript holds (speech it recognised).
_SPEECH_KINDS = ("say", "barge_in")


def _agent_text(entry: Mapping[str, Any]) -> str:
    """The words of an agent entry; an interruption marker adds none (its played part
    is already in the entry it interrupted)."""
    if entry.get("interrupted") and not entry.get("text"):
        return ""
    return str(entry.get("text") or entry.get("played_text") or "")


def agent_replies(transcript: Sequence[Mapping[str, Any]]) -> list[str]:
    """``[greeting, reply to caller entry 1, reply to 2, ...]`` from a transcript."""
    replies = [""]
    for entry in transcript:
        role = entry.get("role")
        text = _agent_text(entry)
        if role == "caller":
            replies.append("")
        elif role == "agent" and text:
            replies[-1] = f"{replies[-1]} {text}".strip()
    return replies


def caller_texts(transcript: Sequence[Mapping[str, Any]]) -> list[str]:
    """What the agent's recogniser heard the caller say, utterance by utterance."""
    return [str(e.get("text") or "") for e in transcript if e.get("role") == "caller"]


def window_replies(
    timeline: Timeline, result: CallResult, transcript: Sequence[Mapping[str, Any]]
) -> list[str]:
    """The agent's words per reply window of ``timeline`` (see the module docstring)."""
    texts: list[list[str]] = [[] for _ in timeline.windows]
    agent = [
        (e.get("at"), _agent_text(e))
        for e in transcript
        if e.get("role") == "agent" and _agent_text(e)
    ]
    timed = all(isinstance(at, int | float) and not isinstance(at, bool) for at, _ in agent)
    heard = [s for s, _ in timeline.segments if s >= timeline.t0]
    if agent and timed and heard:
        offset = heard[0] - float(agent[0][0])  # type: ignore[arg-type]
        for at, text in agent:
            t = _snap(timeline, float(at) + offset)  # type: ignore[arg-type]
            texts[timeline.window_of(t)].append(text)
    else:
        _by_caller_entries(timeline, result, transcript, texts)
    return [" ".join(t) for t in texts]


def _snap(timeline: Timeline, t: float) -> float:
    """``t``, or the start of the next speech when ``t`` falls in a silence."""
    for start, end in timeline.segments:
        if start <= t <= end:
            return t
        if start > t:
            return start if start - t <= SNAP_S else t
    return t


def _by_caller_entries(
    timeline: Timeline,
    result: CallResult,
    transcript: Sequence[Mapping[str, Any]],
    texts: list[list[str]],
) -> None:
    """The fallback for transcripts without times: caller entries are the anchors."""
    # Windows that start a group: the greeting's, then each recognised utterance's.
    anchors = [0]
    for position, turn in enumerate(result.turns):
        window = timeline.window_of_turn(position)
        if turn.kind in _SPEECH_KINDS and window is not None and window > anchors[-1]:
            anchors.append(window)
    groups: list[list[str]] = [[]]
    for entry in transcript:
        if entry.get("role") == "caller":
            groups.append([])
        elif entry.get("role") == "agent" and _agent_text(entry):
            groups[-1].append(_agent_text(entry))
    for g, entries in enumerate(groups):
        if not entries:
            continue
        if g >= len(anchors):  # more caller entries than utterances: keep the last
            texts[anchors[-1]].extend(entries)
            continue
        last = anchors[g + 1] if g + 1 < len(anchors) else len(timeline.windows)
        speaking = [w for w in range(anchors[g], last) if timeline.speaks_in(w)]
        if not speaking:
            texts[anchors[g]].extend(entries)
            continue
        rest = list(entries)
        for w in speaking[:-1]:
            take = max(1, timeline.speaks_in(w))
            texts[w].extend(rest[:take])
            rest = rest[take:]
        texts[speaking[-1]].extend(rest)


def reply_matches(expect: Expect, heard: str) -> tuple[bool, str]:
    """Whether ``heard`` satisfies ``expect``; the reason when it does not."""
    lowered = heard.lower()
    missing = [word for word in expect.contains if word.lower() not in lowered]
    if missing:
        return False, f"reply lacks {', '.join(repr(m) for m in missing)}: {heard!r}"
    if expect.matches is not None and re.search(expect.matches, heard, re.IGNORECASE) is None:
        return False, f"reply does not match /{expect.matches}/: {heard!r}"
    return True, ""


def turn_expectation(script: CallScript, step_index: int) -> Expect | None:
    """The reply expectation of the script's step ``step_index``, if any."""
    if not 0 <= step_index < len(script.steps):
        return None
    return getattr(script.steps[step_index], "expect", None)


def check_turns(
    result: CallResult,
    script: CallScript,
    timeline: Timeline,
    transcript: Sequence[Mapping[str, Any]] | None,
) -> None:
    """Fill each turn's ``heard``/``expect_ok`` from the transcript, window by window.

    Without a transcript, turns with an expectation get ``NO_TRANSCRIPT`` as their
    detail (keyword spotting may check them afterwards).
    """
    replies = window_replies(timeline, result, transcript) if transcript is not None else None
    for position, turn in enumerate(result.turns):
        window = timeline.window_of_turn(position)
        if replies is not None and window is not None:
            turn.heard = replies[window]
        expect = turn_expectation(script, turn.index)
        if expect is None:
            continue
        if replies is None:
            turn.expect_detail = NO_TRANSCRIPT
            continue
        turn.expect_ok, turn.expect_detail = reply_matches(expect, turn.heard)
        turn.checked_by = "transcript"


def json_path(doc: object, path: str) -> object:
    """``a.b.0.c`` into nested dicts and lists; raises KeyError when absent."""
    node = doc
    for part in filter(None, path.split(".")):
        if isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        elif isinstance(node, dict) and part in node:
            node = node[part]
        else:
            raise KeyError(path)
    return node


def check_url_result(
    check: CheckUrl, status: int | None, body: object, error: str
) -> ExpectationResult:
    """Judge one check URL's answer (``status`` None when the request itself failed)."""
    name = f"check {check.url}"
    if status is None:
        return ExpectationResult(name, False, f"request failed: {error}")
    if status != check.status:
        return ExpectationResult(name, False, f"status {status}, expected {check.status}")
    if not check.path:
        return ExpectationResult(name, True)
    try:
        value = json_path(body, check.path)
    except KeyError:
        return ExpectationResult(name, False, f"no {check.path!r} in the answer")
    if check.value is not None and value != check.value:
        return ExpectationResult(name, False, f"{check.path} = {value!r}, expected {check.value!r}")
    return ExpectationResult(name, True)


def check_call(result: CallResult, script: CallScript) -> None:
    """Call-level expectations (transfer, hang-up side, duration) into ``result``."""
    want = script.expect
    out = result.expectations
    if want.transfer is not None:
        ok = result.transfer_requested == want.transfer
        detail = "" if ok else f"transfer requested: {result.transfer_requested}"
        if ok and want.transfer and want.transfer_target is not None:
            ok = want.transfer_target in result.transfer_target
            detail = "" if ok else f"transferred to {result.transfer_target!r}"
        out.append(ExpectationResult("transfer", ok, detail))
    if want.hangup_by is not None:
        ok = result.hangup_by == want.hangup_by
        out.append(
            ExpectationResult("hangup_by", ok, "" if ok else f"hung up by {result.hangup_by}")
        )
    if want.max_duration_s is not None and result.duration_ms is not None:
        ok = result.duration_ms <= want.max_duration_s * 1000
        out.append(
            ExpectationResult("max_duration", ok, "" if ok else f"{result.duration_ms:.0f} ms")
        )

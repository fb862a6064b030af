"""Checking a call against its expectations (pure; the engine fetches what is needed).

The agent's words come from its transcript, where the agent exposes one (trunkline's
records API does: ``GET /calls/{call_id}``). Its entries are ``{"role": "agent" |
"caller", "text": ...}`` in order; the agent's reply to the caller's k-th utterance is
everything the agent said after the k-th caller entry and before the next.

Where no transcript is available, reply expectations cannot be checked honestly:
spotting keywords in the received audio would need a recogniser in the lab for every
call, which the lab does not run. Such an expectation is reported as not checked
(``expect_ok`` stays None, with the reason), never as passed.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from trunkline.lab.results import CallResult, ExpectationResult
from trunkline.lab.script import CallScript, CheckUrl, Expect


def agent_replies(transcript: Sequence[Mapping[str, Any]]) -> list[str]:
    """``[greeting, reply to caller utterance 1, reply to 2, ...]`` from a transcript."""
    replies = [""]
    for entry in transcript:
        role = entry.get("role")
        text = str(entry.get("text") or entry.get("played_text") or "")
        if role == "caller":
            replies.append("")
        elif role == "agent" and text:
            replies[-1] = f"{replies[-1]} {text}".strip()
    return replies


def caller_texts(transcript: Sequence[Mapping[str, Any]]) -> list[str]:
    """What the agent's recogniser heard the caller say, utterance by utterance."""
    return [str(e.get("text") or "") for e in transcript if e.get("role") == "caller"]


def reply_matches(expect: Expect, heard: str) -> tuple[bool, str]:
    """Whether ``heard`` satisfies ``expect``; the reason when it does not."""
    lowered = heard.lower()
    missing = [word for word in expect.contains if word.lower() not in lowered]
    if missing:
        return False, f"reply lacks {', '.join(repr(m) for m in missing)}: {heard!r}"
    if expect.matches is not None and re.search(expect.matches, heard, re.IGNORECASE) is None:
        return False, f"reply does not match /{expect.matches}/: {heard!r}"
    return True, ""


def check_turns(
    result: CallResult, script: CallScript, transcript: Sequence[Mapping[str, Any]] | None
) -> None:
    """Fill each turn's ``heard``/``expect_ok`` from the transcript."""
    replies = agent_replies(transcript) if transcript is not None else None
    for n, turn in enumerate(result.turns):
        step = script.steps[turn.index]
        expect = getattr(step, "expect", None)
        if replies is not None and n + 1 < len(replies):
            turn.heard = replies[n + 1]
        if expect is None:
            continue
        if replies is None:
            turn.expect_detail = "not checked: the target exposes no transcript"
            continue
        turn.expect_ok, turn.expect_detail = reply_matches(expect, turn.heard)


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

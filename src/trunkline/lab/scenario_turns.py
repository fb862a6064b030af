"""Reading a scenario's ``turns`` and ``expect`` sections (issues recorded, never raised).

A turn is a mapping with exactly one verb (``say``, ``dtmf``, ``silence``, ``barge_in``,
``hangup``), or ``wait_for_agent`` alone (listen only), plus the verb's extra fields and
an optional ``expect``. ``wait_for_agent`` beside ``say`` or ``dtmf`` is the boolean
"wait until the agent has finished speaking first" (default true).
"""

from __future__ import annotations

import re
import string
import urllib.parse
from typing import Any

from trunkline.agent.spec_checks import ShapeBuilder
from trunkline.agent.spec_loader import Path
from trunkline.lab.impairment_spec import describe_kind, number
from trunkline.lab.scenario import (
    BargeInTurn,
    DtmfTurn,
    Expectations,
    HangupSide,
    HangupTurn,
    ListenTurn,
    ReplyExpectation,
    SayTurn,
    SilenceTurn,
    Turn,
    UrlCheck,
)

# A scripted call of more than 200 turns is a load generator, not a conversation.
MAX_TURNS = 200
MAX_VARIANTS = 50
MAX_TEXT_CHARS = 500  # about 30 s of speech: longer is a monologue, not a turn
MAX_PATTERN_CHARS = 500
MAX_DTMF_KEYS = 64
MAX_SILENCE_S = 300.0
MAX_WAIT_S = 300.0
MAX_CALL_S = 3600.0
MAX_INTER_DIGIT_MS = 5_000
MAX_BARGE_DELAY_MS = 30_000
# A listen-only turn may sit through a slow tool call; 15 s is generous for one reply.
DEFAULT_LISTEN_S = 15.0
# A key press of 100 ms and a pause of 150 ms: a brisk human on a keypad.
DEFAULT_INTER_DIGIT_MS = 250
# Placeholders the lab fills in a check_url for each call (percent-encoded).
BUILTIN_PLACEHOLDERS = ("call_id", "scenario", "seed", "index")

_KEYS = re.compile(r"^[0-9*#A-D]+$")
_VERBS = ("say", "dtmf", "silence", "barge_in", "hangup")
_EXTRAS = {
    "say": {"wait_for_agent", "expect"},
    "dtmf": {"inter_digit_ms", "wait_for_agent", "expect"},
    "silence": {"expect"},
    "barge_in": {"expect"},
    "hangup": {"wait_for_agent"},
    "wait_for_agent": {"expect"},
}


def build_turns(b: ShapeBuilder, path: Path, value: Any) -> tuple[Turn, ...] | None:
    """The turn list; None when missing or not a list (already reported)."""
    if value is None:
        return None  # "missing required field 'turns'" is reported by the caller
    items = b.list_of(path, value)
    if isinstance(value, list) and not items:
        b.err(path, "a scenario needs at least one turn")
    if len(items) > MAX_TURNS:
        b.err(path, f"{len(items)} turns; at most {MAX_TURNS}")
        return None
    out: list[Turn] = []
    for i, item in enumerate(items):
        if out and isinstance(out[-1], HangupTurn):
            b.err((*path, i), "unreachable: the caller has already hung up")
            break
        turn = _turn(b, (*path, i), item)
        if turn is not None:
            out.append(turn)
    return tuple(out) if isinstance(value, list) else None


def _turn(b: ShapeBuilder, path: Path, item: Any) -> Turn | None:
    if item == "hangup":
        return HangupTurn(True, b.line(path))
    m = b.mapping(path, item, what="a turn such as {say: ...} or {dtmf: ...}")
    if m is None:
        return None
    verbs = [k for k in m if k in _VERBS]
    if not verbs and "wait_for_agent" in m:
        verbs = ["wait_for_agent"]
    if len(verbs) != 1:
        found = ", ".join(verbs) if verbs else "none"
        b.err(path, f"a turn needs exactly one of {', '.join(_VERBS)} (found {found})")
        return None
    verb = verbs[0]
    b.keys(path, m, {verb, *_EXTRAS[verb]})
    vpath = (*path, verb)
    line = b.line(vpath)
    expect = _reply(b, (*path, "expect"), m["expect"]) if "expect" in m else None
    wait = True
    if verb != "wait_for_agent":
        wait = b.boolean((*path, "wait_for_agent"), m.get("wait_for_agent"), True)
    if verb == "say":
        variants = _variants(b, vpath, m[verb])
        return SayTurn(variants, wait, expect, line) if variants else None
    if verb == "dtmf":
        digits = _digits(b, vpath, m[verb])
        gap = b.integer((*path, "inter_digit_ms"), m.get("inter_digit_ms"), 0, MAX_INTER_DIGIT_MS)
        if digits is None:
            return None
        gap = gap if gap is not None else DEFAULT_INTER_DIGIT_MS
        return DtmfTurn(digits, gap, wait, expect, line)
    if verb == "silence":
        seconds = number(b, vpath, m[verb], 0.1, MAX_SILENCE_S, required=True)
        return SilenceTurn(seconds, expect, line) if seconds is not None else None
    if verb == "barge_in":
        return _barge_in(b, vpath, m[verb], expect, line)
    if verb == "hangup":
        if m[verb] not in (None, {}):
            b.err(vpath, "hangup takes no options: write 'hangup: {}'")
        return HangupTurn(wait, line)
    return _listen(b, vpath, m[verb], expect, line)


def _listen(
    b: ShapeBuilder, path: Path, value: Any, expect: ReplyExpectation | None, line: int | None
) -> ListenTurn | None:
    """``wait_for_agent: {timeout_s: 10}``; ``true``, ``{}`` or nothing: the default wait."""
    if value is None or value is True:
        return ListenTurn(DEFAULT_LISTEN_S, expect, line)
    m = b.mapping(path, value, what="{timeout_s: seconds} (or true)")
    if m is None:
        return None
    b.keys(path, m, {"timeout_s"})
    timeout = number(b, (*path, "timeout_s"), m.get("timeout_s"), 0.5, MAX_WAIT_S)
    return ListenTurn(timeout if timeout is not None else DEFAULT_LISTEN_S, expect, line)


def _barge_in(
    b: ShapeBuilder, path: Path, value: Any, expect: ReplyExpectation | None, line: int | None
) -> BargeInTurn | None:
    m = b.mapping(path, value, what="{after_ms: N, say: text}")
    if m is None:
        return None
    b.keys(path, m, {"after_ms", "say"}, required={"after_ms", "say"})
    after = b.integer((*path, "after_ms"), m.get("after_ms"), 0, MAX_BARGE_DELAY_MS)
    variants = _variants(b, (*path, "say"), m["say"]) if "say" in m else None
    if after is None or not variants:
        return None
    return BargeInTurn(after, variants, expect, line)


def _variants(b: ShapeBuilder, path: Path, value: Any) -> tuple[str, ...] | None:
    """``say: text`` or ``say: {variants: [text, ...]}``."""
    if isinstance(value, dict):
        b.keys(path, value, {"variants"}, required={"variants"})
        vpath = (*path, "variants")
        items = b.list_of(vpath, value.get("variants", []))
        if not items and "variants" in value:
            b.err(vpath, "needs at least one variant")
        if len(items) > MAX_VARIANTS:
            b.err(vpath, f"{len(items)} variants; at most {MAX_VARIANTS}")
            return None
        texts = [_utterance(b, (*vpath, i), v) for i, v in enumerate(items)]
        good = tuple(t for t in texts if t is not None)
        return good if good and len(good) == len(texts) else None
    text = _utterance(b, path, value)
    return (text,) if text is not None else None


def _utterance(b: ShapeBuilder, path: Path, value: Any) -> str | None:
    text = b.text(path, value)
    if text is None:
        return None
    if not re.search(r"\w", text):
        b.err(path, "nothing to say: the text has no words")
        return None
    if len(text) > MAX_TEXT_CHARS:
        b.err(path, f"{len(text)} characters; at most {MAX_TEXT_CHARS} per turn")
        return None
    return " ".join(text.split())


def _digits(b: ShapeBuilder, path: Path, value: Any) -> str | None:
    if isinstance(value, int) and not isinstance(value, bool):
        # YAML reads 0123 as the number 83: keys must be quoted to mean what they say.
        b.err(path, f'write keys in quotes, e.g. dtmf: "{value}" (a bare number loses zeros)')
        return None
    text = b.text(path, value)
    if text is None:
        return None
    keys = text.upper()
    if not _KEYS.match(keys) or len(keys) > MAX_DTMF_KEYS:
        b.err(path, f"{text!r} is not a key sequence (0-9, *, #, A-D; {MAX_DTMF_KEYS} at most)")
        return None
    return keys


def _reply(b: ShapeBuilder, path: Path, value: Any) -> ReplyExpectation | None:
    """``expect: phrase``, ``expect: [phrases]`` or ``expect: {contains, matches}``."""
    before = len(b.issues)
    m = value if isinstance(value, dict) else {"contains": value}
    b.keys(path, m, {"contains", "matches"})
    contains: list[str] = []
    if "contains" in m:
        cpath = path if not isinstance(value, dict) else (*path, "contains")
        raw = m["contains"]
        items = raw if isinstance(raw, list) else [raw]
        for i, item in enumerate(items):
            ipath = (*cpath, i) if isinstance(raw, list) else cpath
            if isinstance(item, int | float) and not isinstance(item, bool):
                item = str(item)
            phrase = b.text(ipath, item)
            if phrase is not None and re.search(r"\w", phrase):
                contains.append(phrase)
            elif phrase is not None:
                b.err(ipath, "an expected phrase needs words")
    pattern = None
    if "matches" in m:
        pattern = b.text((*path, "matches"), m["matches"])
        if pattern is not None and len(pattern) > MAX_PATTERN_CHARS:
            b.err((*path, "matches"), f"pattern is longer than {MAX_PATTERN_CHARS} characters")
            pattern = None
        elif pattern is not None:
            try:
                re.compile(pattern)
            except re.error as exc:
                b.err((*path, "matches"), f"bad regular expression: {exc}")
                pattern = None
    if not contains and pattern is None:
        if len(b.issues) == before:  # say so only when nothing more precise was said
            b.err(path, "expect needs 'contains' or 'matches'")
        return None
    return ReplyExpectation(tuple(contains), pattern)


def build_expectations(
    b: ShapeBuilder, path: Path, value: Any, variables: dict[str, str]
) -> Expectations:
    """The scenario's ``expect`` section (checked when the call ends)."""
    m = b.mapping(path, value) or {}
    b.keys(path, m, {"transfer", "hangup_by", "max_duration_s", "check_url"})
    transfer, target = _transfer(b, (*path, "transfer"), m.get("transfer"))
    hangup_by: HangupSide | None = None
    if "hangup_by" in m:
        side = b.choice((*path, "hangup_by"), m["hangup_by"], ["agent", "caller"], "side")
        hangup_by = "agent" if side == "agent" else "caller" if side == "caller" else None
    longest = number(b, (*path, "max_duration_s"), m.get("max_duration_s"), 1.0, MAX_CALL_S)
    checks: list[UrlCheck] = []
    if "check_url" in m:
        raw = m["check_url"]
        items = raw if isinstance(raw, list) else [raw]
        for i, item in enumerate(items):
            ipath = (*path, "check_url", i) if isinstance(raw, list) else (*path, "check_url")
            check = _check(b, ipath, item, variables)
            if check is not None:
                checks.append(check)
    return Expectations(
        transfer=transfer,
        transfer_target=target,
        hangup_by=hangup_by,
        max_duration_s=longest,
        checks=tuple(checks),
    )


def _transfer(b: ShapeBuilder, path: Path, value: Any) -> tuple[bool | None, str | None]:
    """``transfer: true|false``, ``transfer: sip:uri`` or ``transfer: {target: sip:uri}``."""
    if value is None or isinstance(value, bool):
        return value, None
    if isinstance(value, str):
        return True, value
    m = b.mapping(path, value, what="true, false, a target URI or {target: URI}")
    if m is None:
        return None, None
    b.keys(path, m, {"target"}, required={"target"})
    return True, b.text((*path, "target"), m.get("target"))


def _check(b: ShapeBuilder, path: Path, value: Any, variables: dict[str, str]) -> UrlCheck | None:
    m = b.mapping(path, value, what="{url, status, path, equals}")
    if m is None:
        return None
    b.keys(path, m, {"url", "status", "path", "equals"}, required={"url"})
    url = b.text((*path, "url"), m.get("url")) if "url" in m else None
    if url is not None and not _url_ok(b, (*path, "url"), url, variables):
        url = None
    status = b.integer((*path, "status"), m.get("status"), 100, 599)
    json_path = _json_path(b, (*path, "path"), m["path"]) if "path" in m else ""
    if "equals" in m and "path" not in m:
        b.err((*path, "equals"), "'equals' needs a JSON 'path' to compare")
    if m.get("equals") is not None and isinstance(m["equals"], dict | list):
        b.err((*path, "equals"), "compare one value (text, number, true/false), not a collection")
    if url is None or json_path is None:
        return None
    return UrlCheck(
        url=url,
        status=status if status is not None else 200,
        path=json_path,
        value=m.get("equals"),
        line=b.line(path),
    )


def _url_ok(b: ShapeBuilder, path: Path, url: str, variables: dict[str, str]) -> bool:
    """Placeholders are known names (no format specs); the filled URL is http(s)."""
    values = {name: "0" for name in BUILTIN_PLACEHOLDERS} | variables
    try:
        fields = list(string.Formatter().parse(url))
    except ValueError as exc:
        b.err(path, f"bad placeholder: {exc} (write {{{{ and }}}} for literal braces)")
        return False
    for _, field, spec, conversion in fields:
        if field is None:
            continue
        if field not in values or spec or conversion:
            known = ", ".join([*BUILTIN_PLACEHOLDERS, *sorted(variables)])
            b.err(path, f"unknown placeholder {{{field}}}; known: {known}")
            return False
    parts = urllib.parse.urlsplit(url.format_map(values))
    if parts.scheme not in ("http", "https") or not parts.hostname:
        b.err(path, f"{url!r} is not an http(s) URL with a host")
        return False
    return True


def _json_path(b: ShapeBuilder, path: Path, value: Any) -> str | None:
    text = str(value) if isinstance(value, int) and not isinstance(value, bool) else value
    if not isinstance(text, str):
        b.err(path, f"expected a dotted path such as calls.0.outcome, got {describe_kind(text)}")
        return None
    if not text or any(not p for p in text.split(".")):
        b.err(path, f"bad JSON path {text!r}")
        return None
    return text

"""Reading a load profile from the command line (``kind:key=value,...``) or a mapping.

The contract (fuzzed by the tests): any string or mapping either gives a
:class:`~trunkline.lab.profiles.LoadProfile` / :class:`~trunkline.lab.profiles.
BreakpointProfile` or raises :class:`~trunkline.lab.profiles.ProfileError` naming the
offending key. Nothing else escapes.

Keys per kind (``duration``, ``step`` of ``step:``, ``at``, ``for`` and ``hold`` are
seconds and take a unit: ``90``, ``90s``, ``1.5m``, ``2h``):

- ``constant`` / ``soak``: ``rate`` (open) or ``concurrency`` (closed), ``duration``;
- ``closed``: ``concurrency``, ``duration`` (a closed constant);
- ``ramp``: ``from``, ``to``, ``duration``; ``step``: ``levels=5/10/20``, ``step``,
  optional ``duration`` (default: every level once, the last one held to the end);
  ``spike``: ``base``, ``factor``, ``at``, ``for``, ``duration`` (these take
  ``model=open|closed``, default open);
- ``breakpoint``: ``start``, ``step`` (added) or ``factor`` (multiplied), ``max``,
  ``hold``, optional ``refine`` (bisection steps), ``model`` (default closed);
- every kind: ``max_calls``; open models: ``arrivals=poisson|even``.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Mapping
from typing import Any

from trunkline.lab.load_shape import Segment
from trunkline.lab.profiles import (
    DEFAULT_MAX_CALLS,
    MAX_BREAKPOINT_LEVELS,
    ArrivalMode,
    BreakpointProfile,
    LoadModel,
    LoadProfile,
    Profile,
    ProfileError,
    ProfileKind,
    fmt,
    options_text,
)

MAX_PROFILE_CHARS = 1_000  # a profile is a line; more is a pasted file
MAX_RATE = 1_000.0  # calls per second; one lab machine starts a few hundred at most
MAX_CONCURRENCY = 100_000
MAX_DURATION_S = 7 * 86_400.0  # a week-long soak is the longest test anyone runs
MAX_CALLS = 100_000_000
MAX_LEVELS = 100  # of a step profile
MAX_REFINE = 10  # bisection steps: 2^-10 of the last climbing step is fine enough
MAX_FACTOR = 1_000.0
MAX_HOLD_S = 3_600.0  # a breakpoint level held over an hour is a soak, not a step

_SECONDS = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*(ms|s|m|h)?\s*$")
_UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}
_COMMON = {"max_calls", "arrivals"}
_KEYS: dict[str, tuple[set[str], set[str]]] = {  # kind -> (allowed, required)
    "constant": ({"rate", "concurrency", "duration"}, {"duration"}),
    "soak": ({"rate", "concurrency", "duration"}, {"duration"}),
    "closed": ({"concurrency", "duration"}, {"concurrency", "duration"}),
    "ramp": ({"from", "to", "duration", "model"}, {"from", "to", "duration"}),
    "step": ({"levels", "step", "duration", "model"}, {"levels", "step"}),
    "spike": (
        {"base", "factor", "at", "for", "duration", "model"},
        {"base", "factor", "at", "for", "duration"},
    ),
    "breakpoint": (
        {"start", "step", "factor", "max", "hold", "refine", "model"},
        {"start", "max", "hold"},
    ),
}
EXAMPLE = "constant:rate=5,duration=60"


def parse_profile(value: str | Mapping[str, Any]) -> Profile:
    """A profile from ``kind:key=value,...`` or ``{kind: ..., key: value}``.

    Raises:
        ProfileError: the kind, a key or a value is wrong (``.key`` names it).
    """
    if isinstance(value, str):
        kind, params = _split(value)
    elif isinstance(value, Mapping):
        kind, params = _from_mapping(value)
    else:
        raise ProfileError(f"expected text or a mapping, got {type(value).__name__}")
    if kind not in _KEYS:
        raise ProfileError(
            f"unknown profile kind {kind!r}; expected one of "
            f"{', '.join(_KEYS)}{_did_you_mean(kind, _KEYS)}"
        )
    allowed, required = _KEYS[kind]
    for key in params:
        if key not in allowed | _COMMON:
            options = ", ".join(sorted(allowed | _COMMON))
            hint = _did_you_mean(key, allowed | _COMMON)
            raise ProfileError(
                f"unknown parameter for {kind}{hint or f'; expected {options}'}", key
            )
    for key in sorted(required):
        if key not in params:
            raise ProfileError(f"missing; e.g. {EXAMPLE}" if kind == "constant" else "missing", key)
    r = _Reader(params)
    if kind == "breakpoint":
        return _breakpoint(r)
    return _shaped(kind, r)


def _split(text: str) -> tuple[str, dict[str, Any]]:
    if len(text) > MAX_PROFILE_CHARS:
        raise ProfileError(f"profile is longer than {MAX_PROFILE_CHARS} characters")
    head, _, rest = text.strip().partition(":")
    kind = head.strip().lower()
    if not kind:
        raise ProfileError(f"empty profile; expected e.g. {EXAMPLE}")
    params: dict[str, Any] = {}
    if rest.strip():
        for item in rest.split(","):
            key, eq, raw = item.strip().partition("=")
            key = key.strip().lower()
            if not eq or not key:
                raise ProfileError(f"{item.strip()!r} is not key=value", key or None)
            if key in params:
                raise ProfileError("given twice", key)
            params[key] = raw.strip()
    return kind, params


def _from_mapping(data: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    kind = data.get("kind")
    if not isinstance(kind, str):
        raise ProfileError(f"missing kind; expected one of {', '.join(_KEYS)}", "kind")
    params: dict[str, Any] = {}
    for key, raw in data.items():
        if not isinstance(key, str):
            raise ProfileError(f"parameter names are text, got {key!r}")
        if key != "kind":
            params[key.lower()] = raw
    return kind.strip().lower(), params


class _Reader:
    """Typed parameter readers; each raises ProfileError naming its key."""

    def __init__(self, params: dict[str, Any]) -> None:
        self.params = params

    def has(self, key: str) -> bool:
        return key in self.params

    def number(self, key: str, lo: float, hi: float, *, whole: bool = False) -> float:
        raw = self.params[key]
        value = _to_float(key, raw)
        return _ranged(key, value, lo, hi, whole)

    def seconds(self, key: str, hi: float, *, zero: bool = False) -> float:
        """Seconds (a unit may follow: ms, s, m, h), above 0 (or from 0 with ``zero``)."""
        raw = self.params[key]
        if isinstance(raw, str):
            match = _SECONDS.match(raw)
            if match is None:
                message = f"expected seconds such as 90, 90s, 1.5m or 2h; got {raw!r}"
                raise ProfileError(message, key)
            value = float(match.group(1)) * _UNIT_S[match.group(2)]
        else:
            value = _to_float(key, raw)
        if value < 0 or (value == 0 and not zero):
            raise ProfileError(f"must be above 0, got {fmt(value)}", key)
        return _ranged(key, value, 0.0, hi, False)

    def levels(self, key: str, hi: float, whole: bool) -> tuple[float, ...]:
        raw = self.params[key]
        items = raw.split("/") if isinstance(raw, str) else raw
        if not isinstance(items, list | tuple) or not items:
            raise ProfileError("expected levels such as 5/10/20", key)
        if len(items) > MAX_LEVELS:
            raise ProfileError(f"{len(items)} levels; at most {MAX_LEVELS}", key)
        return tuple(_ranged(key, _to_float(key, item), 0.0, hi, whole) for item in items)

    def choice(self, key: str, options: type[LoadModel] | type[ArrivalMode], default: str) -> str:
        raw = self.params.get(key, default)
        text = raw.strip().lower() if isinstance(raw, str) else raw
        values = [o.value for o in options]
        if text not in values:
            raise ProfileError(f"expected one of {', '.join(values)}, got {raw!r}", key)
        return str(text)

    def options(self, model: LoadModel) -> tuple[int, ArrivalMode]:
        max_calls = DEFAULT_MAX_CALLS
        if self.has("max_calls"):
            max_calls = int(self.number("max_calls", 1, MAX_CALLS, whole=True))
        if self.has("arrivals") and model is LoadModel.CLOSED:
            raise ProfileError("only for the open model (calls per second)", "arrivals")
        mode = ArrivalMode(self.choice("arrivals", ArrivalMode, ArrivalMode.POISSON.value))
        return max_calls, mode


_Built = tuple[list[Segment], list[str], float]  # pieces, canonical parts, duration


def _shaped(kind: str, r: _Reader) -> LoadProfile:
    if kind in ("constant", "soak", "closed"):
        if r.has("rate") and r.has("concurrency"):
            raise ProfileError(
                "give rate (open model) or concurrency (closed), not both", "concurrency"
            )
        if not r.has("rate") and not r.has("concurrency"):
            raise ProfileError("missing: give rate (calls per second) or concurrency", "rate")
        model = LoadModel.OPEN if r.has("rate") else LoadModel.CLOSED
    else:
        model = LoadModel(r.choice("model", LoadModel, LoadModel.OPEN.value))
    closed = model is LoadModel.CLOSED
    top = MAX_CONCURRENCY if closed else MAX_RATE
    max_calls, mode = r.options(model)
    build = {"ramp": _ramp, "step": _step, "spike": _spike}.get(kind, _flat)
    segments, parts, duration = build(r, top, closed)
    if closed and kind in ("ramp", "step", "spike"):
        parts.append("model=closed")
    name = "closed" if kind == "constant" and closed else kind
    profile_kind = ProfileKind.CONSTANT if kind == "closed" else ProfileKind(kind)
    text = f"{name}:{','.join(parts)}{options_text(model, max_calls, mode)}"
    return LoadProfile(profile_kind, model, duration, tuple(segments), max_calls, mode, text)


def _flat(r: _Reader, top: float, closed: bool) -> _Built:
    key = "concurrency" if closed else "rate"
    level = r.number(key, 1.0 if closed else 0.0, top, whole=closed)
    if level <= 0:
        raise ProfileError("must be above 0", key)
    duration = r.seconds("duration", MAX_DURATION_S)
    parts = [f"{key}={fmt(level)}", f"duration={fmt(duration)}"]
    return [Segment(0.0, duration, level, level)], parts, duration


def _ramp(r: _Reader, top: float, closed: bool) -> _Built:
    lo, hi = r.number("from", 0.0, top, whole=closed), r.number("to", 0.0, top, whole=closed)
    if lo == 0 and hi == 0:
        raise ProfileError("a ramp from 0 to 0 starts no calls", "to")
    duration = r.seconds("duration", MAX_DURATION_S)
    parts = [f"from={fmt(lo)}", f"to={fmt(hi)}", f"duration={fmt(duration)}"]
    return [Segment(0.0, duration, lo, hi)], parts, duration


def _step(r: _Reader, top: float, closed: bool) -> _Built:
    levels = r.levels("levels", top, closed)
    if not any(levels):
        raise ProfileError("every level is 0: no calls", "levels")
    hold = r.seconds("step", MAX_DURATION_S)
    if hold * len(levels) > MAX_DURATION_S:
        longest = f"({fmt(MAX_DURATION_S)} s)"
        message = f"{len(levels)} levels of {fmt(hold)} s pass the longest run {longest}"
        raise ProfileError(message, "step")
    duration = r.seconds("duration", MAX_DURATION_S) if r.has("duration") else hold * len(levels)
    parts = [
        "levels=" + "/".join(fmt(x) for x in levels),
        f"step={fmt(hold)}",
        f"duration={fmt(duration)}",
    ]
    return _steps(levels, hold, duration), parts, duration


def _steps(levels: tuple[float, ...], hold: float, duration: float) -> list[Segment]:
    out = []
    for i, level in enumerate(levels):
        start = i * hold
        if start >= duration:
            break
        last = i == len(levels) - 1
        out.append(Segment(start, duration if last else min(start + hold, duration), level, level))
    return out


def _spike(r: _Reader, top: float, closed: bool) -> _Built:
    base = r.number("base", 0.0, top, whole=closed)
    factor = r.number("factor", 0.0, MAX_FACTOR)
    if factor <= 0:
        raise ProfileError("must be above 0", "factor")
    if base * factor > top:
        raise ProfileError(f"base x factor = {fmt(base * factor)} is over {fmt(top)}", "factor")
    if base == 0:
        raise ProfileError("a spike on a base of 0 is 0", "base")
    duration = r.seconds("duration", MAX_DURATION_S)
    at = r.seconds("at", MAX_DURATION_S, zero=True)
    length = r.seconds("for", MAX_DURATION_S)
    if at >= duration:
        raise ProfileError(f"the spike must start within the run (0 <= at < {fmt(duration)})", "at")
    if at + length > duration:
        raise ProfileError(f"the spike ends at {fmt(at + length)} s, after the run", "for")
    pieces = [(0.0, at, base), (at, at + length, base * factor), (at + length, duration, base)]
    segments = [Segment(a, b, v, v) for a, b, v in pieces if b > a]
    parts = [
        f"base={fmt(base)}",
        f"factor={fmt(factor)}",
        f"at={fmt(at)}",
        f"for={fmt(length)}",
        f"duration={fmt(duration)}",
    ]
    return segments, parts, duration


def _breakpoint(r: _Reader) -> BreakpointProfile:
    model = LoadModel(r.choice("model", LoadModel, LoadModel.CLOSED.value))
    closed = model is LoadModel.CLOSED
    top = MAX_CONCURRENCY if closed else MAX_RATE
    start = r.number("start", 1.0 if closed else 0.0, top, whole=closed)
    if start <= 0:
        raise ProfileError("must be above 0", "start")
    if r.has("step") == r.has("factor"):
        raise ProfileError(
            "give step (added per level) or factor (multiplied), one of them", "step"
        )
    step = r.number("step", 0.0, top, whole=closed) if r.has("step") else None
    if step is not None and step <= 0:
        raise ProfileError("must be above 0", "step")
    factor = r.number("factor", 1.0, 10.0) if r.has("factor") else None
    if factor is not None and factor <= 1:
        raise ProfileError("must be above 1 to climb", "factor")
    most = r.number("max", start, top, whole=closed)
    hold = r.seconds("hold", MAX_HOLD_S)
    refine = int(r.number("refine", 0, MAX_REFINE, whole=True)) if r.has("refine") else 0
    max_calls, mode = r.options(model)
    parts = [f"start={fmt(start)}"]
    parts += [f"step={fmt(step)}"] if step is not None else [f"factor={fmt(factor or 2.0)}"]
    parts += [f"max={fmt(most)}", f"hold={fmt(hold)}"]
    parts += [f"refine={refine}"] if refine else []
    parts += ["model=open"] if not closed else []
    text = f"breakpoint:{','.join(parts)}{options_text(model, max_calls, mode)}"
    profile = BreakpointProfile(
        model, start, step, factor, most, hold, refine, max_calls, mode, text
    )
    if len(profile.ladder()) > MAX_BREAKPOINT_LEVELS:
        message = f"more than {MAX_BREAKPOINT_LEVELS} levels from {fmt(start)} to {fmt(most)}"
        raise ProfileError(f"{message}; take bigger steps", "max")
    return profile


def _to_float(key: str, raw: Any) -> float:
    if isinstance(raw, bool) or not isinstance(raw, int | float | str):
        raise ProfileError(f"expected a number, got {raw!r}", key)
    try:
        value = float(raw)
    except (ValueError, OverflowError):
        raise ProfileError(f"expected a number, got {raw!r}", key) from None
    if not math.isfinite(value):
        raise ProfileError(f"expected a finite number, got {raw!r}", key)
    return value


def _ranged(key: str, value: float, lo: float, hi: float, whole: bool) -> float:
    if not lo <= value <= hi:
        raise ProfileError(f"{fmt(value)} is out of range {fmt(lo)}..{fmt(hi)}", key)
    if whole and not value.is_integer():
        raise ProfileError(f"expected a whole number, got {fmt(value)}", key)
    return value


def _did_you_mean(word: str, options: Mapping[str, object] | set[str]) -> str:
    close = difflib.get_close_matches(word, sorted(options), n=1)
    return f"; did you mean {close[0]!r}?" if close else ""

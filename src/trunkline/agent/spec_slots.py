"""Slot definitions in the spec: type, validation rule, carrier phrases, input mode.

```yaml
order_number:
  type: digits            # digits | date | yes_no | list
  min_length: 5
  max_length: 5
  prompt: Please say your five digit order number.
  reprompt: Order numbers have five digits.
  phrases: ["my order number is {value}", "it is {value}"]
  input: any              # any | speech | dtmf
  sensitive: false        # true: the value is masked in call events (a PIN)
```
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Any

from trunkline.agent.slots import DEFAULT_NO, DEFAULT_YES
from trunkline.agent.spec import (
    DateFormat,
    DateRule,
    DigitsRule,
    InputMode,
    ListRule,
    SlotRule,
    SlotSpec,
    SlotType,
    YesNoRule,
)
from trunkline.agent.spec_checks import ShapeBuilder
from trunkline.agent.spec_loader import Path

# Longest digit string a slot may ask for: card numbers are 19, so 24 leaves room.
MAX_DIGITS_LENGTH = 24
DEFAULT_DATE_FORMATS = (DateFormat.WEEKDAY, DateFormat.RELATIVE, DateFormat.MONTH_DAY)

_COMMON = {"type", "prompt", "reprompt", "phrases", "input", "sensitive"}
_EXTRAS: dict[str, set[str]] = {
    SlotType.DIGITS: {"min_length", "max_length"},
    SlotType.DATE: {"formats", "allow_past"},
    SlotType.YES_NO: {"yes", "no"},
    SlotType.LIST: {"values"},
}


def build_slot(b: ShapeBuilder, path: Path, name: str, raw: Any) -> SlotSpec | None:
    """Validate one slot; issues go to ``b``; None when it cannot be built."""
    m = b.mapping(path, raw)
    if m is None:
        return None
    type_text = b.choice((*path, "type"), m.get("type"), [t.value for t in SlotType], "slot type")
    if type_text is None:
        b.keys(path, m, _COMMON.union(*_EXTRAS.values()))
        return None
    slot_type = SlotType(type_text)
    b.keys(path, m, _COMMON | _EXTRAS[slot_type], {"values"} if slot_type is SlotType.LIST else ())
    rule = _rule(b, path, slot_type, m)
    phrases = [
        phrase
        for i, p in enumerate(b.list_of((*path, "phrases"), m.get("phrases", [])))
        if (phrase := b.phrase((*path, "phrases", i), p, carrier=True)) is not None
    ]
    if ("{value}",) not in phrases:
        phrases.append(("{value}",))
    mode = b.choice((*path, "input"), m.get("input", "any"), [i.value for i in InputMode], "input")
    if rule is None:
        return None
    return SlotSpec(
        name=name,
        type=slot_type,
        rule=rule,
        prompt=b.template((*path, "prompt"), m.get("prompt"), required=False),
        reprompt=b.template((*path, "reprompt"), m.get("reprompt"), required=False),
        phrases=tuple(phrases),
        input=InputMode(mode) if mode else InputMode.ANY,
        sensitive=b.boolean((*path, "sensitive"), m.get("sensitive"), False),
        line=b.line(path),
    )


def _rule(b: ShapeBuilder, path: Path, slot_type: SlotType, m: dict[str, Any]) -> SlotRule | None:
    if slot_type is SlotType.DIGITS:
        lo = b.integer((*path, "min_length"), m.get("min_length"), 1, MAX_DIGITS_LENGTH) or 1
        hi = b.integer((*path, "max_length"), m.get("max_length"), 1, MAX_DIGITS_LENGTH)
        if hi is None:
            hi = max(lo, 16) if "max_length" not in m else lo
        if hi < lo:
            b.err((*path, "max_length"), f"max_length ({hi}) is less than min_length ({lo})")
            hi = lo
        return DigitsRule(lo, hi)
    if slot_type is SlotType.DATE:
        formats: list[DateFormat] = []
        raw_formats = m.get("formats")
        for i, f in enumerate(
            b.list_of((*path, "formats"), raw_formats) if raw_formats is not None else []
        ):
            got = b.choice((*path, "formats", i), f, [d.value for d in DateFormat], "date format")
            if got is not None:
                formats.append(DateFormat(got))
        if raw_formats is not None and not formats:
            return None
        return DateRule(
            tuple(formats) or DEFAULT_DATE_FORMATS,
            b.boolean((*path, "allow_past"), m.get("allow_past"), False),
        )
    if slot_type is SlotType.YES_NO:
        yes = _merge(DEFAULT_YES, _phrases(b, (*path, "yes"), m.get("yes")))
        no = _merge(DEFAULT_NO, _phrases(b, (*path, "no"), m.get("no")))
        clash = set(yes) & set(no)
        if clash:
            b.err(path, f"{sorted(clash)[0]!r} would mean both yes and no")
        return YesNoRule(yes, no)
    return _list_rule(b, (*path, "values"), m.get("values"))


def _list_rule(b: ShapeBuilder, path: Path, raw: Any) -> ListRule | None:
    values: dict[str, tuple[str, ...]] = {}
    seen: dict[str, str] = {}
    if isinstance(raw, list):
        entries: list[tuple[Path, Any, Any]] = [((*path, i), v, []) for i, v in enumerate(raw)]
    elif isinstance(raw, dict):
        entries = [((*path, k), k, v) for k, v in raw.items()]
    else:
        b.err(path, "expected a list of values or a mapping value -> synonyms")
        return None
    for epath, canonical, synonyms in entries:
        if not isinstance(canonical, str):
            b.err(epath, "expected text")
            continue
        phrases = [" ".join(p) for p in [b.phrase(epath, canonical)] if p]
        phrases += _phrases(b, epath, synonyms if synonyms is not None else [])
        for phrase in phrases:
            if phrase in seen and seen[phrase] != canonical:
                b.err(epath, f"{phrase!r} would mean both {seen[phrase]!r} and {canonical!r}")
            seen[phrase] = canonical
        if phrases:
            values[canonical] = tuple(dict.fromkeys(phrases))
    if not values:
        b.err(path, "a list slot needs at least one value")
        return None
    return ListRule(MappingProxyType(values))


def _phrases(b: ShapeBuilder, path: Path, raw: Any) -> list[str]:
    if raw is None:
        return []
    items = b.list_of(path, raw)
    return [" ".join(p) for i, x in enumerate(items) if (p := b.phrase((*path, i), x))]


def _merge(base: tuple[str, ...], extra: list[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys([*base, *extra]))

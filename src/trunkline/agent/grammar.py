"""Per-state grammars: JSGF for pocketsphinx, and a matcher for partial transcripts.

Theory of operation
-------------------
Each flow state accepts a small language: its intents' example phrases, its slots'
carrier phrases ("my order number is {value}") with the slot's own words (digit words
repeated min..max times, weekdays and month days, yes/no synonyms, list values), and the
agent's global intents. We build that language once as a tiny tree of nodes (word,
sequence, alternative, repeat, slot capture, named rule) and read the tree two ways:

- :func:`to_jsgf` writes it as a JSGF grammar, which the embedded recognizer loads so it
  only hears sentences of the language (accurate and fast on 8 kHz audio);
- :class:`GrammarMatcher` walks it over a (partial) transcript and says whether the text
  already *completes* a sentence (the pipeline may end the turn early: the caller said
  five digits, there is nothing left to wait for), is still a *prefix* of one, or is
  neither; and which intent and slot values a complete sentence yields.

The walk is a backtracking generator over word positions; state grammars are small and
utterances a dozen words, so it costs microseconds and needs no compiled automaton.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import weakref
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from trunkline.agent.lexicon import words
from trunkline.agent.slots import (
    DIGIT_WORDS,
    MONTHS,
    ORDINALS,
    RELATIVE_DAYS,
    WEEKDAYS,
    Heard,
    accepts_speech,
    parse_exact,
)
from trunkline.agent.spec import (
    AgentSpec,
    DateFormat,
    DateRule,
    DigitsRule,
    IntentSpec,
    ListRule,
    SlotSpec,
    StateSpec,
    YesNoRule,
)

# --- the grammar tree -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Word:
    text: str


@dataclass(frozen=True, slots=True)
class Seq:
    items: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Alt:
    options: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Repeat:
    node: Node
    min: int
    max: int


@dataclass(frozen=True, slots=True)
class Capture:
    slot: str
    node: Node


@dataclass(frozen=True, slots=True)
class Rule:
    """A named sub-grammar: one JSGF rule definition, referenced as ``<name>``."""

    name: str
    node: Node


Node = Word | Seq | Alt | Repeat | Capture | Rule


@dataclass(frozen=True, slots=True)
class Alternative:
    """One top-level way to complete the utterance: an intent phrase or a slot phrase."""

    intent: str | None
    node: Node


@dataclass(frozen=True, slots=True)
class Match:
    """What a transcript amounts to under a state's grammar.

    ``complete``: the text is a whole sentence of the grammar. ``extendable``: it is also
    the start of a longer sentence (a slot of 4 to 6 digits after 4 digits), so a
    pipeline may prefer a short silence over ending the turn at once. ``heard`` holds
    every slot value read, valid or not; ``slots`` only the valid ones.
    """

    intent: str | None
    slots: dict[str, Any]
    complete: bool
    extendable: bool = False
    heard: tuple[Heard, ...] = ()


# --- building ---------------------------------------------------------------------------


def _phrase(ws: tuple[str, ...]) -> Node:
    return Word(ws[0]) if len(ws) == 1 else Seq(tuple(Word(w) for w in ws))


_DIGIT = Rule("digit", Alt(tuple(Word(w) for w in DIGIT_WORDS)))
_WEEKDAY = Rule("weekday", Alt(tuple(Word(w) for w in WEEKDAYS)))
_MONTH = Rule("month", Alt(tuple(Word(w) for w in MONTHS)))
_ORDINAL = Rule("ordinal", Alt(tuple(_phrase(o) for o in ORDINALS)))


def slot_node(slot: SlotSpec) -> Node:
    """The words one slot's value may be spoken as, as a named rule."""
    rule = slot.rule
    body: Node
    if isinstance(rule, DigitsRule):
        body = Repeat(_DIGIT, rule.min_length, rule.max_length)
    elif isinstance(rule, DateRule):
        body = Alt(tuple(_date_options(rule)))
    elif isinstance(rule, YesNoRule):
        body = Alt(tuple(_phrase(tuple(p.split())) for p in (*rule.yes, *rule.no)))
    else:
        assert isinstance(rule, ListRule)
        body = Alt(tuple(_phrase(tuple(p.split())) for ps in rule.values.values() for p in ps))
    return Rule(f"slot_{slot.name}", body)


def _date_options(rule: DateRule) -> list[Node]:
    options: list[Node] = []
    if DateFormat.RELATIVE in rule.formats:
        options.extend(_phrase(p) for p in RELATIVE_DAYS)
    if DateFormat.WEEKDAY in rule.formats:
        options.append(Seq((Repeat(Alt((Word("next"), Word("this"))), 0, 1), _WEEKDAY)))
    if DateFormat.MONTH_DAY in rule.formats:
        options.append(Seq((_MONTH, Repeat(Word("the"), 0, 1), _ORDINAL)))
        options.append(Seq((Word("the"), _ORDINAL, Word("of"), _MONTH)))
    return options


def _intent_alternative(intent: IntentSpec) -> Alternative | None:
    if not intent.examples:
        return None
    return Alternative(intent.name, Alt(tuple(_phrase(ex) for ex in intent.examples)))


def _slot_alternatives(slot: SlotSpec) -> list[Alternative]:
    value = Capture(slot.name, slot_node(slot))
    out = []
    for phrase in slot.phrases:
        items = tuple(value if w == "{value}" else Word(w) for w in phrase)
        out.append(Alternative(None, items[0] if len(items) == 1 else Seq(items)))
    return out


def state_alternatives(spec: AgentSpec, state: StateSpec) -> list[Alternative]:
    """The state's language in priority order: its intents, its slots, global intents."""
    alts: list[Alternative] = []
    own = {i.name for i in state.intents}
    for intent in state.intents:
        alt = _intent_alternative(intent)
        if alt is not None:
            alts.append(alt)
    for slot in state.slots:
        if accepts_speech(slot):
            alts.extend(_slot_alternatives(slot))
    for intent in spec.global_intents:
        if intent.name not in own:
            alt = _intent_alternative(intent)
            if alt is not None:
                alts.append(alt)
    return alts


# --- JSGF -------------------------------------------------------------------------------


def to_jsgf(alternatives: list[Alternative], name: str = "trunkline") -> str:
    """A JSGF V1.0 grammar with ``public <utterance>`` over the alternatives."""
    rules: dict[str, str] = {}
    body = " | ".join(_jsgf(a.node, rules, top=True) for a in alternatives)
    lines = ["#JSGF V1.0;", f"grammar {name};", f"public <utterance> = {body} ;"]
    lines.extend(f"<{rule}> = {text} ;" for rule, text in rules.items())
    return "\n".join(lines) + "\n"


def _jsgf(node: Node, rules: dict[str, str], top: bool = False) -> str:
    if isinstance(node, Word):
        return node.text
    if isinstance(node, Seq):
        return " ".join(_jsgf(item, rules) for item in node.items)
    if isinstance(node, Alt):
        inner = " | ".join(_jsgf(o, rules, top=True) for o in node.options)
        return inner if top else f"( {inner} )"
    if isinstance(node, Repeat):
        one = _jsgf(node.node, rules)
        if not isinstance(node.node, Word | Rule):
            one = f"( {one} )"
        required = [one] * node.min
        optional = ""
        for _ in range(node.max - node.min):
            optional = f"[ {one} {optional} ]" if optional else f"[ {one} ]"
        return " ".join([*required, optional] if optional else required)
    if isinstance(node, Capture):
        return _jsgf(node.node, rules, top)
    if node.name not in rules:
        rules[node.name] = ""  # reserve the name first: keeps definitions in first-use order
        rules[node.name] = _jsgf(node.node, rules, top=True)
    return f"<{node.name}>"


# --- matching ---------------------------------------------------------------------------

_Caps = tuple[tuple[str, int, int], ...]


def _walk(
    node: Node, words: tuple[str, ...], i: int, caps: _Caps
) -> Iterator[tuple[int, _Caps, bool]]:
    """Yield ``(end, captures, exhausted)`` for every way ``node`` matches from ``i``.

    ``exhausted`` means the input ran out inside the node: the words so far are a prefix
    of a longer match.
    """
    if isinstance(node, Word):
        if i == len(words):
            yield i, caps, True
        elif words[i] == node.text:
            yield i + 1, caps, False
    elif isinstance(node, Seq):
        yield from _walk_seq(node.items, 0, words, i, caps)
    elif isinstance(node, Alt):
        for option in node.options:
            yield from _walk(option, words, i, caps)
    elif isinstance(node, Repeat):
        yield from _walk_repeat(node, 0, words, i, caps)
    elif isinstance(node, Capture):
        for end, inner, exhausted in _walk(node.node, words, i, caps):
            yield end, (inner if exhausted else (*inner, (node.slot, i, end))), exhausted
    else:
        yield from _walk(node.node, words, i, caps)


def _walk_seq(
    items: tuple[Node, ...], k: int, words: tuple[str, ...], i: int, caps: _Caps
) -> Iterator[tuple[int, _Caps, bool]]:
    if k == len(items):
        yield i, caps, False
        return
    for end, inner, exhausted in _walk(items[k], words, i, caps):
        if exhausted:
            yield end, inner, True
        else:
            yield from _walk_seq(items, k + 1, words, end, inner)


def _walk_repeat(
    node: Repeat, count: int, words: tuple[str, ...], i: int, caps: _Caps
) -> Iterator[tuple[int, _Caps, bool]]:
    if count >= node.min:
        yield i, caps, False
    if count < node.max:
        for end, inner, exhausted in _walk(node.node, words, i, caps):
            if exhausted:
                yield end, inner, True
            elif end > i:  # a repetition that consumed nothing would loop forever
                yield from _walk_repeat(node, count + 1, words, end, inner)


class GrammarMatcher:
    """Decides whether a (partial) transcript completes a state's grammar.

    ``match(text)`` returns None when the text is not even the start of a sentence of the
    grammar, ``Match(complete=False)`` while it is a proper prefix, and
    ``Match(complete=True, intent=..., slots=...)`` once it is a whole sentence. The first
    complete alternative in priority order wins (state intents, slots, global intents).
    """

    def __init__(self, alternatives: list[Alternative], slots: Mapping[str, SlotSpec]) -> None:
        self._alternatives = tuple(alternatives)
        self._slots = dict(slots)

    def match(self, text: str | tuple[str, ...], *, today: dt.date | None = None) -> Match | None:
        """Match ``text`` (a string, normalized here, or already-normalized words).

        ``today`` resolves spoken dates ("tomorrow"); default: the local date.
        """
        ws = words(text) if isinstance(text, str) else text
        winner: tuple[Alternative, _Caps] | None = None
        prefix = False
        for alt in self._alternatives:
            for end, caps, exhausted in _walk(alt.node, ws, 0, ()):
                if exhausted:
                    prefix = True
                elif end == len(ws) and winner is None:
                    winner = (alt, caps)
            if winner is not None and prefix:
                break
        if winner is None:
            return Match(None, {}, False) if prefix else None
        alt, caps = winner
        heard = []
        for slot_name, start, end in caps:
            slot = self._slots.get(slot_name)
            if slot is not None:
                got = parse_exact(slot, ws[start:end], today or dt.date.today())
                if got is not None:
                    heard.append(got)
        values = {h.slot: h.value for h in heard if h.valid}
        return Match(alt.intent, values, True, prefix, tuple(heard))


@dataclass(frozen=True, slots=True)
class StateGrammar:
    """A state's grammar in both forms. ``jsgf`` is None when the state hears no speech."""

    grammar_id: str
    jsgf: str | None
    matcher: GrammarMatcher | None
    alternatives: tuple[Alternative, ...] = field(default=())


_CACHE: weakref.WeakKeyDictionary[AgentSpec, Mapping[str, StateGrammar]] = (
    weakref.WeakKeyDictionary()
)


def state_grammars(spec: AgentSpec) -> Mapping[str, StateGrammar]:
    """Every state's grammar, built once per spec and shared by all its calls."""
    cached = _CACHE.get(spec)
    if cached is None:
        cached = {s.name: build_state_grammar(spec, s) for s in spec.states.values()}
        _CACHE[spec] = cached
    return cached


def build_state_grammar(spec: AgentSpec, state: StateSpec) -> StateGrammar:
    """Build one state's JSGF text and matcher."""
    alts = state_alternatives(spec, state)
    if not alts:
        return StateGrammar(f"{spec.name}.{state.name}", None, None)
    jsgf = to_jsgf(alts)
    digest = hashlib.sha1(jsgf.encode(), usedforsecurity=False).hexdigest()[:8]
    slots = {s.name: s for s in state.slots}
    matcher = GrammarMatcher(alts, slots)
    return StateGrammar(f"{spec.name}.{state.name}.{digest}", jsgf, matcher, tuple(alts))

"""Grammars: JSGF that pocketsphinx loads, and the matcher's complete/prefix decisions."""

from __future__ import annotations

import pathlib
import random
import shutil
import subprocess
from collections.abc import Iterator

import pocketsphinx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.agent.conftest import TODAY
from trunkline.agent import AgentSpec, AgentSpecError, parse_agent_spec, state_grammars
from trunkline.agent.grammar import (
    Alt,
    Capture,
    GrammarMatcher,
    Match,
    Node,
    Repeat,
    Rule,
    Seq,
    Word,
    build_state_grammar,
)
from trunkline.agent.lexicon import known_words, words
from trunkline.agent.slots import (
    DEFAULT_NO,
    DEFAULT_YES,
    DIGIT_WORDS,
    MONTHS,
    ORDINALS,
    RELATIVE_DAYS,
    WEEKDAYS,
)


@pytest.fixture(scope="module")
def decoder() -> pocketsphinx.Decoder:
    return pocketsphinx.Decoder(loglevel="FATAL")


def test_every_acme_state_grammar_loads_in_pocketsphinx(
    acme_spec: AgentSpec, decoder: pocketsphinx.Decoder
) -> None:
    grammars = state_grammars(acme_spec)
    assert set(grammars) == set(acme_spec.states)
    for name, grammar in grammars.items():
        assert grammar.jsgf is not None, name
        assert grammar.jsgf.startswith("#JSGF V1.0;")
        decoder.add_jsgf_string(grammar.grammar_id, grammar.jsgf)
        decoder.activate_search(grammar.grammar_id)
        assert decoder.current_search() == grammar.grammar_id


def test_pocketsphinx_rejects_what_we_must_not_emit(decoder: pocketsphinx.Decoder) -> None:
    # The check above is only meaningful if a broken grammar would fail to load.
    with pytest.raises(ValueError):
        decoder.add_jsgf_string("bad", "#JSGF V1.0;\ngrammar g;\npublic <u> = frobnicatexyz ;\n")


def test_built_in_vocabulary_is_in_the_dictionary() -> None:
    known = known_words()
    assert known is not None and len(known) > 100_000
    vocabulary = {*DIGIT_WORDS, *WEEKDAYS, *MONTHS, "next", "this", "the", "of"}
    for phrase in (
        *ORDINALS,
        *RELATIVE_DAYS,
        *(tuple(p.split()) for p in DEFAULT_YES + DEFAULT_NO),
    ):
        vocabulary.update(phrase)
    assert sorted(vocabulary - known) == []


def test_order_number_grammar_completes_only_on_five_digits(acme_spec: AgentSpec) -> None:
    matcher = state_grammars(acme_spec)["order_status"].matcher
    assert matcher is not None
    full = matcher.match("my order number is one two three four five")
    assert full == Match(None, {"order_number": "12345"}, True, False, full.heard if full else ())
    partial = matcher.match("my order number is one two")
    assert partial is not None and not partial.complete and partial.slots == {}
    assert matcher.match("My order number is: one, two, three, four, oh!") is not None
    assert matcher.match("one two three four five six") is None  # too long: not a sentence
    assert matcher.match("order number nine") == Match(None, {}, False)
    bye = matcher.match("goodbye")  # a global intent
    assert bye is not None and (bye.intent, bye.complete) == ("goodbye", True)
    assert matcher.match("order status") is None  # a main-menu intent, not heard here


def test_date_and_yes_no_matching(acme_spec: AgentSpec) -> None:
    grammars = state_grammars(acme_spec)
    day = grammars["reschedule"].matcher
    assert day is not None
    cases = {
        "friday": "2025-01-10",
        "on monday": "2025-01-13",
        "tomorrow please": "2025-01-07",
        "how about the day after tomorrow": "2025-01-08",
        "january the tenth": "2025-01-10",
        "the twenty first of may": "2025-05-21",
        "january fifth": "2026-01-05",  # already past this year: next year's
    }
    for text, iso in cases.items():
        m = day.match(text, today=TODAY)
        assert m is not None and m.complete and m.slots == {"day": iso}, text
    friday = day.match("friday", today=TODAY)
    assert friday is not None and friday.extendable  # "friday please" may follow
    bad = day.match("february thirtieth", today=TODAY)
    assert bad is not None and bad.complete and bad.slots == {}
    assert bad.heard[0].reason == "no such date"
    confirm = grammars["confirm_day"].matcher
    assert confirm is not None
    for text, value in [("yes", True), ("that's right", True), ("no thank you", False)]:
        m = confirm.match(text)
        assert m is not None and m.slots == {"confirm": value}, text


def test_digit_ranges_become_optional_items(decoder: pocketsphinx.Decoder) -> None:
    spec = parse_agent_spec(
        """
name: x
states:
  main:
    slots:
      code: {type: digits, min_length: 2, max_length: 4}
"""
    )
    grammar = build_state_grammar(spec, spec.states["main"])
    assert grammar.jsgf is not None
    assert "<slot_code> = <digit> <digit> [ <digit> [ <digit> ] ] ;" in grammar.jsgf
    decoder.add_jsgf_string("digits-2-4", grammar.jsgf)
    assert grammar.matcher is not None
    two = grammar.matcher.match("one two")
    assert two is not None and two.complete and two.extendable
    four = grammar.matcher.match("one two three four")
    assert four is not None and four.complete and not four.extendable
    one = grammar.matcher.match("one")
    assert one is not None and not one.complete


def test_state_intents_win_over_global_ones() -> None:
    spec = parse_agent_spec(
        """
name: x
intents:
  help: {examples: [help], goto: main}
  bye: {examples: [help me], goto: main}
states:
  main:
    intents:
      help: {examples: [help, assist], goto: other}
  other:
    prompt: hi
"""
    )
    grammar = build_state_grammar(spec, spec.states["main"])
    assert grammar.jsgf is not None
    assert grammar.jsgf.count("| help |") + grammar.jsgf.count("= help |") == 1
    matcher = grammar.matcher
    assert matcher is not None
    assert [m.intent for m in (matcher.match("help"), matcher.match("help me")) if m] == [
        "help",
        "bye",
    ]


def test_unknown_grammar_words_are_spec_errors_with_lines() -> None:
    with pytest.raises(AgentSpecError) as info:
        parse_agent_spec(
            """name: x
states:
  main:
    slots:
      colour:
        type: list
        values: {teal: [zorbly blue]}
      ok:
        type: yes_no
        yes: [yup yup, affirmo]
      code:
        type: digits
        phrases: ["code 42 is {value}"]
"""
        )
    unknown = "is not in the recognizer's dictionary"
    assert [(i.line, i.path, i.message) for i in info.value.issues] == [
        (7, "states.main.slots.colour.values.teal[0]", f"word 'zorbly' {unknown}"),
        (10, "states.main.slots.ok.yes[1]", f"word 'affirmo' {unknown}"),
        (13, "states.main.slots.code.phrases[0]", f"word '42' {unknown} (write numbers as words)"),
    ]


# --- property: every sentence the grammar generates completes it ------------------------


def _sample(node: Node, rng: random.Random) -> Iterator[str]:
    if isinstance(node, Word):
        yield node.text
    elif isinstance(node, Seq):
        for item in node.items:
            yield from _sample(item, rng)
    elif isinstance(node, Alt):
        yield from _sample(rng.choice(node.options), rng)
    elif isinstance(node, Repeat):
        for _ in range(rng.randint(node.min, node.max)):
            yield from _sample(node.node, rng)
    elif isinstance(node, Capture | Rule):
        yield from _sample(node.node, rng)


@settings(max_examples=150, deadline=None)
@given(st.randoms(use_true_random=False), st.integers(0, 10_000))
def test_generated_sentences_complete_and_their_prefixes_do_not_fail(
    rng: random.Random, pick: int
) -> None:
    from tests.conftest import ACME
    from trunkline.agent import load_agent_spec

    if "acme" not in _SPEC_CACHE:
        _SPEC_CACHE["acme"] = load_agent_spec(ACME)
    spec = _SPEC_CACHE["acme"]
    grammars = list(state_grammars(spec).values())
    grammar = grammars[pick % len(grammars)]
    assert grammar.matcher is not None
    alternative = grammar.alternatives[pick % len(grammar.alternatives)]
    sentence = tuple(_sample(alternative.node, rng))
    full = grammar.matcher.match(sentence, today=TODAY)
    assert full is not None and full.complete, sentence
    for cut in range(len(sentence)):
        assert grammar.matcher.match(sentence[:cut], today=TODAY) is not None, sentence[:cut]
    assert grammar.matcher.match((*sentence, "xylophone"), today=TODAY) is None


_SPEC_CACHE: dict[str, AgentSpec] = {}


def test_matcher_accepts_pre_split_words_and_ignores_case(acme_spec: AgentSpec) -> None:
    matcher: GrammarMatcher | None = state_grammars(acme_spec)["main"].matcher
    assert matcher is not None
    assert matcher.match(words("ORDER Status.")) == matcher.match("order status")


@pytest.mark.skipif(
    not (shutil.which("espeak-ng") and shutil.which("sox")), reason="needs espeak-ng and sox"
)
def test_pocketsphinx_hears_a_synthetic_caller_through_the_grammar(
    acme_spec: AgentSpec, tmp_path: pathlib.Path
) -> None:
    # Not the ASR provider's test (that one runs 8 kHz telephone audio): only a check
    # that the grammar we emit steers a real decoder to a sentence the matcher completes.
    wav, raw = tmp_path / "caller.wav", tmp_path / "caller.raw"
    text = "my order number is one two three four five"
    subprocess.run(["espeak-ng", "-w", str(wav), text], check=True, capture_output=True)
    subprocess.run(
        ["sox", str(wav), "-r", "16000", "-c", "1", "-b", "16", "-e", "signed", str(raw)],
        check=True,
        capture_output=True,
    )
    grammar = state_grammars(acme_spec)["order_status"]
    assert grammar.jsgf is not None and grammar.matcher is not None
    decoder = pocketsphinx.Decoder(loglevel="FATAL")
    decoder.add_jsgf_string(grammar.grammar_id, grammar.jsgf)
    decoder.activate_search(grammar.grammar_id)
    decoder.start_utt()
    decoder.process_raw(raw.read_bytes(), full_utt=True)
    decoder.end_utt()
    hyp = decoder.hyp()
    assert hyp is not None and hyp.hypstr == text
    match = grammar.matcher.match(hyp.hypstr)
    assert match is not None and match.complete and match.slots == {"order_number": "12345"}

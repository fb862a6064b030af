"""Word error rate of the embedded recognizer on Acme phrases, per espeak-ng voice.

The measurement is ``bench/asr_wer.py`` (imported from there, so the test and the bench
cannot drift apart); here it runs on ``TEST_SUBSET``, 9 phrases of every kind (intents,
a global intent, digits in a carrier phrase, dates, yes and no) in each of the three
voices, about 5 s in all with the recognizer pool's start. Rendering and decoding are
deterministic, so the figures are exact, not samples.

The target is WER <= 10% per voice. On this subset en-us and en-us+f3 meet it and en-gb
misses it (see ``KNOWN_WER``); its target test is a strict xfail that names the measured
figure, so an improvement shows up as an unexpected pass, and a second test holds every
voice to its current figure. On the full bench set only en-us meets it (8.1%; en-gb
29.2%, en-us+f3 14.1%: see bench/README.md).
"""

from __future__ import annotations

import importlib.util
import shutil
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from types import ModuleType

import pytest
import pytest_asyncio

from trunkline.agent import AgentSpec, state_grammars
from trunkline.agent.lexicon import words
from trunkline.providers.embedded_asr import PocketsphinxASR

pytestmark = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="needs espeak-ng")
#: The recognizer pool is shared by the measuring tests, on the module's loop.
on_module_loop = pytest.mark.asyncio(loop_scope="module")

BENCH = Path(__file__).resolve().parents[2] / "bench" / "asr_wer.py"
TARGET_WER = 0.10
#: Measured on TEST_SUBSET (25 reference words per voice), pocketsphinx 5.1.1 with the
#: pool's default settings (telephone CMN prior, dither, two passes, pronunciation
#: variants); before those: 2/25, 11/25, 3/25. The full bench set is worse (8.1% /
#: 29.2% / 14.1%): see bench/README.md.
KNOWN_WER = {"en-us": 0 / 25, "en-gb": 4 / 25, "en-us+f3": 2 / 25}


def _load_bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("asr_wer", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["asr_wer"] = module  # dataclasses look their module up while building
    spec.loader.exec_module(module)
    return module


W = _load_bench()


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def results(acme_spec: AgentSpec) -> AsyncIterator[dict[str, object]]:
    async with PocketsphinxASR(workers=2) as asr:
        measured = await W.measure(asr, acme_spec, W.test_cases(), W.VOICES)
    W.print_results(measured)
    yield measured


def test_wer_is_the_labs_after_its_normaliser(acme_spec: AgentSpec) -> None:
    result = W.VoiceResult("v")
    matcher = state_grammars(acme_spec)["main"].matcher
    result.add(W.Case("main", "that's all"), "that is all", matcher)
    result.add(W.Case("main", "talk to a person"), "talk to person", matcher)
    result.add(W.Case("main", "order status"), "", matcher)
    total = result.total
    assert (total.substitutions, total.deletions, total.insertions) == (0, 3, 0)
    assert total.reference_words == 3 + 4 + 2  # "that's" is "that is"
    assert result.wer == 3 / 9
    assert (result.exact, result.understood) == (1, 1)
    assert [case.text for case, _ in result.misses] == ["talk to a person", "order status"]


def test_bench_phrases_are_sentences_of_their_state_grammar(acme_spec: AgentSpec) -> None:
    grammars = state_grammars(acme_spec)
    cases = W.acme_cases(acme_spec)
    for case in cases:
        matcher = grammars[case.state].matcher
        assert matcher is not None, case
        match = matcher.match(case.text, today=W.TODAY)
        assert match is not None and match.complete, case
    texts = {c.text for c in cases}
    examples = [i.examples for s in acme_spec.states.values() for i in s.intents]
    examples += [i.examples for i in acme_spec.global_intents]
    assert all(" ".join(e) in texts for group in examples for e in group)
    assert {(s, t) for s, t in W.TEST_SUBSET} <= {(c.state, c.text) for c in cases}
    assert {c.state for c in cases} == {"main", "order_status", "reschedule", "confirm_day"}


def test_same_meaning_accepts_synonyms_not_other_values(acme_spec: AgentSpec) -> None:
    confirm = state_grammars(acme_spec)["confirm_day"].matcher
    order = state_grammars(acme_spec)["order_status"].matcher
    assert confirm is not None and order is not None
    assert W.same_meaning(confirm, words("yes"), words("yeah"))
    assert not W.same_meaning(confirm, words("not right"), words("right"))
    assert W.same_meaning(
        order, words("it is one two three four five"), words("one two three four five")
    )
    assert not W.same_meaning(order, words("one two three four five"), words("one two three four"))


@pytest.mark.parametrize(
    "voice",
    [
        pytest.param(voice, marks=[])
        if KNOWN_WER[voice] <= TARGET_WER
        else pytest.param(
            voice,
            marks=pytest.mark.xfail(
                strict=True,
                reason=f"measured WER {KNOWN_WER[voice]:.0%} on this subset (target 10%)",
            ),
        )
        for voice in W.VOICES
    ],
)
@on_module_loop
async def test_wer_meets_the_target(results: dict[str, object], voice: str) -> None:
    result = results[voice]
    assert result.wer <= TARGET_WER, result.misses  # type: ignore[attr-defined]


@pytest.mark.parametrize("voice", W.VOICES)
@on_module_loop
async def test_wer_is_no_worse_than_measured(results: dict[str, object], voice: str) -> None:
    result = results[voice]
    assert result.utterances == len(W.TEST_SUBSET)  # type: ignore[attr-defined]
    assert result.total.reference_words == 25  # type: ignore[attr-defined]
    assert result.wer <= KNOWN_WER[voice] + 1e-9, result.misses  # type: ignore[attr-defined]

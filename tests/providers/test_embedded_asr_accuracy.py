"""The recognizer's accuracy measures: telephone pronunciation variants, dither, two passes.

The variant rules are pure functions over phones; the worker's decoding runs in this
process (``asr_worker._Worker`` with a list for its pipe), so a test can change its
limits and read every message it sends.
"""

from __future__ import annotations

import functools
import shutil
import subprocess
from typing import Any

import numpy as np
import pytest

from trunkline.media.wav import decode_wav
from trunkline.providers import asr_lexicon as lex
from trunkline.providers import asr_worker as w
from trunkline.rtp.g711 import ulaw_decode, ulaw_encode

pocketsphinx = pytest.importorskip("pocketsphinx")

GRAMMAR = (
    "#JSGF V1.0;\ngrammar digits;\n"
    "public <utterance> = my order number is <digit> <digit> <digit> | order status ;\n"
    "<digit> = oh | zero | one | two | three | four | five | six | seven | eight | nine ;\n"
)

# -- variant rules --------------------------------------------------------------------------


def test_grammar_words_leaves_out_rule_names_and_keywords() -> None:
    assert lex.grammar_words(GRAMMAR) == {
        "my", "order", "number", "is", "status",
        "oh", "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine",
    }  # fmt: skip


@pytest.mark.parametrize(
    ("phones", "variants"),
    [
        ("S IH K S", ["IH K S", "S IH K"]),  # six: either edge's /s/
        ("S EH V AH N", ["EH V AH N"]),  # seven
        ("Y EH S", ["Y EH"]),  # yes
        ("Z IY R OW", []),  # zero: a voiced /z/ at the start stays
        ("IH Z", ["IH"]),  # is: a final /z/ is mostly devoiced
        ("AO R D ER", ["AO D AH"]),  # order, non-rhotic
        ("S T AA R T", ["T AA R T", "S T AA T"]),  # start: the final /t/ stays
        ("R EH D", []),  # an /r/ before a vowel stays
        ("S", []),  # a word is never emptied
    ],
)
def test_telephone_variants(phones: str, variants: list[str]) -> None:
    assert [" ".join(v) for v in lex.telephone_variants(phones.split())] == variants


class FakeDictionary:
    def __init__(self, entries: dict[str, str]) -> None:
        self.entries = dict(entries)

    def lookup_word(self, word: str) -> str | None:
        return self.entries.get(word)

    def add_word(self, word: str, phones: str, update: bool = True) -> int:
        assert word not in self.entries
        self.entries[word] = phones
        return len(self.entries)


def test_add_variants_numbers_alternates_after_the_existing_ones() -> None:
    d = FakeDictionary({"six": "S IH K S", "read": "R EH D", "read(2)": "R IY D"})
    assert lex.add_variants(d, ["six", "read", "missing"]) == 2
    assert d.entries["six(2)"] == "IH K S" and d.entries["six(3)"] == "S IH K"
    assert "read(3)" not in d.entries and "missing" not in d.entries


def test_add_variants_stops_at_the_alternates_bound() -> None:
    full = {f"s({n})": "S AH S" for n in range(2, lex.MAX_ALTERNATES + 1)}
    d = FakeDictionary({"s": "S AH S", **full})
    assert lex.add_variants(d, ["s"]) == 0  # a dictionary claiming too many adds nothing


def test_variants_reach_a_real_decoder() -> None:
    decoder = pocketsphinx.Decoder(loglevel="FATAL", lm=None)
    lex.add_variants(decoder, ["six", "order"])
    alternates = set()
    n = 2
    while (pron := decoder.lookup_word(f"six({n})")) is not None:
        alternates.add(pron)
        n += 1
    assert {"IH K S", "S IH K"} <= alternates
    assert decoder.lookup_word("order(2)") == "AO D AH"


# -- the worker, in this process -----------------------------------------------------------


def test_dither_is_seeded_and_small() -> None:
    pcm = np.zeros(16000, "<i2").tobytes()
    a = w.dither(pcm, np.random.default_rng(0))
    b = w.dither(pcm, np.random.default_rng(0))
    x = np.frombuffer(a, "<i2")
    assert a == b
    assert set(np.unique(x)) == {0, 1} and 0.2 < x.mean() < 0.3
    top = np.full(4, 32767, "<i2").tobytes()
    assert np.frombuffer(w.dither(top, np.random.default_rng(0)), "<i2").max() == 32767


@functools.cache
def phone_audio(text: str) -> bytes:
    wav = subprocess.run(
        ["espeak-ng", "--stdout", "-v", "en-us", "-s", "160", "--", text],
        capture_output=True,
        check=True,
    ).stdout
    return ulaw_decode(ulaw_encode(decode_wav(wav)))


class Pipe:
    def __init__(self) -> None:
        self.sent: list[tuple[Any, ...]] = []

    def send(self, msg: tuple[Any, ...]) -> None:
        self.sent.append(msg)


def decode_in_process(settings: w.DecoderSettings, texts: list[str]) -> list[tuple[Any, ...]]:
    """Each text as one utterance of one stream; the FINAL messages."""
    pipe = Pipe()
    worker = w._Worker(settings, pipe)  # type: ignore[arg-type]
    worker.handle((w.OPEN, 1, GRAMMAR))
    for text in texts:
        audio = bytes(1600) + phone_audio(text) + bytes(4800)
        for i in range(0, len(audio), 1600):
            worker.handle((w.AUDIO, 1, audio[i : i + 1600]))
        worker.handle((w.FLUSH, 1))
    return [m for m in pipe.sent if m[0] == w.FINAL]


needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="needs espeak-ng")


@needs_espeak
def test_two_passes_are_deterministic_and_carry_the_mean_on() -> None:
    texts = ["my order number is one two three", "order status"]
    first = decode_in_process(w.DecoderSettings(), texts)
    again = decode_in_process(w.DecoderSettings(), texts)
    assert [m[2] for m in first] == texts
    assert [m[2:5] for m in first] == [m[2:5] for m in again]  # text, confidence, words
    assert all(m[6] > 0 for m in first)  # CPU of both passes is counted


@needs_espeak
def test_an_utterance_too_long_for_the_second_pass_keeps_the_first(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(w, "SECOND_PASS_MAX_S", 0.5)
    (final,) = decode_in_process(w.DecoderSettings(), ["order status"])
    (one_pass,) = decode_in_process(w.DecoderSettings(second_pass=False), ["order status"])
    assert final[2:5] == one_pass[2:5]
    assert final[2] == "order status"


@needs_espeak
def test_every_measure_can_be_switched_off() -> None:
    plain = w.DecoderSettings(dither=False, second_pass=False, variants=False)
    (final,) = decode_in_process(plain, ["order status"])
    assert final[2] == "order status"

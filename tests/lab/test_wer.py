"""WER: the pinned normaliser, the alignment, and their properties on arbitrary text."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trunkline.lab.textnorm import NORMALIZER_VERSION, normalize, number_words
from trunkline.lab.wer import MAX_CELLS, AlignedWord, WerResult, align, wer


def test_the_normaliser_version_is_pinned() -> None:
    # Changing the rules changes WERs: bump the version (and this test) on purpose only.
    assert NORMALIZER_VERSION == "1"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("OK, it's 42.", "okay it is forty two"),
        ("Okay! O.K.?", "okay okay"),
        (
            "Your order 1042 ships on the 21st.",
            "your order one zero four two ships on the twenty first",
        ),
        ("The PIN is 007.", "the pin is zero zero seven"),
        ("7 items, 15 boxes, 305 miles", "seven items fifteen boxes three hundred five miles"),
        ("1,500 people", "one thousand five hundred people"),
        ("2,000,000", "two million"),
        ("pi is 3.14", "pi is three point one four"),
        ("100th and 2nd and 3rd and 40th", "one hundredth and second and third and fortieth"),
        ("It costs $12 or $1.50", "it costs twelve dollars or one dollar fifty cents"),
        ("5% & more", "five percent and more"),
        ("at 3:30", "at three thirty"),
        ("I can't, I won't, let's go", "i can not i will not let us go"),
        ("we're, you've, they'll, she'd, I'm", "we are you have they will she would i am"),
        ("that's what's there", "that is what is there"),
        ("John's car isn't here", "johns car is not here"),
        ("It\u2019s fine", "it is fine"),
        ("Caf\u00e9 na\u00efve Stra\u00dfe", "cafe naive strasse"),
        ("um, uh, I gonna wanna... alright", "i going to want to all right"),
        ("<unk> [noise] hello <s>", "hello"),
        ("e-mail: a@b.c", "e mail a bc"),  # a period inside a word joins it
        ("", ""),
        ("  \t\n ", ""),
    ],
)
def test_normalize_examples(text: str, expected: str) -> None:
    assert normalize(text) == expected


def test_number_words() -> None:
    assert number_words(0) == "zero"
    assert number_words(19) == "nineteen"
    assert number_words(90) == "ninety"
    assert number_words(101) == "one hundred one"
    assert number_words(1_000_001) == "one million one"
    assert number_words(10**15 - 1).startswith("nine hundred ninety nine trillion")
    for bad in (-1, 10**15):
        with pytest.raises(ValueError):
            number_words(bad)


def test_long_digit_runs_are_read_digit_by_digit() -> None:
    assert normalize("call 5551234") == "call five five five one two three four"
    assert normalize("1,234,567,890,123,456,789") == " ".join(
        ["one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "zero"]
        + ["one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
    )


@settings(max_examples=400, deadline=None)
@given(st.text())
def test_normalize_is_idempotent_and_plain(text: str) -> None:
    once = normalize(text)
    assert normalize(once) == once
    assert re.fullmatch(r"([a-z]+( [a-z]+)*)?", once)


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.sampled_from("0123456789,.$%:'stndrh -OKok"), max_size=40))
def test_normalize_is_idempotent_on_number_soup(text: str) -> None:
    once = normalize(text)
    assert normalize(once) == once
    assert not re.search(r"\d", once)


# --- alignment -----------------------------------------------------------------------


def test_identical_texts_have_no_errors() -> None:
    r = wer("Thank you for calling.", "thank you for calling")
    assert (r.substitutions, r.deletions, r.insertions, r.reference_words) == (0, 0, 0, 4)
    assert r.wer == 0.0 and r.hits == 4
    assert all(step.op == "ok" for step in r.alignment)


def test_classic_example() -> None:
    r = wer("the cat sat on the mat", "the cat sit on mat")
    assert (r.substitutions, r.deletions, r.insertions) == (1, 1, 0)
    assert r.wer == pytest.approx(2 / 6)
    assert AlignedWord("sub", "sat", "sit") in r.alignment
    assert AlignedWord("del", "the", None) in r.alignment


def test_insertions_can_push_wer_past_one() -> None:
    r = wer("yes", "yes yes yes please")
    assert (r.substitutions, r.deletions, r.insertions) == (0, 0, 3)
    assert r.wer == 3.0


def test_normalisation_happens_before_alignment() -> None:
    assert wer("Your order number is 1042.", "your order number is one zero four two").wer == 0.0
    r = wer("It's 42 dollars", "it is forty three dollars")
    assert (r.substitutions, r.errors, r.reference_words) == (1, 1, 5)


def test_empty_reference() -> None:
    assert wer("", "").wer == 0.0
    r = wer("", "hello there")
    assert r.wer is None and r.insertions == 2 and r.reference_words == 0
    assert wer("hello there", "").wer == 1.0


def test_ties_prefer_substitution_then_deletion() -> None:
    r = align(["a", "b"], ["x"])
    assert [s.op for s in r.alignment] == ["del", "sub"]


def test_combine_adds_counts() -> None:
    total = WerResult.combine([wer("a b c d", "a x c d"), wer("e f", "e"), wer("", "g")])
    assert (total.substitutions, total.deletions, total.insertions) == (1, 1, 1)
    assert total.reference_words == 6 and total.wer == pytest.approx(0.5)
    assert WerResult.combine([]).wer == 0.0
    with pytest.raises(ValueError, match="normaliser"):
        WerResult.combine([WerResult(0, 0, 0, 1), WerResult(0, 0, 0, 1, normalizer="0")])


def test_too_long_to_align() -> None:
    with pytest.raises(ValueError, match="too long"):
        align(["a"] * MAX_CELLS, ["b"])


def _levenshtein(a: list[str], b: list[str]) -> int:
    """Textbook dynamic programme, for checking the vectorised one."""
    prev = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        cur = [i]
        for j, y in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (x != y)))
        prev = cur
    return prev[-1]


words = st.lists(st.sampled_from(["a", "b", "c", "d"]), max_size=12)


@settings(max_examples=300, deadline=None)
@given(words, words)
def test_alignment_is_optimal_and_consistent(ref: list[str], hyp: list[str]) -> None:
    r = align(ref, hyp)
    assert r.errors == _levenshtein(ref, hyp)
    assert [s.ref for s in r.alignment if s.ref is not None] == ref
    assert [s.hyp for s in r.alignment if s.hyp is not None] == hyp
    ops = [s.op for s in r.alignment]
    assert ops.count("sub") == r.substitutions
    assert ops.count("del") == r.deletions
    assert ops.count("ins") == r.insertions
    for step in r.alignment:
        assert (step.op == "ok") == (step.ref is not None and step.ref == step.hyp)


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=200), st.text(max_size=200))
def test_wer_never_fails(ref: str, hyp: str) -> None:
    r = wer(ref, hyp)
    assert r.normalizer == NORMALIZER_VERSION
    if r.wer is not None:
        assert r.wer >= 0.0
    assert wer(ref, ref).errors == 0


@settings(max_examples=200, deadline=None)
@given(st.integers(-(10**16), 10**16))
def test_number_words_for_any_int(n: int) -> None:
    try:
        text = number_words(n)
    except ValueError:
        assert not 0 <= n < 10**15
        return
    assert normalize(text) == text
    if n < 1000:  # written in digits, a short number reads as the same words
        assert normalize(str(n)) == text

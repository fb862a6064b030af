"""The keyword spotter's decoding, run in worker processes (see :mod:`trunkline.lab.kws`).

Method
------
A phrase is spotted with a pocketsphinx grammar search in which it competes with a
*phone loop*: ``public <s> = ( /W/ <phrase> | <phone> )* ;``, each of the 39 en-us
phones being a one-phone pseudo-word. Where the phrase was said, its words explain
the audio better than any string of phones weighted ``W`` times less; where it was
not, the loop does. The phrase is found when the best path goes through it.

This was chosen by measurement (``bench/kws_accuracy.py``: 28 Acme prompts rendered
by espeak-ng through G.711 u-law, 21 phrases looked for in each, one decode per pair).
With ``PHRASE_WEIGHT`` 1e4 it finds 67% of the phrases said, at 3.4% false alarms;
1e2 gives 47% at 1.8%, 1e6 70% at 4.5%, 1e10 80% at 9.3%. pocketsphinx's own
keyphrase search found fewer at every false alarm rate (33% at 1.3%, 53% at 8.2%;
``bench/README.md``); in
prototypes not kept, the general language model recognised too few words of this
audio to search its text (6 of 34 phrases), and a likelihood ratio between the forced
phrase and the free phone loop did not separate said from unsaid phrases.

Audio: the en-us model is 16 kHz, so the 8 kHz audio is upsampled with the
recogniser's own :class:`~trunkline.providers.asr_worker.Upsampler2x` and decoded from
the cepstral mean measured on telephone speech (``TELEPHONE_CMNINIT``).

Each process keeps one decoder (about 30 MB, made once by :func:`init`). Functions
here take and return plain values (picklable).
"""

from __future__ import annotations

from typing import Any

from trunkline.lab.textnorm import normalize
from trunkline.providers.asr_worker import TELEPHONE_CMNINIT, Upsampler2x

#: The en-us acoustic model's phones (its ``mdef`` without SIL): the loop's pseudo-words.
PHONES = (
    *("AA", "AE", "AH", "AO", "AW", "AY", "B", "CH", "D", "DH", "EH", "ER", "EY", "F"),
    *("G", "HH", "IH", "IY", "JH", "K", "L", "M", "N", "NG", "OW", "OY", "P", "R", "S"),
    *("SH", "T", "TH", "UH", "UW", "V", "W", "Y", "Z", "ZH"),
)
#: The phrase's weight against one phone of the loop (a JSGF alternative weight). Higher
#: finds more phrases and raises more false alarms; see the module docstring.
PHRASE_WEIGHT = 1e4
#: Silence added after the audio, so a phrase at the very end can complete (16 kHz).
_TAIL = bytes(2 * 16000 // 5)

_decoder: Any = None


def _pseudo_word(phone: str) -> str:
    return f"phn_{phone.lower()}"


def init() -> None:
    """Make this process's decoder (the pool's initializer; also called lazily)."""
    global _decoder
    import pocketsphinx  # imported here: the lab's main process never loads it

    # No lattice pass: over a phone loop its lattice is huge (hyp() took 3.7 s for a 2 s
    # clip with it, 0.1 s of decoding without), and the Viterbi path is the answer.
    config = pocketsphinx.Config(
        loglevel="FATAL", cmninit=TELEPHONE_CMNINIT, lm=None, bestpath=False
    )
    decoder = pocketsphinx.Decoder(config)
    for i, phone in enumerate(PHONES):
        decoder.add_word(_pseudo_word(phone), phone, i == len(PHONES) - 1)
    _decoder = decoder


def phrase_words(phrase: str, known: Any = None) -> list[str] | None:
    """The dictionary words of ``phrase`` as spoken, or None when one is unknown.

    Tried as written ("didn't hear anything"), then through the WER normaliser, which
    spells numbers out ("42" -> "forty two"). ``known(word)`` says whether the
    recogniser's dictionary has ``word`` (default: this process's decoder's).
    """
    if known is None:
        if _decoder is None:
            init()
        known = _decoder.lookup_word
    written = "".join(c if c.isalpha() or c == "'" else " " for c in phrase.lower()).split()
    for words in (written, normalize(phrase).split()):
        if words and all(known(w) for w in words):
            return words
    return None


def _grammar(words: list[str], weight: float) -> str:
    loop = " | ".join(_pseudo_word(p) for p in PHONES)
    return (
        "#JSGF V1.0;\ngrammar spot;\n"
        f"<phone> = {loop};\n<phrase> = {' '.join(words)};\n"
        f"public <s> = ( /{weight:f}/ <phrase> | /1/ <phone> )* ;\n"
    )


def spot(
    pcm: bytes, phrases: tuple[str, ...], weight: float = PHRASE_WEIGHT
) -> dict[str, bool | None]:
    """Which ``phrases`` are said in ``pcm`` (8 kHz s16le): True, False, or None for a
    phrase with a word the recogniser does not know."""
    if _decoder is None:
        init()
    decoder = _decoder
    audio = Upsampler2x().process(pcm) + _TAIL
    found: dict[str, bool | None] = {}
    for phrase in phrases:
        words = phrase_words(phrase)
        if words is None:
            found[phrase] = None
            continue
        decoder.add_jsgf_string("spot", _grammar(words, weight))
        decoder.activate_search("spot")
        decoder.start_utt()
        decoder.process_raw(audio, full_utt=True)
        decoder.end_utt()
        hyp = decoder.hyp()
        said = [w.split("(")[0] for w in (hyp.hypstr.split() if hyp is not None else ())]
        found[phrase] = _contains(said, words)
    return found


def _contains(said: list[str], words: list[str]) -> bool:
    n = len(words)
    return any(said[i : i + n] == words for i in range(len(said) - n + 1))

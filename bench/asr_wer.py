"""Word error rate of the embedded recognizer on the Acme phrases, in three espeak-ng voices.

Run:  .venv/bin/python bench/asr_wer.py [--voices en-us en-gb en-us+f3] [--rate 160]
      .venv/bin/python bench/asr_wer.py --dev          # six other voices, for tuning
      .venv/bin/python bench/asr_wer.py --measure-cmn  # the telephone CMN prior
      .venv/bin/python bench/asr_wer.py --no-second-pass --no-dither --no-variants

Every phrase the Acme agent (``examples/acme/agent.yaml``) listens for is spoken by
espeak-ng, cut to 8 kHz, sent through G.711 u-law and back (what a phone line delivers),
and recognised by ``PocketsphinxASR`` with the JSGF grammar of the flow state it belongs
to, which is the grammar the pipeline loads in that state:

- the example phrases of every intent: a state's own in that state, the global ones
  (agent, goodbye, main menu) in ``main`` (they are part of every state's grammar);
- slot utterances the grammar accepts: order numbers in each carrier phrase of
  ``order_status``, dates in each form and carrier phrase of ``reschedule``, and every
  yes/no phrase of ``confirm_day`` (``anything_else`` has the same yes/no grammar).

Each utterance is pushed as the pipeline would push it: the pre-roll before the VAD
confirmed speech (``LEAD_MS`` of line silence), the speech, then the endpoint silence
(``TRAIL_MS``), in 20 ms frames, then one flush.

WER is the lab's (``trunkline.lab.wer``): word-level Levenshtein alignment after its
normaliser, (substitutions + deletions + insertions) / reference words, counts added up
over a voice's utterances. "understood" counts the utterances whose transcript means the
same to the agent as the reference (same intent and slot values under the state's
grammar: "yeah" for "yes"). Accuracy is deterministic (same audio, same decoder), so
``tests/providers/test_wer_voices.py`` asserts it on ``TEST_SUBSET``; this script covers
every phrase and prints the misses.

The three voices are the test set. Settings of the recognizer are chosen on ``--dev``
(the same phrases in ``DEV_VOICES``, six other espeak-ng voices), and its CMN prior is
measured on ``CMN_SENTENCES`` (no agent phrase) in ``CMN_VOICES`` (none of the three).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import functools
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from trunkline.agent import AgentSpec, GrammarMatcher, load_agent_spec, state_grammars
from trunkline.agent.lexicon import words
from trunkline.agent.slots import DEFAULT_NO, DEFAULT_YES
from trunkline.lab.wer import WerResult, wer
from trunkline.media.audio import FRAME_BYTES, SAMPLE_RATE
from trunkline.media.wav import decode_wav
from trunkline.providers.asr import ASR, Final
from trunkline.providers.asr_worker import GRAMMAR_OPTIONS, DecoderSettings
from trunkline.rtp.g711 import ulaw_decode, ulaw_encode

ACME = Path(__file__).resolve().parents[1] / "examples" / "acme" / "agent.yaml"
#: Three distinct espeak-ng voices: American and British male, and an American female
#: variant (a higher pitch and a different formant set).
VOICES = ("en-us", "en-gb", "en-us+f3")
#: Voices to tune on (``--dev``): accents and pitches the test voices do not have.
DEV_VOICES = ("en-us-nyc", "en-gb-x-rp", "en-029", "en-us+f2", "en-gb-scotland", "en-us+m3")
#: Voices and sentences ``--measure-cmn`` measures the telephone CMN prior on.
CMN_VOICES = (
    "en-gb-scotland", "en-gb-x-rp", "en-029", "en-us-nyc", "en-gb-x-gbclan", "en-us+m3",
    "en-us+f2", "en-gb+f4", "en-us+m7", "en-gb-x-gbcwmd",
)  # fmt: skip
CMN_SENTENCES = (
    "hello I am calling about my bill from last month",
    "could you tell me when the store opens on saturday",
    "I would like to speak with someone in the billing department",
    "my phone number is five five five two one nine eight",
    "the package never arrived at my house",
    "can I pay with a credit card over the phone",
    "I need to cancel my subscription please",
    "what time does the pharmacy close tonight",
    "the internet has been down since yesterday morning",
    "please send the invoice to my email address",
    "I moved to a new address in the city last week",
    "is there a discount for students or seniors",
    "my account was charged twice for the same thing",
    "I want to return these shoes because they do not fit",
    "how long will the repair take",
    "the driver left the box at the wrong door",
    "can you help me reset my password",
    "I am waiting for a refund of forty dollars",
    "we booked a table for six people at eight thirty",
    "the television remote stopped working after a week",
    "sorry could you repeat that more slowly",
    "I think there is a mistake on my statement",
    "thank you very much for your help today",
    "the weather is cold and windy this afternoon",
    "my flight leaves at seven in the evening",
    "please connect me with the manager",
    "I have a question about the warranty",
    "the heating in the apartment is broken again",
    "yes I can hear you clearly now",
    "no I do not want any extra services",
)
#: espeak-ng's default speaking rate, about a caller's pace.
RATE_WPM = 160
#: Line silence before the speech: the pipeline's pre-roll is 300 ms and the VAD confirms
#: speech 60 ms after its onset, so ~240 ms of what came before reaches the recognizer.
LEAD_MS = 240
#: Silence after the speech: frames go on to the recognizer until the endpoint fires,
#: the Acme agent's endpoint silence (700 ms).
TRAIL_MS = 700
#: Streams decoded at once: each is ~2 s of audio, and a worker's backlog is bounded
#: (10 s), so a few at a time keep every stream well inside it.
CONCURRENCY = 2
#: Longest wait for one utterance's Final (a loaded 2-core machine, generously).
FINAL_TIMEOUT_S = 30.0
#: Order numbers for the 5-digit slot, "oh" among them (the digit word pocketsphinx
#: most often inserts).
ORDER_NUMBERS = ("one two three four five", "nine eight seven six five", "four oh nine two seven")
#: Dates in each form the ``reschedule`` grammar accepts (relative, weekday, month day).
DATES = (
    "tomorrow", "friday", "the day after tomorrow", "today", "next monday", "this thursday",
    "march the third", "june twenty first", "the second of may",
)  # fmt: skip
#: The test's subset: one or two of every kind (intent, global intent, digits in a
#: carrier phrase, a date, yes and no), small enough for a few seconds per voice.
TEST_SUBSET = (
    ("main", "order status"),
    ("main", "reschedule appointment"),
    ("main", "talk to a person"),
    ("main", "goodbye"),
    ("order_status", "my order number is one two three four five"),
    ("reschedule", "tomorrow please"),
    ("reschedule", "on friday"),
    ("confirm_day", "yes"),
    ("confirm_day", "no thanks"),
)
#: The date spoken dates are resolved against when comparing meanings (any fixed day).
TODAY = dt.date(2025, 1, 6)


@dataclass(frozen=True, slots=True)
class Case:
    """One phrase and the flow state whose grammar it is recognised with."""

    state: str
    text: str


def acme_cases(spec: AgentSpec) -> list[Case]:
    """Every phrase of the bench (see the module docstring), in a fixed order."""
    cases: list[Case] = []
    seen: set[tuple[str, str]] = set()

    def add(state: str, phrase: Iterable[str]) -> None:
        text = " ".join(phrase)
        if (state, text) not in seen:
            seen.add((state, text))
            cases.append(Case(state, text))

    for state in spec.states.values():
        for intent in state.intents:
            for example in intent.examples:
                add(state.name, example)
    for intent in spec.global_intents:
        for example in intent.examples:
            add(spec.start, example)
    for i, phrase in enumerate(spec.states["order_status"].slots[0].phrases):
        for number in (ORDER_NUMBERS[i % len(ORDER_NUMBERS)], ORDER_NUMBERS[-1 - i % 2]):
            add("order_status", _fill(phrase, number))
    day_phrases = spec.states["reschedule"].slots[0].phrases
    for i, date in enumerate(DATES):
        add("reschedule", _fill(day_phrases[i % len(day_phrases)], date))
    for answer in (*DEFAULT_YES, *DEFAULT_NO):
        add("confirm_day", answer.split())
    return cases


def _fill(phrase: Sequence[str], value: str) -> list[str]:
    return [value if w == "{value}" else w for w in phrase]


def test_cases() -> list[Case]:
    """The test's subset (``TEST_SUBSET``)."""
    return [Case(state, text) for state, text in TEST_SUBSET]


@functools.cache
def render(text: str, voice: str, rate_wpm: int = RATE_WPM) -> bytes:
    """``text`` spoken by espeak-ng, as 8 kHz PCM after a G.711 u-law round trip.

    Raises:
        subprocess.CalledProcessError: espeak-ng failed (an unknown voice).
    """
    wav = subprocess.run(
        ["espeak-ng", "--stdout", "-v", voice, "-s", str(rate_wpm), "--", text],
        capture_output=True,
        check=True,
        timeout=30,
    ).stdout
    return ulaw_decode(ulaw_encode(decode_wav(wav)))


@dataclass
class VoiceResult:
    """One voice's totals; ``misses`` lists (case, what was heard) for every error."""

    voice: str
    results: list[WerResult] = field(default_factory=list)
    exact: int = 0
    understood: int = 0
    misses: list[tuple[Case, str]] = field(default_factory=list)

    @property
    def total(self) -> WerResult:
        """The voice's counts added up."""
        return WerResult.combine(self.results)

    @property
    def utterances(self) -> int:
        return len(self.results)

    @property
    def wer(self) -> float:
        return self.total.wer or 0.0

    def add(self, case: Case, heard: str, matcher: GrammarMatcher | None = None) -> None:
        """Count one utterance; ``matcher`` (the state's) also judges its meaning."""
        result = wer(case.text, heard)
        self.results.append(result)
        if result.errors:
            self.misses.append((case, heard))
        else:
            self.exact += 1
        if matcher is not None and same_meaning(matcher, words(case.text), words(heard)):
            self.understood += 1


def same_meaning(
    matcher: GrammarMatcher, reference: tuple[str, ...], heard: tuple[str, ...]
) -> bool:
    """Whether ``heard`` completes the grammar with the reference's intent and slot values.

    "yeah" for "yes" is a word error but the same answer; the agent acts on the meaning.
    """
    want = matcher.match(reference, today=TODAY)
    got = matcher.match(heard, today=TODAY)
    return (
        want is not None and got is not None and got.complete
        and (got.intent, got.slots) == (want.intent, want.slots)
    )  # fmt: skip


def phone_utterance(pcm: bytes) -> list[bytes]:
    """Pre-roll silence, the speech, endpoint silence, as whole 20 ms frames."""
    per_ms = SAMPLE_RATE * 2 // 1000
    audio = bytes(LEAD_MS * per_ms) + pcm + bytes(TRAIL_MS * per_ms)
    audio += bytes(-len(audio) % FRAME_BYTES)
    return [audio[i : i + FRAME_BYTES] for i in range(0, len(audio), FRAME_BYTES)]


async def recognise(asr: ASR, grammar: str, pcm: bytes, call_id: str) -> str:
    """The Final text of one utterance on a fresh stream with ``grammar``.

    Raises:
        ProviderError: the recognizer failed the stream.
        TimeoutError: no Final within ``FINAL_TIMEOUT_S``.
    """
    stream = asr.stream(grammar=grammar, call_id=call_id)
    try:
        for frame in phone_utterance(pcm):
            stream.push(frame)
        stream.end_input()
        text = ""
        async with asyncio.timeout(FINAL_TIMEOUT_S):
            async for event in stream:
                if isinstance(event, Final):
                    text = event.text
        return text
    finally:
        await stream.aclose()


async def measure(
    asr: ASR,
    spec: AgentSpec,
    cases: Sequence[Case],
    voices: Sequence[str] = VOICES,
    *,
    rate_wpm: int = RATE_WPM,
) -> dict[str, VoiceResult]:
    """Render and recognise every case in every voice; results per voice."""
    grammars = state_grammars(spec)
    results = {voice: VoiceResult(voice) for voice in voices}
    gate = asyncio.Semaphore(CONCURRENCY)
    loop = asyncio.get_running_loop()

    async def one(n: int, voice: str, case: Case) -> None:
        grammar = grammars[case.state]
        if grammar.jsgf is None:
            raise ValueError(f"state {case.state!r} hears no speech")
        async with gate:
            pcm = await loop.run_in_executor(None, render, case.text, voice, rate_wpm)
            heard = await recognise(asr, grammar.jsgf, pcm, f"wer-{voice}-{n}")
        results[voice].add(case, heard, grammar.matcher)

    await asyncio.gather(*(one(n, voice, case) for voice in voices for n, case in enumerate(cases)))
    return results


def print_results(results: dict[str, VoiceResult], *, show_misses: bool = True) -> None:
    print(
        f"{'voice':<10} {'utterances':>10} {'words':>6} {'errors':>6} {'WER':>7}"
        f" {'exact':>6} {'understood':>10}"
    )
    for r in results.values():
        total = r.total
        print(
            f"{r.voice:<10} {r.utterances:>10} {total.reference_words:>6} {total.errors:>6}"
            f" {r.wer * 100:>6.1f}% {r.exact:>6} {r.understood:>10}"
        )
    if show_misses:
        for r in results.values():
            for case, heard in r.misses:
                print(f"  {r.voice}: [{case.state}] {case.text!r} -> {heard!r}")


def measure_cmn(rate_wpm: int = RATE_WPM) -> str:
    """The telephone CMN prior: ``CMN_SENTENCES`` in ``CMN_VOICES`` through G.711.

    Each voice's sentences are decoded twice in a row (the live CMN forgets its start),
    the mean is read after every sentence of the second round and averaged, and the
    voices' averages are averaged. Digital silence has no energy and the live CMN skips
    it, so this is a mean of speech. No dither: dithered silence would count.
    """
    import numpy as np
    import pocketsphinx

    from trunkline.providers.asr_worker import TELEPHONE_CMNINIT, Upsampler2x

    decoder = pocketsphinx.Decoder(loglevel="FATAL", lm=None)
    decoder.add_jsgf_string("any", "#JSGF V1.0;\ngrammar g;\npublic <s> = hello ;\n")
    decoder.activate_search("any")
    silence_lead, silence_trail = bytes(LEAD_MS * 16), bytes(TRAIL_MS * 16)
    means = []
    for voice in CMN_VOICES:
        decoder.set_cmn(TELEPHONE_CMNINIT)
        seen = []
        for round_ in range(2):
            for text in CMN_SENTENCES:
                pcm = Upsampler2x().process(
                    silence_lead + render(text, voice, rate_wpm) + silence_trail
                )
                decoder.start_utt()
                decoder.process_raw(pcm, True, False)  # features and CMN only, no search
                decoder.end_utt()
                if round_:
                    seen.append([float(x) for x in decoder.get_cmn().split(",")])
        means.append(np.mean(seen, axis=0))
        print(f"  {voice:<16} " + " ".join(f"{x:6.1f}" for x in means[-1]), flush=True)
    return ",".join(f"{x:.2f}" for x in np.mean(means, axis=0))


async def main_async(args: argparse.Namespace) -> None:
    from trunkline.providers.embedded_asr import PocketsphinxASR

    if args.measure_cmn:
        print(f"CMN prior over {len(CMN_SENTENCES)} sentences x {len(CMN_VOICES)} voices:")
        print(measure_cmn(args.rate))
        return
    if args.dev:
        args.voices = list(DEV_VOICES)
    spec = load_agent_spec(ACME)
    cases = test_cases() if args.subset else acme_cases(spec)
    print(
        f"{len(cases)} phrases x {len(args.voices)} voices, {args.rate} wpm, "
        f"G.711 u-law at 8 kHz, per-state grammars of {ACME.name}",
        flush=True,
    )
    options = dict(GRAMMAR_OPTIONS)
    for item in args.decoder_option:
        key, _, value = item.partition("=")
        options[key] = _option_value(value)
    if options != GRAMMAR_OPTIONS:
        print(f"grammar decoder options: {options}")
    settings = DecoderSettings(
        grammar_options=options,
        dither=not args.no_dither,
        second_pass=not args.no_second_pass,
        variants=not args.no_variants,
    )
    off = [n for n in ("dither", "second_pass", "variants") if not getattr(settings, n)]
    if off:
        print(f"off: {', '.join(off)}")
    started = time.monotonic()
    async with PocketsphinxASR(workers=args.workers, settings=settings) as asr:
        results = await measure(asr, spec, cases, args.voices, rate_wpm=args.rate)
        stats = asr.stats
    print_results(results)
    print(
        f"decode CPU {1000 * stats.cpu_seconds / max(stats.audio_seconds, 1e-9):.0f} ms per "
        f"second of audio over {stats.utterances} utterances; "
        f"wall {time.monotonic() - started:.1f} s"
    )


def _option_value(text: str) -> bool | float | str:
    """A pocketsphinx option value from the command line: yes/no, a number, or text."""
    if text.lower() in ("yes", "true", "no", "false"):
        return text.lower() in ("yes", "true")
    try:
        return float(text)
    except ValueError:
        return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--voices", nargs="+", default=list(VOICES))
    parser.add_argument("--rate", type=int, default=RATE_WPM, help="words per minute")
    parser.add_argument("--workers", type=int, default=None, help="ASR worker processes")
    parser.add_argument("--subset", action="store_true", help="only the test's subset")
    parser.add_argument("--dev", action="store_true", help="the tuning voices (DEV_VOICES)")
    parser.add_argument("--measure-cmn", action="store_true", help="print the CMN prior")
    parser.add_argument("--no-dither", action="store_true", help="no dither")
    parser.add_argument("--no-second-pass", action="store_true", help="one decoding pass")
    parser.add_argument("--no-variants", action="store_true", help="no dictionary variants")
    parser.add_argument(
        "--decoder-option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a pocketsphinx option for the grammar decoder, e.g. pip=2 or dither=yes",
    )
    args = parser.parse_args()
    try:
        asyncio.run(main_async(args))
    except subprocess.CalledProcessError as exc:
        sys.exit(f"espeak-ng failed: {exc.stderr.decode(errors='replace').strip()}")


if __name__ == "__main__":
    main()

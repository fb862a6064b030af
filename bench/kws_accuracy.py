"""Hit and false-alarm rates of the lab's keyword spotter on the Acme agent's prompts.

Run:  .venv/bin/python bench/kws_accuracy.py [--voices en-us] [--weights 1e2 1e4 1e6]
                                             [--prompts N] [--method grammar|kws]

Every prompt the Acme agent (``examples/acme/agent.yaml``) can say, with the demo CRM's
values filled in, is spoken by espeak-ng, cut to 8 kHz and sent through G.711 u-law and
back, as the lab receives an agent's audio. Then every phrase the Acme scenarios
expect (``examples/acme/scenarios/*.yaml``), plus a few words of the agent's vocabulary,
is looked for in every prompt, one decode per (prompt, phrase):

- a **hit** is a phrase found in a prompt whose text contains it (as whole words);
- a **false alarm** is a phrase found in a prompt whose text does not contain it.

``--method grammar`` is the lab's spotter (``trunkline.lab.kws_worker.spot``: the phrase
against a phone loop, weighted ``--weights``); ``--method kws`` is pocketsphinx's own
keyphrase search at the thresholds given as ``--weights`` (e.g. 1e-20), for comparison.

Decoding is deterministic (same audio, same decoder), so rates do not vary run to run;
the CPU figures do, and are this process's own (``resource.getrusage``), per second of
audio per phrase: provisional on a shared machine.
"""

from __future__ import annotations

import argparse
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from trunkline.lab import kws_worker
from trunkline.media.wav import decode_wav
from trunkline.providers.asr_worker import TELEPHONE_CMNINIT, Upsampler2x
from trunkline.rtp.g711 import ulaw_decode, ulaw_encode

ROOT = Path(__file__).resolve().parent.parent
SCENARIOS = ROOT / "examples" / "acme" / "scenarios"

#: What the Acme agent says, its templates filled with the demo CRM's data (order 12345
#: shipped, 24680 being prepared, 11111 delivered; PIN 1234's balance 42.50). Order
#: numbers are read digit by digit as the agent's renderer spells them.
PROMPTS = (
    "Thank you for calling Acme.",
    "How can I help you? You can say order status, reschedule appointment, "
    "account balance, or talk to a person.",
    "Please say order status, reschedule appointment, account balance, or agent.",
    "Please say or type your five digit order number.",
    "Order numbers have five digits.",
    "One moment while I look that up.",
    "Order 1 2 3 4 5 is shipped. It should arrive on Friday.",
    "Order 2 4 6 8 0 is being prepared. It will ship within two days.",
    "Order 1 1 1 1 1 is delivered. It was delivered on Monday.",
    "I couldn't find order 9 9 9 9 9.",
    "Which day would you like instead? For example, tomorrow or friday.",
    "Please say a day such as tomorrow or monday.",
    "You said tomorrow. Shall I book it?",
    "Please say yes or no.",
    "You are booked for Friday.",
    "Okay, let's pick another day.",
    "Please type your four digit pin on the keypad, then press pound.",
    "Your pin has four digits.",
    "That pin doesn't match our records.",
    "Your balance is 42.50 dollars.",
    "Is there anything else I can help you with?",
    "Thank you for calling Acme. Goodbye.",
    "Please hold while I transfer you.",
    "Sorry, I didn't hear anything.",
    "I still can't hear you. Please call again later. Goodbye.",
    "Sorry, I didn't catch that.",
    "Let me get you to someone who can help.",
    "Sorry, I can't reach our order system right now.",
)
#: Words of the agent's vocabulary looked for besides the scenarios' phrases: more
#: chances for a false alarm on prompts that do not say them.
EXTRA_PHRASES = ("appointment", "monday", "tomorrow", "records", "hold", "sorry", "dollars")


def scenario_phrases() -> list[str]:
    """Every ``contains`` phrase of the Acme scenarios (a bare string expects itself)."""
    found: list[str] = []
    for path in sorted(SCENARIOS.glob("*.yaml")):
        doc = yaml.safe_load(path.read_text())
        for turn in doc.get("turns", []):
            expect = turn.get("expect")
            phrases = [expect] if isinstance(expect, str) else (expect or {}).get("contains", [])
            found += [p.lower() for p in phrases if p.lower() not in found]
    return found + [p for p in EXTRA_PHRASES if p not in found]


def _words(text: str) -> str:
    return " " + " ".join(re.sub(r"[^a-z0-9' ]+", " ", text.lower()).split()) + " "


def says(prompt: str, phrase: str) -> bool:
    """Whether ``prompt``'s text holds ``phrase`` as whole words."""
    return _words(phrase) in _words(prompt)


def render(text: str, voice: str) -> bytes:
    """``text`` by espeak-ng, at 8 kHz, through G.711 u-law and back."""
    wav = subprocess.run(
        ["espeak-ng", "-v", voice, "--stdout", "--", text],
        check=True, capture_output=True, timeout=30,
    ).stdout  # fmt: skip
    return ulaw_decode(ulaw_encode(decode_wav(wav)))


def kws_mode(pcm: bytes, phrases: tuple[str, ...], threshold: float) -> dict[str, bool | None]:
    """pocketsphinx's keyphrase search, one phrase at a time (for comparison)."""
    import pocketsphinx

    config = pocketsphinx.Config(loglevel="FATAL", cmninit=TELEPHONE_CMNINIT, lm=None)
    decoder = pocketsphinx.Decoder(config)
    audio = Upsampler2x().process(pcm) + bytes(6400)
    out: dict[str, bool | None] = {}
    for phrase in phrases:
        words = kws_worker.phrase_words(phrase, decoder.lookup_word)
        if words is None:
            out[phrase] = None
            continue
        with tempfile.NamedTemporaryFile("w", suffix=".kws", delete=False) as f:
            f.write(f"{' '.join(words)} /{threshold:g}/\n")
        decoder.add_kws("spot", f.name)
        decoder.activate_search("spot")
        decoder.start_utt()
        decoder.process_raw(audio, full_utt=True)
        decoder.end_utt()
        hyp = decoder.hyp()
        out[phrase] = hyp is not None and " ".join(words) in hyp.hypstr
        Path(f.name).unlink()
    return out


def cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--voices", nargs="+", default=["en-us"])
    parser.add_argument("--weights", nargs="+", type=float, default=[kws_worker.PHRASE_WEIGHT])
    parser.add_argument("--prompts", type=int, default=len(PROMPTS), help="use the first N")
    parser.add_argument("--method", choices=("grammar", "kws"), default="grammar")
    args = parser.parse_args(argv)
    phrases = tuple(scenario_phrases())
    prompts = PROMPTS[: args.prompts]
    print(f"{len(prompts)} prompts x {len(phrases)} phrases, method {args.method}")
    kws_worker.init()
    for voice in args.voices:
        audio = [render(p, voice) for p in prompts]
        seconds = sum(len(a) for a in audio) / 16000
        for weight in args.weights:
            hits = positives = alarms = negatives = unknown = 0
            missed: list[str] = []
            false: list[str] = []
            cpu0, wall0 = cpu_s(), time.monotonic()
            for prompt, pcm in zip(prompts, audio, strict=True):
                if args.method == "grammar":
                    found = kws_worker.spot(pcm, phrases, weight)
                else:
                    found = kws_mode(pcm, phrases, weight)
                for phrase in phrases:
                    if found[phrase] is None:
                        unknown += 1
                    elif says(prompt, phrase):
                        positives += 1
                        hits += bool(found[phrase])
                        if not found[phrase]:
                            missed.append(f"{phrase!r} in {prompt[:40]!r}")
                    else:
                        negatives += 1
                        alarms += bool(found[phrase])
                        if found[phrase]:
                            false.append(f"{phrase!r} in {prompt[:40]!r}")
            cpu = cpu_s() - cpu0
            print(
                f"{voice:10s} weight {weight:<8g} hits {hits}/{positives} "
                f"({100 * hits / max(1, positives):.0f}%)  false alarms {alarms}/{negatives} "
                f"({100 * alarms / max(1, negatives):.1f}%)  unknown {unknown}  "
                f"CPU {1000 * cpu / (seconds * len(phrases)):.0f} ms per audio s per phrase "
                f"(wall {time.monotonic() - wall0:.0f} s)"
            )
            for line in missed[:12]:
                print(f"    missed {line}")
            for line in false[:12]:
                print(f"    false alarm {line}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The pocketsphinx worker process: decodes the audio of the streams pinned to it.

Theory of operation
-------------------
``worker_main`` runs in a child process (``multiprocessing`` spawn) with one duplex
pipe to the parent (:mod:`trunkline.providers.embedded_asr`). It reads messages in
order and answers on the same pipe; all decoding happens here, off the parent's event
loop. Messages are tuples (pickled by ``Connection``):

    parent -> worker                         worker -> parent
    (OPEN, sid, jsgf | None)                 (READY,)
    (AUDIO, sid, pcm 8 kHz s16le)            (PARTIAL, sid, text)
    (FLUSH, sid)                             (FINAL, sid, text, confidence, words,
    (CLOSE, sid)                                     audio_s, cpu_s)
    (STOP,)                                  (ERROR, sid, message)

Decoders are bound to *utterances*, not streams: a stream takes an idle
``pocketsphinx.Decoder`` at its first audio after a flush and gives it back at the next
flush. A decoder holds ~28 MB (acoustic model) or ~96 MB (with the general language
model) and takes 0.1-0.3 s to create, while a call spends most of its time listening
to prompts or silence between utterances; binding per utterance keeps the decoder count
at the number of callers speaking at once. The stream keeps its cepstral mean (the
channel's loudness and colour) across utterances and restores it on whichever decoder
it gets next. Grammar and general-model decoders are pooled apart (the grammar ones
load no language model).

Audio: the en-us acoustic model is 16 kHz wideband. Telephone audio is upsampled
8 -> 16 kHz here (a streaming polyphase FIR, state kept per stream so batch edges leave
no clicks); decoding the 8 kHz audio natively with the model's filterbank moved under
4 kHz recognised almost nothing (figures in ``embedded_asr``'s module docstring). The
empty 4-8 kHz band shifts the cepstral mean far from the model's default, so new
streams start from ``TELEPHONE_CMNINIT``, measured on upsampled G.711 speech. The
upsampled audio gets a deterministic dither (one LSB added to a quarter of the samples,
as pocketsphinx's ``-dither`` does, but from a generator seeded per utterance, so the
same audio always gives the same transcript): digital silence and the empty upper band
otherwise sit at the log floor of the filterbank.

Two passes (grammar streams): pocketsphinx's live CMN holds the mean fixed through an
utterance (it only moves after ~5 s), so a stream's first utterance is normalised with
the prior alone, which fits one voice and not the next. The worker keeps the
utterance's audio, and at the flush decodes it again with the mean updated by the
utterance itself (``Decoder.get_cmn(update=True)``). Partial results come from the
first pass; the Final from the second. It doubles the decode CPU of grammar streams.

Dictionary: grammar words get telephone pronunciation variants
(:mod:`trunkline.providers.asr_lexicon`) in each decoder before a grammar is compiled.

Measured with ``bench/asr_wer.py`` (65 Acme phrases, G.711, fresh stream per phrase),
WER en-us / en-gb / en-us+f3: 24.9% / 45.9% / 33.5% before these changes; see
``bench/README.md`` for the figures after and for what each step gave on voices that
are not the benchmark's.

Grammars (JSGF text) are compiled once per worker for validation and once per decoder
as a named search, both cached by the exact text (LRU, ``MAX_GRAMMARS``).
"""

from __future__ import annotations

import os
import signal
import sys
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

import numpy as np
import numpy.typing as npt

from trunkline.providers import asr_lexicon

__all__ = [
    "GRAMMAR_OPTIONS",
    "GRAMMAR_PREFIX",
    "GRAMMAR_WHOLE",
    "LM_OPTIONS",
    "TELEPHONE_CMNINIT",
    "DecoderSettings",
    "Upsampler2x",
    "dither",
    "worker_main",
]

OPEN, AUDIO, FLUSH, CLOSE, STOP = "open", "audio", "flush", "close", "stop"
READY, PARTIAL, FINAL, ERROR = "ready", "partial", "final", "error"

#: Cepstral mean of en-us features over speech that went through 8 kHz G.711 and this
#: upsampler: 30 everyday sentences (none of an agent's phrases) in 10 espeak-ng voices
#: that are not the benchmark's, the mean each voice's live CMN settles on, averaged
#: over the voices (``bench/asr_wer.py --measure-cmn``; digital silence is skipped by
#: the CMN, so it is a mean of speech). The model's default (40,3,-1) assumes wideband
#: audio. The previous value, measured on the Acme phrases in one session, fitted those
#: phrases: WER 24.9/45.9/33.5% on the benchmark from it, 20.0/36.2/31.4% from this.
TELEPHONE_CMNINIT = "55.51,27.14,-34.56,55.68,-29.57,5.43,-0.80,-25.88,3.37,-13.96,5.85,-3.20,-6.09"
#: Longest utterance kept for the second pass (16 kHz audio, 32 KB a second); a longer
#: one keeps its first-pass result. Grammar answers last a few seconds.
SECOND_PASS_MAX_S = 20
#: Grammars kept compiled per worker and per decoder; a flow has a handful of states.
MAX_GRAMMARS = 64
#: Idle decoders kept per kind after use; extra ones are freed (28-96 MB each).
MAX_IDLE_DECODERS = 4
#: ``Final.confidence`` of a grammar result that is a whole sentence of the grammar, and
#: of one the search left halfway (see ``_Worker._confidence``).
GRAMMAR_WHOLE, GRAMMAR_PREFIX = 0.9, 0.3
#: Frames per second of pocketsphinx features (its default ``frate``).
_FRAME_RATE = 100


#: Grammar search settings. The lattice pass (``bestpath``) and pocketsphinx's default
#: beams made the FSG search end before the grammar's final state whenever a word ended
#: in a fricative (lost above 4 kHz): "order status" came out empty or as "order".
#: Measured on the 60-utterance grammar set: defaults 31/60 exact, bestpath off 39/60,
#: bestpath off with these beams 51/60 (1e-100 gave no more); 12-16 ms CPU per second
#: of audio either way.
GRAMMAR_OPTIONS: dict[str, Any] = {"bestpath": False, "beam": 1e-80, "pbeam": 1e-80, "wbeam": 1e-60}
#: General-model settings: pocketsphinx's defaults. Wider beams cost 2-3x the CPU (850
#: ms per second of audio) for no gain in word error rate (0.81 vs 0.83 on a hard set);
#: ``bestpath`` stays on for the posterior that becomes ``Final.confidence``.
LM_OPTIONS: dict[str, Any] = {}


@dataclass(frozen=True)
class DecoderSettings:
    """pocketsphinx settings a worker builds its decoders with (picklable).

    ``grammar_options``/``lm_options`` are ``pocketsphinx.Config`` keys for the two
    kinds of decoder; ``hmm``/``dictionary``/``lm`` default to the en-us model shipped
    in the wheel. ``dither``, ``second_pass`` and ``variants`` switch the accuracy
    measures of the module docstring (for A/B measurements; all on by default).
    """

    hmm: str | None = None
    dictionary: str | None = None
    lm: str | None = None
    cmninit: str = TELEPHONE_CMNINIT
    partial_interval_ms: int = 200
    #: Seeded 1-LSB dither on the upsampled audio (module docstring).
    dither: bool = True
    #: Decode grammar utterances again with the CMN they updated (module docstring).
    second_pass: bool = True
    #: Telephone pronunciation variants for grammar words (``asr_lexicon``).
    variants: bool = True
    grammar_options: dict[str, Any] = field(default_factory=lambda: dict(GRAMMAR_OPTIONS))
    lm_options: dict[str, Any] = field(default_factory=lambda: dict(LM_OPTIONS))


class Upsampler2x:
    """Streaming 8 -> 16 kHz interpolation: a 32-tap Kaiser-windowed sinc, state kept.

    Even output samples are the input samples, odd ones are interpolated halfway; the
    output lags the input by ``HALF`` input samples (2 ms), the same for every batch.
    """

    HALF = 16

    def __init__(self) -> None:
        k = np.arange(-self.HALF, self.HALF) + 0.5
        h = np.sinc(k) * np.kaiser(2 * self.HALF, 8.0)
        self._h = (h / h.sum()).astype(np.float64)
        self._hist: npt.NDArray[np.float64] = np.zeros(2 * self.HALF - 1)

    def process(self, pcm: bytes) -> bytes:
        """Upsample a chunk of s16le PCM; returns twice as many samples."""
        x = np.frombuffer(pcm, "<i2").astype(np.float64)
        if not len(x):
            return b""
        buf = np.concatenate((self._hist, x))
        odd = np.convolve(buf, self._h, mode="valid")
        out = np.empty(2 * len(x))
        out[0::2] = buf[self.HALF - 1 : self.HALF - 1 + len(x)]
        out[1::2] = odd
        self._hist = buf[-(2 * self.HALF - 1) :]
        data: bytes = np.clip(np.rint(out), -32768, 32767).astype("<i2").tobytes()
        return data


def dither(pcm: bytes, rng: np.random.Generator) -> bytes:
    """Add one LSB to a random quarter of the s16le samples (pocketsphinx's dither)."""
    x = np.frombuffer(pcm, "<i2").astype(np.int32)
    x += rng.integers(0, 4, len(x)) == 0
    data: bytes = np.minimum(x, 32767).astype("<i2").tobytes()
    return data


@dataclass
class _Stream:
    grammar: str | None
    cmn: str
    decoder: Any = None  # a pocketsphinx.Decoder while an utterance is open
    upsampler: Upsampler2x = field(default_factory=Upsampler2x)
    rng: np.random.Generator = field(default_factory=lambda: np.random.default_rng(0))
    audio: bytearray = field(default_factory=bytearray)  # 16 kHz, for the second pass
    samples: int = 0  # 8 kHz samples in the open utterance
    since_partial: int = 0
    last_partial: str = ""
    cpu: float = 0.0


class _Worker:
    """Per-process state: decoder pools, grammar cache, open streams."""

    def __init__(self, settings: DecoderSettings, conn: Connection) -> None:
        import pocketsphinx  # imported here: the parent never loads it

        self._ps = pocketsphinx
        self._settings = settings
        self._conn = conn
        self._streams: dict[int, _Stream] = {}
        self._idle: dict[bool, list[Any]] = {True: [], False: []}  # grammar? -> decoders
        self._searches: dict[int, OrderedDict[str, str]] = {}  # id(decoder) -> jsgf -> name
        self._varied: dict[int, set[str]] = {}  # id(decoder) -> words given variants
        # jsgf -> (search name, its FSG for checking that a result is a whole sentence)
        self._grammars: OrderedDict[str, tuple[str, Any]] = OrderedDict()
        self._next_grammar = 0
        self._partial_every = settings.partial_interval_ms * 8  # in 8 kHz samples

    def _config(self, with_lm: bool) -> Any:
        s = self._settings
        options = s.lm_options if with_lm else s.grammar_options
        kwargs: dict[str, Any] = {"loglevel": "FATAL", "cmninit": s.cmninit, **options}
        if s.hmm is not None:
            kwargs["hmm"] = s.hmm
        if s.dictionary is not None:
            kwargs["dict"] = s.dictionary
        if not with_lm:
            kwargs["lm"] = None
        elif s.lm is not None:
            kwargs["lm"] = s.lm
        return self._ps.Config(**kwargs)

    def prepare(self) -> None:
        """Create one grammar decoder up front so the first call does not wait for it."""
        self._idle[True].append(self._new_decoder(True))

    def _new_decoder(self, for_grammar: bool) -> Any:
        decoder = self._ps.Decoder(self._config(not for_grammar))
        self._searches[id(decoder)] = OrderedDict()
        self._varied[id(decoder)] = set()
        return decoder

    def handle(self, msg: tuple[Any, ...]) -> None:
        op, sid = msg[0], msg[1]
        if op == AUDIO:
            stream = self._streams.get(sid)
            if stream is not None:
                self._audio(sid, stream, msg[2])
        elif op == FLUSH:
            stream = self._streams.get(sid)
            if stream is not None:
                self._flush(sid, stream)
        elif op == OPEN:
            self._open(sid, msg[2])
        elif op == CLOSE:
            stream = self._streams.pop(sid, None)
            if stream is not None and stream.decoder is not None:
                stream.decoder.end_utt()
                self._release(stream)

    def _open(self, sid: int, grammar: str | None) -> None:
        if grammar is not None and grammar not in self._grammars:
            try:
                fsg = self._any_grammar_decoder().parse_jsgf(grammar)
            except (ValueError, RuntimeError) as exc:
                self._conn.send((ERROR, sid, f"grammar does not compile: {exc}"))
                return
            self._grammars[grammar] = (f"g{self._next_grammar}", fsg)
            self._next_grammar += 1
            if len(self._grammars) > MAX_GRAMMARS:
                self._forget_grammar()
        elif grammar is not None:
            self._grammars.move_to_end(grammar)
        self._streams[sid] = _Stream(grammar, self._settings.cmninit)

    def _any_grammar_decoder(self) -> Any:
        if not self._idle[True]:
            self._idle[True].append(self._new_decoder(True))
        return self._idle[True][-1]

    def _forget_grammar(self) -> None:
        jsgf, (name, _fsg) = self._grammars.popitem(last=False)
        for decoders in self._idle.values():
            for decoder in decoders:
                if self._searches[id(decoder)].pop(jsgf, None) is not None:
                    decoder.remove_search(name)
        # Decoders in use drop it when they come back (see _release).

    def _audio(self, sid: int, stream: _Stream, pcm: bytes) -> None:
        began = time.process_time()
        try:
            if stream.decoder is None:
                self._begin(stream)
            decoder = stream.decoder
            wide = stream.upsampler.process(pcm)
            if self._settings.dither:
                wide = dither(wide, stream.rng)
            if self._keeps_audio(stream) and len(stream.audio) < SECOND_PASS_MAX_S * 32000:
                stream.audio += wide
            decoder.process_raw(wide, False, False)
        except (RuntimeError, ValueError, KeyError) as exc:
            self._fail(sid, stream, f"decoding failed: {exc}")
            return
        n = len(pcm) // 2
        stream.samples += n
        stream.since_partial += n
        if stream.since_partial >= self._partial_every:
            stream.since_partial = 0
            hyp = decoder.hyp()
            text = hyp.hypstr if hyp is not None else ""
            if text and text != stream.last_partial:
                stream.last_partial = text
                self._conn.send((PARTIAL, sid, text))
        stream.cpu += time.process_time() - began

    def _begin(self, stream: _Stream) -> None:
        for_grammar = stream.grammar is not None
        idle = self._idle[for_grammar]
        decoder = idle.pop() if idle else self._new_decoder(for_grammar)
        stream.decoder = decoder
        if stream.grammar is not None:
            searches = self._searches[id(decoder)]
            name = searches.get(stream.grammar)
            if name is None:
                name = self._grammars[stream.grammar][0]
                if self._settings.variants:
                    self._add_variants(decoder, stream.grammar)
                decoder.add_jsgf_string(name, stream.grammar)
                searches[stream.grammar] = name
            decoder.activate_search(name)
        decoder.set_cmn(stream.cmn)
        stream.rng = np.random.default_rng(0)  # the same audio dithers the same way
        stream.audio.clear()
        decoder.start_utt()

    def _add_variants(self, decoder: Any, jsgf: str) -> None:
        # Once per word and decoder: a second call would derive variants of variants.
        done = self._varied[id(decoder)]
        todo = asr_lexicon.grammar_words(jsgf) - done
        asr_lexicon.add_variants(decoder, todo)
        done |= todo

    def _keeps_audio(self, stream: _Stream) -> bool:
        return self._settings.second_pass and stream.grammar is not None

    def _flush(self, sid: int, stream: _Stream) -> None:
        decoder = stream.decoder
        if decoder is None:  # no audio since the last flush
            self._conn.send((FINAL, sid, "", 0.0, (), 0.0, 0.0))
            return
        began = time.process_time()
        try:
            decoder.end_utt()
            if self._keeps_audio(stream) and len(stream.audio) < SECOND_PASS_MAX_S * 32000:
                stream.cmn = decoder.get_cmn(True)
                decoder.set_cmn(stream.cmn)
                decoder.start_utt()
                decoder.process_raw(bytes(stream.audio), False, False)
                decoder.end_utt()
            else:
                stream.cmn = decoder.get_cmn()
            stream.audio.clear()
            hyp = decoder.hyp()
            text = " ".join(hyp.hypstr.split()) if hyp is not None else ""
            confidence = self._confidence(stream, decoder, text)
            words = _words(decoder) if text else ()
        except (RuntimeError, ValueError) as exc:
            self._fail(sid, stream, f"decoding failed: {exc}")
            return
        cpu = stream.cpu + time.process_time() - began
        audio = stream.samples / 8000
        stream.samples = stream.since_partial = 0
        stream.last_partial = ""
        stream.cpu = 0.0
        self._release(stream)
        self._conn.send((FINAL, sid, text, confidence, words, audio, cpu))

    def _confidence(self, stream: _Stream, decoder: Any, text: str) -> float:
        """0..1: the posterior for the general model; for a grammar, whether it is whole.

        pocketsphinx computes posteriors only in its lattice pass, which grammars run
        without (see ``GRAMMAR_OPTIONS``). A grammar result is a whole sentence of the
        grammar (``GRAMMAR_WHOLE``) or a path the search left before a final state
        (``GRAMMAR_PREFIX``): coarse, but it tells a reprompt from an answer.
        """
        if not text:
            return 0.0
        if stream.grammar is None:
            return min(1.0, max(0.0, float(decoder.get_prob())))
        entry = self._grammars.get(stream.grammar)
        if entry is None:  # evicted meanwhile: no way to check
            return GRAMMAR_PREFIX
        return GRAMMAR_WHOLE if entry[1].accept(text) else GRAMMAR_PREFIX

    def _release(self, stream: _Stream) -> None:
        decoder, stream.decoder = stream.decoder, None
        searches = self._searches[id(decoder)]
        for jsgf in [g for g in searches if g not in self._grammars]:
            decoder.remove_search(searches.pop(jsgf))
        idle = self._idle[stream.grammar is not None]
        if len(idle) < MAX_IDLE_DECODERS:
            idle.append(decoder)
        else:
            del self._searches[id(decoder)]
            del self._varied[id(decoder)]

    def _fail(self, sid: int, stream: _Stream, message: str) -> None:
        # The decoder may be in any state: drop it rather than pool it.
        if stream.decoder is not None:
            self._searches.pop(id(stream.decoder), None)
            self._varied.pop(id(stream.decoder), None)
            stream.decoder = None
        self._streams.pop(sid, None)
        self._conn.send((ERROR, sid, message))


def _words(decoder: Any) -> tuple[tuple[str, float, float], ...]:
    words = []
    for seg in decoder.seg():
        word: str = seg.word
        base = word.split("(", 1)[0]  # "read(2)": an alternate pronunciation
        if not base or base.startswith(("<", "[", "+")):
            continue  # (NULL) grammar links, <s>, </s>, <sil>, [NOISE], ++GARBAGE++
        words.append((base, seg.start_frame / _FRAME_RATE, (seg.end_frame + 1) / _FRAME_RATE))
    return tuple(words)


def worker_main(conn: Connection) -> None:
    """Serve ``conn`` until STOP or the parent goes; the first message is the settings."""
    # The parent owns Ctrl-C; a worker exits when told to or when its pipe closes.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        settings = conn.recv()
    except (EOFError, OSError):
        return
    if not isinstance(settings, DecoderSettings):
        raise SystemExit(f"expected DecoderSettings first, got {type(settings).__name__}")
    worker = _Worker(settings, conn)
    worker.prepare()
    conn.send((READY, os.getpid()))
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            return
        if msg[0] == STOP:
            return
        worker.handle(msg)


if __name__ == "__main__":
    # python -m trunkline.providers.asr_worker FD: FD is this end of the socket pair.
    # Run the imported module's copy: the parent pickles *its* DecoderSettings class.
    from trunkline.providers import asr_worker

    asr_worker.worker_main(Connection(int(sys.argv[1])))

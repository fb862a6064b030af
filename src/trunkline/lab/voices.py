"""The callers' voices: each line rendered once by espeak-ng, cached, and encoded once per codec.

A run of thousands of calls says the same few dozen lines, so a caller costs a dict
look-up, not a synthesis. An :class:`Utterance` keeps the clean 8 kHz PCM, where its
speech starts and ends (the script needs the caller's *last speech sample*, not the end of
the padded clip), and its G.711 frames per codec. Audio impairments (noise, level, drift)
make a call's audio its own; those are applied per call on top of the clean rendering
(see :mod:`trunkline.lab.engine`).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import numpy as np

from trunkline.lab.ear import LOUD_LEVEL
from trunkline.media.audio import FRAME_BYTES, SAMPLE_RATE
from trunkline.providers.embedded_tts import EspeakTTS
from trunkline.rtp.g711 import alaw_encode, ulaw_encode


@dataclass(frozen=True, slots=True)
class Persona:
    """How a synthetic caller sounds: espeak-ng voice, words per minute, pitch 0-99."""

    voice: str = "en-us"
    rate: int = 160
    pitch: int = 50


@dataclass(slots=True)
class Utterance:
    """One rendered line.

    Attributes:
        pcm: 8 kHz s16le, whole 20 ms frames.
        speech_start_s, speech_end_s: the first and last loud sample, from the clip start.
    """

    pcm: bytes
    speech_start_s: float
    speech_end_s: float
    _frames: dict[str, list[bytes]] = field(default_factory=dict)

    @classmethod
    def from_pcm(cls, pcm: bytes) -> Utterance:
        if len(pcm) % FRAME_BYTES:
            pcm += bytes(FRAME_BYTES - len(pcm) % FRAME_BYTES)
        samples = np.frombuffer(pcm, dtype="<i2")
        loud = np.flatnonzero(np.abs(samples.astype(np.int32)) >= LOUD_LEVEL)
        if loud.size == 0:
            return cls(pcm, 0.0, 0.0)
        return cls(pcm, float(loud[0]) / SAMPLE_RATE, float(loud[-1] + 1) / SAMPLE_RATE)

    @property
    def duration_s(self) -> float:
        return len(self.pcm) / 2 / SAMPLE_RATE

    def frames(self, codec: str) -> list[bytes]:
        """The clip as G.711 payloads of 160 bytes (``PCMU`` or ``PCMA``), encoded once."""
        cached = self._frames.get(codec)
        if cached is None:
            cached = encode_frames(self.pcm, codec)
            self._frames[codec] = cached
        return cached


def encode_frames(pcm: bytes, codec: str) -> list[bytes]:
    """PCM (whole frames) to a list of 20 ms G.711 payloads."""
    coded = alaw_encode(pcm) if codec.upper() == "PCMA" else ulaw_encode(pcm)
    step = FRAME_BYTES // 2
    return [coded[i : i + step] for i in range(0, len(coded), step)]


class VoiceBook:
    """Renders and caches every (persona, text) the run needs.

    Args:
        binary: the espeak-ng program.
    """

    def __init__(self, *, binary: str = "espeak-ng") -> None:
        self.binary = binary
        self._tts: dict[tuple[int, int], EspeakTTS] = {}
        self._lines: dict[tuple[Persona, str], Utterance] = {}
        self._pending: dict[tuple[Persona, str], asyncio.Future[Utterance]] = {}
        self.renders = 0

    async def say(self, persona: Persona, text: str) -> Utterance:
        """The rendered line (raises ProviderError when espeak-ng cannot render it)."""
        key = (persona, text)
        line = self._lines.get(key)
        if line is not None:
            return line
        pending = self._pending.get(key)
        if pending is None:
            pending = asyncio.ensure_future(self._render(persona, text))
            self._pending[key] = pending
        try:
            line = await asyncio.shield(pending)
        finally:
            if pending.done():
                self._pending.pop(key, None)
        self._lines[key] = line
        return line

    def rendered(self) -> list[Utterance]:
        """Every line rendered so far (babble noise is made of them)."""
        return list(self._lines.values())

    async def prewarm(self, lines: set[tuple[Persona, str]]) -> None:
        """Render every line before the first call, so no call waits on espeak-ng."""
        await asyncio.gather(*(self.say(p, t) for p, t in lines))

    async def _render(self, persona: Persona, text: str) -> Utterance:
        tts = self._tts.get((persona.rate, persona.pitch))
        if tts is None:
            # No time limits: the lab renders before its calls start, many lines at once,
            # and a line that takes long is no caller's dead air.
            tts = EspeakTTS(
                persona.voice,
                persona.rate,
                persona.pitch,
                cache_size=0,
                binary=self.binary,
                first_byte_timeout=None,
                idle_timeout=None,
            )
            self._tts[(persona.rate, persona.pitch)] = tts
        self.renders += 1
        chunks = [chunk async for chunk in tts.synthesize(text, voice=persona.voice)]
        return Utterance.from_pcm(b"".join(chunks))

    async def aclose(self) -> None:
        for tts in self._tts.values():
            await tts.aclose()

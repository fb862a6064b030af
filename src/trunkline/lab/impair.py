"""A caller's impairments: what happens to its voice before the agent hears it.

``Impairments`` is built from plain parameters, the fields of a scenario's impairment
spec (``noise``, ``loss``, ``jitter``, ``drift_ppm``, ``level_db``, ``codec``), taken by
shape (any object with those attributes), and a seed. It gives:

- ``audio(samples)``: a whole rendered utterance, impaired in the order a phone would do
  it: background noise at the microphone (``lab.noise``), the handset's level change,
  its clock drift, then G.711 companding;
- ``scheduler()``: a ``PacketScheduler`` (``lab.netem``) for the packet stream: loss,
  jitter and reordering.

The same seed gives the same output: utterance ``i`` always gets the same noise
whatever was impaired before it, and each packet stream replays the same decisions.
Background noise belongs to the line, not to the words: to keep it at one level across
a call, pass the caller's speech level as ``speech_dbov``, and impair a buffer of
silence the same way to fill the pauses between turns.

The audio helpers are public on their own: ``change_level`` (clipping counted),
``g711_round_trip`` and ``drift`` (resampling by ``1 + ppm * 1e-6``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar

import numpy as np
import numpy.typing as npt

from trunkline.lab.drift import MAX_DRIFT_PPM, drift
from trunkline.lab.loss import Bernoulli, GilbertElliott, LossModel
from trunkline.lab.netem import PacketScheduler, check_jitter
from trunkline.lab.noise import MAX_SNR_DB, MIN_SNR_DB, add_noise, noise_kind
from trunkline.rtp.g711 import alaw_decode, alaw_encode, ulaw_decode, ulaw_encode

__all__ = [
    "CODECS",
    "MAX_LEVEL_DB",
    "MIN_LEVEL_DB",
    "ImpairedAudio",
    "ImpairmentParams",
    "Impairments",
    "JitterParams",
    "LossParams",
    "NoiseParams",
    "change_level",
    "g711_round_trip",
]

Samples = npt.NDArray[np.int16]
T = TypeVar("T")

#: G.711 laws, by their RTP encoding names in lower case (RFC 3551 PT 0 and 8).
CODECS = ("pcmu", "pcma")
#: Level changes beyond these are not a phone: -60 dB is inaudible, +30 dB all clipping.
MIN_LEVEL_DB = -60.0
MAX_LEVEL_DB = 30.0


class NoiseParams(Protocol):
    """Shape of a noise spec: ``kind`` (white, pink, babble) and ``snr_db``."""

    @property
    def kind(self) -> str: ...
    @property
    def snr_db(self) -> float: ...


class LossParams(Protocol):
    """Shape of a loss spec: ``model`` (random, gilbert_elliott) and its parameters."""

    @property
    def model(self) -> str: ...
    @property
    def percent(self) -> float: ...
    @property
    def p(self) -> float: ...
    @property
    def r(self) -> float: ...
    @property
    def h(self) -> float: ...
    @property
    def k(self) -> float: ...


class JitterParams(Protocol):
    """Shape of a jitter spec: ``ms`` and ``reorder_pct``."""

    @property
    def ms(self) -> float: ...
    @property
    def reorder_pct(self) -> float: ...


class ImpairmentParams(Protocol):
    """Shape of a whole impairment spec (every part optional)."""

    @property
    def noise(self) -> NoiseParams | None: ...
    @property
    def loss(self) -> LossParams | None: ...
    @property
    def jitter(self) -> JitterParams | None: ...
    @property
    def drift_ppm(self) -> float | None: ...
    @property
    def level_db(self) -> float | None: ...
    @property
    def codec(self) -> str | None: ...


@dataclass(frozen=True, slots=True)
class ImpairedAudio:
    """An impaired utterance.

    Attributes:
        samples: the audio, 16-bit.
        clipped: samples clipped by the noise or the level change.
    """

    samples: Samples
    clipped: int


def _check_level(db: float) -> None:
    if not MIN_LEVEL_DB <= db <= MAX_LEVEL_DB:  # also refuses NaN
        raise ValueError(
            f"level change must be within {MIN_LEVEL_DB:g}..{MAX_LEVEL_DB:g} dB, got {db}"
        )


def change_level(samples: npt.NDArray[np.int16], db: float) -> ImpairedAudio:
    """Multiply by ``db`` decibels, rounding and clipping to 16 bits (clips counted).

    Raises:
        ValueError: ``db`` outside ``MIN_LEVEL_DB``..``MAX_LEVEL_DB``.
    """
    _check_level(db)
    x = np.rint(np.asarray(samples, dtype=np.float64).ravel() * 10.0 ** (db / 20.0))
    clipped = int(np.count_nonzero((x > 32767) | (x < -32768)))
    return ImpairedAudio(np.clip(x, -32768, 32767).astype(np.int16), clipped)


def g711_round_trip(samples: npt.NDArray[np.int16], codec: str) -> Samples:
    """Encode with G.711 (``pcmu`` or ``pcma``) and decode: the codec's quantisation.

    Raises:
        ValueError: an unknown codec.
    """
    pcm = np.asarray(samples, dtype="<i2").ravel().tobytes()
    if codec == "pcmu":
        out = ulaw_decode(ulaw_encode(pcm))
    elif codec == "pcma":
        out = alaw_decode(alaw_encode(pcm))
    else:
        raise ValueError(f"codec must be one of {CODECS}, got {codec!r}")
    return np.frombuffer(out, "<i2").astype(np.int16)


def _loss_model(loss: LossParams) -> LossModel:
    if loss.model == "random":
        return Bernoulli.percent(loss.percent)
    if loss.model == "gilbert_elliott":
        return GilbertElliott(loss.p, loss.r, loss.h, loss.k)
    raise ValueError(f"loss model must be random or gilbert_elliott, got {loss.model!r}")


class Impairments:
    """One caller's impairments (see the module docstring).

    Args:
        seed: the seed every random decision derives from.
        noise: ``kind`` and ``snr_db``, or None.
        loss: ``model`` (``random`` with ``percent``, or ``gilbert_elliott`` with
            ``p``, ``r``, ``h``, ``k``), or None.
        jitter: ``ms`` and ``reorder_pct``, or None.
        drift_ppm: the caller's clock error in ppm, or None.
        level_db: level change in dB, or None.
        codec: ``pcmu`` or ``pcma`` to apply its quantisation, or None.
        babble: speech clips for babble noise (required for it).

    Raises:
        ValueError: any parameter out of its range (the message names it), or babble
            noise without clips.
    """

    def __init__(
        self,
        seed: int,
        *,
        noise: NoiseParams | None = None,
        loss: LossParams | None = None,
        jitter: JitterParams | None = None,
        drift_ppm: float | None = None,
        level_db: float | None = None,
        codec: str | None = None,
        babble: Sequence[npt.NDArray[np.int16]] = (),
    ) -> None:
        if not isinstance(seed, int) or seed < 0:
            raise ValueError(f"seed must be a non-negative int, got {seed!r}")
        if noise is not None:
            if noise_kind(noise.kind) == "babble" and not babble:
                raise ValueError("babble noise needs speech clips (babble=...)")
            if not MIN_SNR_DB <= noise.snr_db <= MAX_SNR_DB:  # also refuses NaN
                raise ValueError(f"snr_db must be within {MIN_SNR_DB:g}..{MAX_SNR_DB:g}")
        if drift_ppm is not None and not -MAX_DRIFT_PPM <= drift_ppm <= MAX_DRIFT_PPM:
            raise ValueError(f"drift must be within ±{MAX_DRIFT_PPM:g} ppm, got {drift_ppm}")
        if level_db is not None:
            _check_level(level_db)
        if codec is not None and codec not in CODECS:
            raise ValueError(f"codec must be one of {CODECS}, got {codec!r}")
        if loss is not None:
            _loss_model(loss)  # validates the parameters
        if jitter is not None:
            check_jitter(jitter.ms, jitter.reorder_pct)
        self.seed = seed
        self.noise = noise
        self.loss = loss
        self.jitter = jitter
        self.drift_ppm = drift_ppm
        self.level_db = level_db
        self.codec = codec
        self._babble = [np.asarray(c, dtype=np.int16).ravel() for c in babble]
        self._utterances = 0

    @classmethod
    def from_spec(
        cls,
        spec: ImpairmentParams,
        seed: int,
        *,
        babble: Sequence[npt.NDArray[np.int16]] = (),
    ) -> Impairments:
        """The impairments a spec asks for (any object of ``ImpairmentParams``' shape).

        Raises:
            ValueError: as the constructor.
        """
        return cls(
            seed,
            noise=spec.noise,
            loss=spec.loss,
            jitter=spec.jitter,
            drift_ppm=spec.drift_ppm,
            level_db=spec.level_db,
            codec=spec.codec,
            babble=babble,
        )

    def audio(
        self,
        samples: npt.NDArray[np.int16],
        *,
        utterance: int | None = None,
        speech_dbov: float | None = None,
    ) -> ImpairedAudio:
        """Impair one utterance: noise, level, drift, codec, in that order.

        Args:
            samples: the rendered utterance, 8 kHz 16-bit.
            utterance: its index, which selects its noise (default: 0, 1, 2 ... in the
                order of calls).
            speech_dbov: the level to set the noise against (see ``add_noise``).

        Raises:
            ValueError: a negative ``utterance``, or a ``speech_dbov`` out of range.
        """
        if utterance is None:
            utterance = self._utterances
            self._utterances += 1
        if utterance < 0:
            raise ValueError(f"utterance must be >= 0, got {utterance}")
        x = np.asarray(samples, dtype=np.int16).ravel()
        clipped = 0
        if self.noise is not None:
            rng = np.random.default_rng(np.random.SeedSequence((self.seed, 0, utterance)))
            noisy = add_noise(
                x,
                self.noise.kind,
                self.noise.snr_db,
                rng,
                babble=self._babble,
                reference_dbov=speech_dbov,
            )
            x, clipped = noisy.samples, noisy.clipped
        if self.level_db:
            level = change_level(x, self.level_db)
            x, clipped = level.samples, clipped + level.clipped
        if self.drift_ppm:
            x = drift(x, self.drift_ppm)
        if self.codec is not None:
            x = g711_round_trip(x, self.codec)
        return ImpairedAudio(x, clipped)

    def loss_model(self) -> LossModel | None:
        """A fresh loss model (it keeps state: one per stream), or None."""
        return _loss_model(self.loss) if self.loss is not None else None

    def scheduler(self, stream: int = 0) -> PacketScheduler[T]:
        """A packet scheduler for stream number ``stream`` of this caller.

        Raises:
            ValueError: a negative ``stream``.
        """
        if stream < 0:
            raise ValueError(f"stream must be >= 0, got {stream}")
        jitter_ms = self.jitter.ms if self.jitter is not None else 0.0
        reorder = self.jitter.reorder_pct if self.jitter is not None else 0.0
        return PacketScheduler(
            (self.seed, 1, stream),
            loss=self.loss_model(),
            jitter_ms=jitter_ms,
            reorder_pct=reorder,
        )

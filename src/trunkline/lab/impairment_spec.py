"""What a scenario asks of the network and the line: names and ranges, no signal processing.

A scenario (or a run) may degrade the caller's audio on its way to the agent: noise at a
signal-to-noise ratio, packet loss (independent, or bursty with the Gilbert-Elliott
model), jitter and reordering, clock drift, a level change, and the codec. This module
only says what was asked for, validated; the code that applies it lives elsewhere in the
lab and consumes :class:`ImpairmentSpec`.

YAML form (every part optional)::

    impairment:
      noise: {kind: pink, snr_db: 15}
      loss: {model: gilbert_elliott, p: 0.02, r: 0.4, h: 0.0, k: 1.0}   # or {percent: 3}
      jitter: {ms: 30, reorder_pct: 1}
      drift: {ppm: 50}
      level: {db: -6}
      codec: pcma
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass
from typing import Any

from trunkline.agent.spec_checks import ShapeBuilder
from trunkline.agent.spec_loader import Path

# Ranges: wide enough for any test a person means to run, narrow enough to catch typos
# (an SNR of 150 dB is inaudible noise; a loss of 150% is a mistake).
SNR_DB_RANGE = (-20.0, 80.0)
JITTER_MS_RANGE = (0.0, 2000.0)  # beyond 2 s a jitter buffer has long given up
DRIFT_PPM_RANGE = (-1000.0, 1000.0)  # cheap crystals drift ~100 ppm; 1000 is a broken clock
LEVEL_DB_RANGE = (-60.0, 30.0)


class NoiseKind(enum.StrEnum):
    """The noise added under the caller's voice."""

    WHITE = "white"  # flat spectrum: hiss
    PINK = "pink"  # 1/f: rumble, the usual "background noise"
    BABBLE = "babble"  # overlapping far-off voices: a call centre, a café


class LossModel(enum.StrEnum):
    """How packets are dropped."""

    RANDOM = "random"  # each packet lost independently with ``percent``
    GILBERT_ELLIOTT = "gilbert_elliott"  # two-state Markov chain: bursts of loss


class Codec(enum.StrEnum):
    """G.711 law the caller offers (RFC 3551 payload types 0 and 8)."""

    PCMU = "pcmu"
    PCMA = "pcma"


@dataclass(frozen=True, slots=True)
class NoiseSpec:
    kind: NoiseKind
    snr_db: float


@dataclass(frozen=True, slots=True)
class LossSpec:
    """Packet loss.

    ``RANDOM``: ``percent`` of packets lost, independently. ``GILBERT_ELLIOTT`` (the
    convention of Linux netem's ``gemodel``): ``p`` is P(good -> bad), ``r`` is
    P(bad -> good), ``h`` is P(a packet survives in the bad state) and ``k`` is P(a packet
    survives in the good state). Defaults ``h = 0``, ``k = 1``: the bad state loses
    everything, the good state nothing (the simple Gilbert model).
    """

    model: LossModel
    percent: float = 0.0
    p: float = 0.0
    r: float = 1.0
    h: float = 0.0
    k: float = 1.0


@dataclass(frozen=True, slots=True)
class JitterSpec:
    ms: float  # standard deviation of the added delay
    reorder_pct: float = 0.0


@dataclass(frozen=True, slots=True)
class ImpairmentSpec:
    """Everything optional; an empty spec is a clean line."""

    noise: NoiseSpec | None = None
    loss: LossSpec | None = None
    jitter: JitterSpec | None = None
    drift_ppm: float | None = None
    level_db: float | None = None
    codec: Codec | None = None

    @property
    def is_clean(self) -> bool:
        """True when nothing is impaired (the codec alone is not an impairment)."""
        return (
            self.noise is None
            and self.loss is None
            and self.jitter is None
            and not self.drift_ppm
            and not self.level_db
        )


_KEYS = {"noise", "loss", "jitter", "drift", "level", "codec"}


def build_impairment(b: ShapeBuilder, path: Path, value: Any) -> ImpairmentSpec | None:
    """Validate an inline impairment mapping, recording issues on ``b``; None if unusable."""
    m = b.mapping(path, value)
    if m is None:
        return None
    b.keys(path, m, _KEYS)
    codec = None
    if "codec" in m:
        text = b.choice((*path, "codec"), m["codec"], [c.value for c in Codec], "codec")
        codec = Codec(text) if text else None
    return ImpairmentSpec(
        noise=_noise(b, (*path, "noise"), m["noise"]) if "noise" in m else None,
        loss=_loss(b, (*path, "loss"), m["loss"]) if "loss" in m else None,
        jitter=_jitter(b, (*path, "jitter"), m["jitter"]) if "jitter" in m else None,
        drift_ppm=_single(b, (*path, "drift"), m.get("drift"), "ppm", DRIFT_PPM_RANGE),
        level_db=_single(b, (*path, "level"), m.get("level"), "db", LEVEL_DB_RANGE),
        codec=codec,
    )


def number(
    b: ShapeBuilder, path: Path, value: Any, lo: float, hi: float, *, required: bool = False
) -> float | None:
    """A finite int or float in ``lo..hi``; None (with an issue) otherwise."""
    if value is None:
        if required:
            b.err(path, "missing value")
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        b.err(path, f"expected a number, got {describe_kind(value)}")
        return None
    if not math.isfinite(value) or not lo <= value <= hi:
        b.err(path, f"{value} is out of range {lo:g}..{hi:g}")
        return None
    return float(value)


def describe_kind(value: Any) -> str:
    """How an error message names the type of a YAML value."""
    if value is None:
        return "nothing"
    return {dict: "a mapping", list: "a list", str: "text", bool: "true/false"}.get(
        type(value), type(value).__name__
    )


def _noise(b: ShapeBuilder, path: Path, value: Any) -> NoiseSpec | None:
    m = b.mapping(path, value)
    if m is None:
        return None
    b.keys(path, m, {"kind", "snr_db"}, required={"kind", "snr_db"})
    kind = b.choice((*path, "kind"), m.get("kind"), [k.value for k in NoiseKind], "noise kind")
    snr = number(b, (*path, "snr_db"), m.get("snr_db"), *SNR_DB_RANGE)
    if kind is None or snr is None:
        return None
    return NoiseSpec(NoiseKind(kind), snr)


def _loss(b: ShapeBuilder, path: Path, value: Any) -> LossSpec | None:
    m = b.mapping(path, value)
    if m is None:
        return None
    model_text = m.get("model", "random" if "percent" in m else None)
    model = b.choice((*path, "model"), model_text, [x.value for x in LossModel], "loss model")
    if model is None:
        return None
    if model == LossModel.RANDOM:
        b.keys(path, m, {"model", "percent"}, required={"percent"})
        percent = number(b, (*path, "percent"), m.get("percent"), 0.0, 100.0)
        return LossSpec(LossModel.RANDOM, percent=percent) if percent is not None else None
    b.keys(path, m, {"model", "p", "r", "h", "k"}, required={"p", "r"})
    p = number(b, (*path, "p"), m.get("p"), 0.0, 1.0)
    r = number(b, (*path, "r"), m.get("r"), 0.0, 1.0)
    h = number(b, (*path, "h"), m.get("h", 0.0), 0.0, 1.0)
    k = number(b, (*path, "k"), m.get("k", 1.0), 0.0, 1.0)
    if p is None or r is None or h is None or k is None:
        return None
    if p > 0 and r == 0:
        # Once in the bad state the chain never leaves it: the call dies for good.
        b.err((*path, "r"), "r = 0 with p > 0 never leaves the bad state; use r > 0")
        return None
    return LossSpec(LossModel.GILBERT_ELLIOTT, p=p, r=r, h=h, k=k)


def _jitter(b: ShapeBuilder, path: Path, value: Any) -> JitterSpec | None:
    m = b.mapping(path, value)
    if m is None:
        return None
    b.keys(path, m, {"ms", "reorder_pct"}, required={"ms"})
    ms = number(b, (*path, "ms"), m.get("ms"), *JITTER_MS_RANGE)
    reorder = number(b, (*path, "reorder_pct"), m.get("reorder_pct", 0.0), 0.0, 100.0)
    if ms is None or reorder is None:
        return None
    return JitterSpec(ms, reorder)


def _single(
    b: ShapeBuilder, path: Path, value: Any, key: str, bounds: tuple[float, float]
) -> float | None:
    """``drift: {ppm: 50}`` -> 50.0 (one-field mappings, named for the unit)."""
    if value is None:
        return None
    m = b.mapping(path, value, what=f"a mapping such as {{{key}: ...}}")
    if m is None:
        return None
    b.keys(path, m, {key}, required={key})
    return number(b, (*path, key), m.get(key), *bounds)

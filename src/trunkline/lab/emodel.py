"""The E-model (ITU-T G.107): a call's expected quality from its delay and packet loss.

The E-model adds up impairments on a scale where 100 is perfect::

    R = Ro - Is - Id - Ie,eff + A

- ``Ro`` (basic signal-to-noise) and ``Is`` (impairments simultaneous with speech:
  loudness, sidetone, quantisation) depend on the terminals and the line. The lab knows
  nothing of the caller's handset, so they keep G.107's default values (SLR 8, RLR 2,
  STMR 15, LSTR 18, Ds 3, Nc -70, Nfor -64, Ps = Pr 35, qdu 1), computed here with
  G.107's formulas: ``Ro = 94.77``, ``Is = 1.41``.
- ``Id`` (delay) is computed from the mouth-to-ear delay ``Ta`` with G.107's full
  formulas: talker echo ``Idte`` (echo path delay ``T = Ta``, TELR 65 dB), listener echo
  ``Idle`` (round trip ``Tr = 2 Ta``, WEPL 110 dB) and pure delay ``Idd``.
- ``Ie,eff = Ie + (95 - Ie) * Ppl / (Ppl / BurstR + Bpl)``: the codec's own impairment
  ``Ie`` plus packet loss ``Ppl`` (percent), weighted by the codec's robustness ``Bpl``
  and the burstiness ``BurstR`` (1: random loss; more: losses come in runs; see
  ``lab.loss`` and ``burst_ratio``).
- ``A`` (advantage: what a mobile caller forgives) is 0 by default.

With everything at its default (no delay, no loss) ``R = 93.2`` and ``MOS = 4.41``: the
best a narrowband G.711 call can score.

Codec: G.711 has ``Ie = 0``. Its ``Bpl`` (ITU-T G.113 Appendix I, Table I.3) is 25.1
with packet loss concealment (G.711 Appendix I) and 4.3 without. ``G711_NO_PLC`` is
the default: trunkline's own legs and the lab's ear play or hear a lost packet as 20 ms
of silence, so that is what a call through them sounds like. ``G711_PLC`` scores a
receiver that conceals losses (most phones and gateways); ``codec_profile(name)`` picks
one by name (``g711``, ``g711-plc``) for a run's option.

MOS from R is G.107 Annex B: ``1 + 0.035 R + 7e-6 R (R - 60)(100 - R)``, clamped to
1..4.5 (1 below R = 6.5, where the cubic dips under 1; 4.5 from R = 100).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = [
    "G711_NO_PLC",
    "G711_PLC",
    "MAX_DELAY_MS",
    "CODECS",
    "CodecProfile",
    "Estimate",
    "burst_ratio",
    "codec_profile",
    "delay_impairment",
    "estimate",
    "loss_impairment",
    "mos_from_r",
    "mouth_to_ear_ms",
]

#: Delays past 10 s are not a phone call; larger values are a units mistake (us for ms).
MAX_DELAY_MS = 10_000.0

# G.107 (06/2015) Table 1 default values. Loudness ratings in dB, noise in dBm0p/dB(A).
_SLR = 8.0  # send loudness rating
_RLR = 2.0  # receive loudness rating
_STMR = 15.0  # sidetone masking rating
_LSTR = 18.0  # listener sidetone rating
_DS = 3.0  # D-value of the telephone, send side
_TELR = 65.0  # talker echo loudness rating
_WEPL = 110.0  # weighted echo path loss
_QDU = 1.0  # quantising distortion units
_NC = -70.0  # circuit noise referred to the 0 dBr point
_NFOR = -64.0  # noise floor at the receive side
_PS = 35.0  # room noise at the send side, dB(A)
_PR = 35.0  # room noise at the receive side, dB(A)
_MT = 100.0  # pure delay (ms) below which Idd is 0
_ST = 1.0  # sharpness of the pure delay curve


def _lg(x: float) -> float:
    return math.log10(x)


def _basic_terms() -> tuple[float, float, float]:
    """(No, Ro, Is) for the default terminal and line parameters (G.107 §7.2-7.3)."""
    olr = _SLR + _RLR
    nos = _PS - _SLR - _DS - 100.0 + 0.004 * (_PS - olr - _DS - 14.0) ** 2
    pre = _PR + 10.0 * _lg(1.0 + 10.0 ** ((10.0 - _LSTR) / 10.0))
    nor = _RLR - 121.0 + pre + 0.008 * (pre - 35.0) ** 2
    nfo = _NFOR + _RLR
    no = 10.0 * _lg(sum(10.0 ** (v / 10.0) for v in (_NC, nos, nor, nfo)))
    ro = 15.0 - 1.5 * (_SLR + no)
    # Is = Iolr + Ist + Iq. Ist uses STMRo with T = 0: the talker-echo term in STMRo is
    # 65 dB down at any delay, so it changes Ist by under 0.001.
    x_olr = olr + 0.2 * (64.0 + no - _RLR)
    iolr = 20.0 * ((1.0 + (x_olr / 8.0) ** 8) ** (1.0 / 8.0) - x_olr / 8.0)
    stmro = -10.0 * _lg(10.0 ** (-_STMR / 10.0) + 10.0 ** (-_TELR / 10.0))
    ist = (
        12.0 * (1.0 + ((stmro - 13.0) / 6.0) ** 8) ** (1.0 / 8.0)
        - 28.0 * (1.0 + ((stmro + 1.0) / 19.4) ** 35) ** (1.0 / 35.0)
        - 13.0 * (1.0 + ((stmro - 3.0) / 33.0) ** 13) ** (1.0 / 13.0)
        + 29.0
    )
    q = 37.0 - 15.0 * _lg(_QDU)
    g = 1.07 + 0.258 * q + 0.0602 * q * q
    y = (ro - 100.0) / 15.0 + 46.0 / 8.4 - g / 9.0
    z = 46.0 / 30.0 - g / 40.0
    iq = 15.0 * _lg(1.0 + 10.0**y + 10.0**z)
    return no, ro, iolr + ist + iq


_NO, _RO, _IS = _basic_terms()


@dataclass(frozen=True, slots=True)
class CodecProfile:
    """A codec's E-model figures: ``ie`` (its own impairment), ``bpl`` (loss robustness)."""

    name: str
    ie: float
    bpl: float


G711_PLC = CodecProfile("G.711 with PLC (G.711 Appendix I)", ie=0.0, bpl=25.1)
G711_NO_PLC = CodecProfile("G.711 without PLC", ie=0.0, bpl=4.3)
#: The receivers a run may name.
CODECS = {"g711": G711_NO_PLC, "g711-plc": G711_PLC}


def codec_profile(name: str) -> CodecProfile:
    """The profile called ``name`` in :data:`CODECS` (case and ``_``/``-`` ignored).

    Raises:
        ValueError: an unknown name (the message lists the known ones).
    """
    key = name.strip().lower().replace("_", "-")
    if key not in CODECS:
        raise ValueError(f"unknown MOS codec {name!r}; expected one of {', '.join(CODECS)}")
    return CODECS[key]


@dataclass(frozen=True, slots=True)
class Estimate:
    """An E-model result: ``r``, ``mos``, and the two impairments that vary per call."""

    r: float
    mos: float
    delay_impairment: float
    loss_impairment: float


def _check(name: str, value: float, lo: float, hi: float) -> float:
    if not lo <= value <= hi:  # also refuses NaN
        raise ValueError(f"{name} must be within {lo:g}..{hi:g}, got {value}")
    return float(value)


def delay_impairment(ta_ms: float) -> float:
    """G.107 ``Id`` for mouth-to-ear delay ``ta_ms``, echo paths ``T = Ta``, ``Tr = 2 Ta``.

    Raises:
        ValueError: ``ta_ms`` outside 0..``MAX_DELAY_MS``.
    """
    ta = _check("delay_ms", ta_ms, 0.0, MAX_DELAY_MS)
    t, tr = ta, 2.0 * ta
    # Talker echo (G.107 §7.4): grows with the echo path delay T.
    roe = -1.5 * (_NO - _RLR)
    terv = _TELR - 40.0 * _lg((1.0 + t / 10.0) / (1.0 + t / 150.0)) + 6.0 * math.exp(-0.3 * t * t)
    re = 80.0 + 2.5 * (terv - 14.0)
    idte = ((roe - re) / 2.0 + math.sqrt((roe - re) ** 2 / 4.0 + 100.0) - 1.0) * (
        1.0 - math.exp(-t)
    )
    # Listener echo: round trip Tr.
    rle = 10.5 * (_WEPL + 7.0) * math.pow(tr + 1.0, -0.25)
    idle = (_RO - rle) / 2.0 + math.sqrt((_RO - rle) ** 2 / 4.0 + 169.0)
    # Pure delay: 0 up to mT, then the curve of G.107 formula (7-28).
    idd = 0.0
    if ta > _MT:
        x = _lg(ta / _MT) / _lg(2.0)
        e = 6.0 * _ST
        root = 1.0 / e
        first = math.pow(1.0 + math.pow(x, e), root)
        idd = 25.0 * (first - 3.0 * math.pow(1.0 + math.pow(x / 3.0, e), root) + 2.0)
    return idte + idle + idd


def loss_impairment(
    loss_pct: float, burst_r: float = 1.0, codec: CodecProfile = G711_NO_PLC
) -> float:
    """G.107 ``Ie,eff`` for ``loss_pct`` percent of packets lost with burst ratio ``burst_r``.

    Raises:
        ValueError: ``loss_pct`` outside 0..100, or ``burst_r`` not positive and finite.
    """
    ppl = _check("loss_pct", loss_pct, 0.0, 100.0)
    burst = _check("burst_r", burst_r, 0.0, math.inf)
    if burst == 0.0 or math.isinf(burst):
        raise ValueError(f"burst_r must be positive and finite, got {burst_r}")
    return codec.ie + (95.0 - codec.ie) * ppl / (ppl / burst + codec.bpl)


def mos_from_r(r: float) -> float:
    """G.107 Annex B: the MOS (conversational quality, 1..4.5) an R value predicts.

    Raises:
        ValueError: ``r`` is NaN.
    """
    if math.isnan(r):
        raise ValueError("R is NaN")
    if r <= 0.0:
        return 1.0
    if r >= 100.0:
        return 4.5
    # The cubic dips just below 1 for 0 < R < 6.5 (its minimum, 0.995, is at R = 3.2):
    # clamped, so that MOS never falls as R rises.
    return max(1.0, 1.0 + 0.035 * r + r * (r - 60.0) * (100.0 - r) * 7e-6)


def estimate(
    *,
    delay_ms: float = 0.0,
    loss_pct: float = 0.0,
    burst_r: float = 1.0,
    codec: CodecProfile = G711_NO_PLC,
    advantage: float = 0.0,
) -> Estimate:
    """R and MOS for a call with mouth-to-ear ``delay_ms`` and ``loss_pct`` loss.

    Raises:
        ValueError: a parameter out of range (see ``delay_impairment``,
            ``loss_impairment``), or ``advantage`` outside G.107's 0..20.
    """
    a = _check("advantage", advantage, 0.0, 20.0)
    idelay = delay_impairment(delay_ms)
    iloss = loss_impairment(loss_pct, burst_r, codec)
    r = _RO - _IS - idelay - iloss + a
    return Estimate(r=r, mos=mos_from_r(r), delay_impairment=idelay, loss_impairment=iloss)


def burst_ratio(lost: int, total: int, runs: int) -> float:
    """G.107 ``BurstR`` from what a receiver saw: ``lost`` of ``total`` packets in ``runs``.

    ``BurstR`` is the mean run of consecutive losses over the mean run random loss at
    the same rate would give (``1 / (1 - P)``): ``lost / runs * (1 - lost / total)``.
    With no loss it is 1 (random); with everything lost, where no run could end, the
    losses are as bursty as can be seen and 1 is returned too, since ``Ie,eff`` then no
    longer depends on it much (use the model's figure when one is known).

    Raises:
        ValueError: negative counts, ``lost > total``, or runs that cannot hold the
            losses (``runs > lost``, or no run with losses).
    """
    if min(lost, total, runs) < 0 or lost > total:
        raise ValueError(f"bad loss counts: lost={lost} total={total} runs={runs}")
    if runs > lost or (lost > 0 and runs == 0):
        raise ValueError(f"{runs} runs cannot hold {lost} lost packets")
    if lost == 0 or lost == total:
        return 1.0
    return lost / runs * (1.0 - lost / total)


def mouth_to_ear_ms(network_ms: float, jitter_buffer_ms: float, frame_ms: float = 20.0) -> float:
    """One-way delay a caller hears: packetisation + network + jitter buffer, in ms.

    The sender holds a whole frame before sending it (``frame_ms``; G.711 has no
    look-ahead), the network adds ``network_ms``, the receiver's jitter buffer
    ``jitter_buffer_ms``.

    Raises:
        ValueError: a negative or non-finite part.
    """
    total = 0.0
    for name, value in (("network_ms", network_ms), ("jitter_buffer_ms", jitter_buffer_ms)):
        total += _check(name, value, 0.0, MAX_DELAY_MS)
    return total + _check("frame_ms", frame_ms, 0.0, MAX_DELAY_MS)

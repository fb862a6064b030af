"""Media quality and recognition accuracy of one call, as the caller's side saw them.

- RTP loss and jitter come from the lab leg's RFC 3550 receiver counters; the E-model
  (ITU-T G.107, :mod:`trunkline.lab.emodel`) turns loss, its burstiness and the delay
  into an R-factor and a MOS, for G.711 without packet loss concealment unless the run
  says otherwise (``Lab(mos_codec=...)``). A WebSocket stream has no packets to lose:
  its MOS is the codec's alone.
- WER compares what the caller said (the script's lines) with what the agent's
  recogniser heard (the caller entries of its transcript), both through the lab's pinned
  normaliser (:mod:`trunkline.lab.wer`). Without a transcript there is no WER.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from trunkline.lab import emodel, wer
from trunkline.lab.expect import caller_texts
from trunkline.lab.results import CallResult
from trunkline.lab.script import BargeIn, CallScript, Say

#: The receiver's jitter buffer as the E-model should assume it: at least two frames,
#: or twice the measured jitter. The one-way network delay is not known to a caller
#: without synchronised clocks and is taken as 0 (a loopback or LAN target).
MIN_JITTER_BUFFER_MS = 40.0


def fill_media(
    result: CallResult, leg: Any, codec: emodel.CodecProfile = emodel.G711_NO_PLC
) -> None:
    """Loss, jitter, R-factor and MOS from the leg's receive counters.

    Args:
        codec: the receiver the E-model scores (``Ie``, ``Bpl``): by default G.711
            without packet loss concealment, which is what trunkline's legs and the lab's
            ear are (a lost packet is 20 ms of silence); ``emodel.G711_PLC`` scores a
            receiver that conceals losses (G.711 Appendix I), as most phones do.
    """
    rx = leg.rx
    media = result.media
    media.packets_expected = rx.expected
    media.packets_received = rx.received
    media.loss_pct = round(rx.loss_pct, 3)
    media.jitter_ms = round(rx.jitter_ms, 3)
    lost = max(0, rx.expected - rx.received)
    runs = min(rx.bursts, lost) if lost else 0
    try:
        burst = emodel.burst_ratio(lost, rx.expected, runs) if lost and runs else 1.0
        delay = emodel.mouth_to_ear_ms(0.0, max(MIN_JITTER_BUFFER_MS, 2 * rx.jitter_ms))
        score = emodel.estimate(
            delay_ms=delay, loss_pct=min(100.0, rx.loss_pct), burst_r=burst, codec=codec
        )
    except ValueError:  # counts the model cannot take (a peer that restarted its stream)
        return
    media.r_factor, media.mos = round(score.r, 2), round(score.mos, 3)


def fill_wer(
    result: CallResult, script: CallScript, transcript: Sequence[Mapping[str, Any]] | None
) -> None:
    """WER of the agent's recogniser over the whole call, or None without a transcript."""
    if transcript is None:
        return
    spoken_steps = {t.index for t in result.turns if t.kind in ("say", "barge_in")}
    said = [
        s.text
        for i, s in enumerate(script.steps)
        if isinstance(s, Say | BargeIn) and i in spoken_steps
    ]
    if not said:
        return
    score = wer.wer(" ".join(said), " ".join(caller_texts(transcript)))
    if score.wer is not None:
        result.wer = round(score.wer, 4)
        result.wer_words = score.reference_words

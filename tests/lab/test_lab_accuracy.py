"""The lab's RTP loss and jitter figures against the impairment a reference callee applied.

The callee (``bench/lab_reference_uas.py``, imported from there so the test and the
bench cannot drift apart) streams to the lab through a seeded loss and jitter model and
records, per packet, whether it dropped it and when it was scheduled to leave. An exact
receiver's figures follow from that record alone, so the lab's are checked against the
same packets' injected schedule, not against a clock:

- loss is a count: the lab must find the packets the impairment kept from it within
  10% (on loopback nothing else is lost, so in practice exactly). Those are the ones
  the loss model dropped, plus, at the very end, any the jitter still held back when
  the call ended (a receiver cannot wait for them);
- jitter (RFC 3550 A.8) is computed from arrival times. The callee records when each
  packet really left as well as when it was scheduled to: on a busy machine its timer
  fires up to several ms late, and A.8 weighs the last ~16 packets, so one late send
  near the end moves a call's figure by a millisecond or more. The lab is held tightly
  to the packets as sent (``SENT_TOLERANCE``: what is left is the lab's own reading
  delay), and more loosely to the injected schedule (``INJECTED_TOLERANCE``, over the
  mean of the calls), which is still far below what a wrong estimator misses by (a
  per-packet delay taken for the jitter, or no smoothing, is off by 2x or more).
"""

from __future__ import annotations

import asyncio
import importlib.util
import statistics
import sys
from pathlib import Path
from types import ModuleType

import pytest

from trunkline.lab.engine import Lab, Target
from trunkline.lab.script import CallScript, Listen

from ..net.helpers import eventually

BENCH = Path(__file__).resolve().parents[2] / "bench" / "lab_reference_uas.py"
LAB_RTP = (45000, 45999)
REFERENCE_RTP = (46000, 46999)
CALLS = 4
LISTEN_S = 4.0
#: Allowed |lab - expected| jitter as (share of the expected figure, ms). Against the
#: packets as sent: each late wake-up of the lab's reader adds its lateness to one
#: transit difference, of which A.8 takes 1/16.
SENT_TOLERANCE = (0.10, 1.0)
#: Against the injected schedule, over the mean of the calls: the callee's send-timer
#: lateness on a loaded machine comes on top.
INJECTED_TOLERANCE = (0.25, 2.0)


def _load_reference() -> ModuleType:
    spec = importlib.util.spec_from_file_location("lab_reference_uas", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


ref = _load_reference()

LISTEN = CallScript("listen", seed=1, steps=(Listen(timeout_s=LISTEN_S),), reply_timeout_s=0.1)


async def _run(impairment: object) -> list[tuple[object, object]]:
    """Calls to the reference callee; each result with its stream's expected figures."""
    async with ref.reference_server(impairment, REFERENCE_RTP) as server:
        host, port = server.address
        async with Lab(Target.parse(f"sip:agent@{host}:{port}"), rtp_ports=LAB_RTP) as lab:
            results = await asyncio.gather(*(lab.call(LISTEN, i) for i in range(CALLS)))
        # The callee keeps a call's record when the lab's BYE reaches it.
        await eventually(lambda: len(server.records) == CALLS, "the callee to end every call")
        records = {r.call_id: r for r in server.records}
    pairs = []
    for result in results:
        assert result.failure in (None, "no_reply"), result.failure_detail  # silence only
        record = records[result.agent_call_id]
        pairs.append((result, ref.expected(record, result.media.packets_expected)))
    return pairs


@pytest.mark.parametrize(
    "impairment",
    [
        pytest.param(ref.Impairment(seed=11, loss_percent=8.0, jitter_ms=10.0), id="random"),
        pytest.param(ref.Impairment(seed=12, ge=(0.05, 0.4), jitter_ms=20.0), id="bursty"),
    ],
)
async def test_loss_and_jitter_match_the_injected_schedule(impairment: object) -> None:
    pairs = await _run(impairment)
    rel, slack = SENT_TOLERANCE
    for result, exp in pairs:
        media = result.media  # type: ignore[attr-defined]
        # A call of 4 s holds ~200 packets; every one of them was counted.
        assert media.packets_expected == exp.packets >= 150, (media.packets_expected, exp)
        assert exp.lost > 0  # the model did drop packets: the check below has teeth
        assert abs(media.loss_pct - exp.loss_pct) <= 0.10 * exp.loss_pct, (media, exp)
        # Every packet sent reached the lab; a kept packet still held back by the jitter
        # when the call ended counts as lost for any receiver (there are 0 to 2 of them).
        assert media.packets_received == exp.sent
        assert exp.lost <= media.packets_expected - media.packets_received <= exp.lost + 2
        assert abs(media.jitter_ms - exp.jitter_sent_ms) <= rel * exp.jitter_sent_ms + slack, (
            media.jitter_ms,
            exp,
        )
    rel, slack = INJECTED_TOLERANCE
    lab = statistics.fmean(result.media.jitter_ms for result, _ in pairs)  # type: ignore[attr-defined]
    injected = statistics.fmean(exp.jitter_scheduled_ms for _, exp in pairs)
    assert abs(lab - injected) <= rel * injected + slack, (lab, injected)
    # The injected delays had the model's mean (a check of the reference itself).
    mean_delay = statistics.fmean(exp.mean_delay_ms for _, exp in pairs)
    assert 0.5 * impairment.jitter_ms <= mean_delay <= 1.5 * impairment.jitter_ms  # type: ignore[attr-defined]


async def test_a_clean_line_shows_no_loss_and_little_jitter() -> None:
    pairs = await _run(ref.Impairment(seed=13))
    for result, exp in pairs:
        media = result.media  # type: ignore[attr-defined]
        assert exp.lost == 0 and exp.jitter_scheduled_ms == pytest.approx(0.0, abs=1e-6)
        assert media.loss_pct == 0.0 and media.packets_received == exp.packets
        # Only the two loops' own timing is left: far below any injected jitter above.
        assert media.jitter_ms < INJECTED_TOLERANCE[1], media


def test_the_expected_figures_follow_the_record() -> None:
    # Five packets on the 20 ms grid; the third dropped, the fourth 30 ms late (it
    # leaves after the fifth).
    pushes = [(100 + i, i * 0.02, i == 2) for i in range(5)]
    scheduled = {100: 0.0, 101: 0.02, 103: 0.09, 104: 0.08}
    record = ref.StreamRecord("c", pushes, scheduled, dict(scheduled))
    exp = ref.expected(record, 5)
    assert (exp.packets, exp.lost, exp.sent, exp.loss_pct, exp.dropped_pct) == (5, 1, 4, 20, 20)
    # Arrival order 100, 101, 104, 103: transit differences 0, 0 ms; then 104 (0 ms
    # late) after 101: 0; then 103 (30 ms late) after 104: 30 ms -> 30/16 ms.
    assert exp.jitter_scheduled_ms == pytest.approx(30 / 16)
    assert exp.mean_delay_ms == pytest.approx(30 / 4)
    # Only the lab's range counts: a stream it heard 3 packets of has no loss past them.
    assert ref.expected(record, 2).lost == 0


def test_receive_stats_count_loss_across_the_wrap_and_a_reordered_start() -> None:
    from trunkline.lab.ear import RtpReceiveStats

    rx = RtpReceiveStats()
    # 65534 arrives first, 65533 (overtaken) after it; 0 is lost; 65535 and 1..3 arrive.
    for n, seq in enumerate([65534, 65533, 65535, 1, 2, 3]):
        rx.packet(seq, seq * 160, 7, n * 0.02)
    assert (rx.expected, rx.received) == (7, 6)  # 65533..3 across the wrap
    assert rx.loss_pct == pytest.approx(100 / 7)
    assert (rx.bursts, rx.lost_in_bursts) == (1, 1)


def test_receive_stats_jitter_follows_rfc3550_a8() -> None:
    from trunkline.lab.ear import RtpReceiveStats

    rx = RtpReceiveStats()
    arrivals = [(0.0, 0), (0.030, 160), (0.040, 320), (0.060, 480)]  # 10 ms late, then on time
    for seq, (at, ts) in enumerate(arrivals):
        rx.packet(seq, ts, 9, at)
    # |D| = 10 ms, 10 ms, 0: J = 10/16, then J += (10 - J)/16, then J -= J/16.
    j = 10 / 16
    j += (10 - j) / 16
    j -= j / 16
    assert rx.jitter_ms == pytest.approx(j)
    assert rx.jitter_ms == pytest.approx(ref.rfc3550_jitter_ms(arrivals))

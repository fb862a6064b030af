"""SIPp as the callee, our UAC (``SipCalls.dial``) as the caller.

SIPp runs ``uas.xml`` (waits for our BYE) or ``uas_hangup.xml`` (sends its own BYE after
``-d`` ms) with ``-rtp_echo``, so the RTP we send to the port its answer names comes
back to our socket. SIPp's exit status and ``-trace_stat`` counters say whether our side
of the SIP flow was what the scenario demands; the echo says our RTP went where the
answer said and was well-formed enough for SIPp to bounce.

The caller runs in the test's event loop; SIPp is a subprocess, waited for in a thread
so the loop keeps answering it meanwhile.
"""

from __future__ import annotations

import asyncio

import pytest

from trunkline.media.tones import rms_dbfs
from trunkline.net.leg import Hangup

from ..net.helpers import TONE_DBFS, TONE_HZ, WAIT_S, Recorder, eventually, sip_caller, target, tone
from .sipp import EXIT_ALL_OK, dominant_frequency

pytestmark = pytest.mark.interop

TRANSPORTS = {"udp": "u1", "tcp": "t1"}
SIPP_TIMEOUT_S = 20.0


def _address(process) -> tuple[str, int]:
    host, port = process.address.rsplit(":", 1)
    return host, int(port)


@pytest.mark.parametrize("transport", list(TRANSPORTS))
async def test_sipp_echoes_our_tone_and_takes_our_bye(sipp_uas, transport: str) -> None:
    sipp = sipp_uas(transport=TRANSPORTS[transport], timeout=SIPP_TIMEOUT_S)
    async with sip_caller() as caller:
        uri, peer = target(_address(sipp), transport, user="sipp")
        leg = await caller.dial(uri, peer, answer_timeout_s=WAIT_S)
        rec = Recorder()
        leg.attach(rec)
        assert leg.media.codec.name == "PCMU"  # SIPp answers with the first type offered
        leg.send_audio(tone(1000))
        await eventually(lambda: rec.tone_frames() >= 45, "SIPp to echo the tone")
        echoed = b"".join(f for f in rec.frames if rms_dbfs(f) > TONE_DBFS)
        assert abs(dominant_frequency(echoed[-8000:]) - TONE_HZ) < 20
        assert leg.jitter.stats.lost == 0
        await leg.hangup()
        result = await asyncio.to_thread(sipp.wait)
    assert result.returncode == EXIT_ALL_OK, result.describe()
    assert result.successful == 1, result.describe()
    assert "BYE sip:" in result.messages  # SIPp logged our BYE


@pytest.mark.parametrize("transport", list(TRANSPORTS))
async def test_sipp_hangs_up_and_our_leg_ends(sipp_uas, transport: str) -> None:
    sipp = sipp_uas(
        scenario="uas_hangup.xml",
        transport=TRANSPORTS[transport],
        pause_ms=1000,
        timeout=SIPP_TIMEOUT_S,
    )
    async with sip_caller() as caller:
        uri, peer = target(_address(sipp), transport, user="sipp")
        leg = await caller.dial(uri, peer, answer_timeout_s=WAIT_S)
        rec = Recorder()
        leg.attach(rec)
        leg.send_audio(tone(400))
        ended = await asyncio.wait_for(leg.wait_closed(), WAIT_S)
        assert ended == Hangup("bye", "remote")
        assert rec.events[-1] == ended
        assert rec.tone_frames() >= 15  # the echo flowed until SIPp's BYE
        result = await asyncio.to_thread(sipp.wait)
        assert caller.calls == {}
    assert result.returncode == EXIT_ALL_OK, result.describe()
    assert result.successful == 1, result.describe()
    recent = list(caller.recent)
    assert [(s.ended_by, s.reason) for s in recent] == [("remote", "bye")]

"""SIP calls end to end on 127.0.0.1: our UAC (``SipCalls.dial``) against the running
server (``trunkline.runtime.server.Server``), real sockets, real pacers, one event loop.

What is checked is what a caller would notice: the call connects, the echo carries our
tone back, either side's BYE ends both, refusals carry the right status, hold stops the
far end's media, and SIP survives lost datagrams through its retransmissions. Every
wait is for a condition under a generous deadline; no assertion is about time.
"""

from __future__ import annotations

import asyncio

import pytest

from trunkline.apps.playback import playback_app
from trunkline.media.tones import sine
from trunkline.media.wav import write_wav
from trunkline.net.calls import CallFailedError
from trunkline.net.leg import Hangup
from trunkline.net.rtp_leg import SipRtpLeg
from trunkline.sdp.model import Direction
from trunkline.sdp.offer_answer import make_offer
from trunkline.sip import events as ev

from .helpers import (
    HOST,
    TONE_HZ,
    WAIT_S,
    EventTap,
    OutboundTap,
    RecordingEcho,
    call_record,
    dial,
    eventually,
    now,
    running_server,
    sip_caller,
    target,
    tone,
)

TRANSPORTS = ["udp", "tcp"]


# --- calls that work ------------------------------------------------------------------------


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_echo_call_and_caller_hangup(transport: str) -> None:
    async with running_server() as server, sip_caller() as caller:
        leg, rec = await dial(caller, server, transport)
        assert len(server.sip.calls) == 1
        leg.send_audio(tone(1000))  # 5 frames of silence, 50 of tone
        await eventually(lambda: rec.tone_frames() >= 50, "the whole tone to come back")
        # Loopback loses and reorders nothing; a gap would mean the legs drop packets.
        assert (leg.jitter.stats.lost, leg.jitter.stats.late) == (0, 0)

        await leg.hangup()
        assert (await leg.wait_closed()).by == "local"
        await eventually(lambda: len(server.sip.recent) == 1, "the server to end the call")
        summary = server.sip.recent[-1]
        assert summary.call_id == leg.call_id
        assert summary.ended_by == "remote"
        assert summary.reason == "bye"
        assert summary.rtp_received >= 55  # every frame we sent reached the server
        assert server.sip.calls == {}
        assert server.pool.in_use == 0 and caller.pool.in_use == 0
        assert server.pacer.stream_count == 0 and caller.pacer.stream_count == 0


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_server_hangup_ends_the_callers_leg(transport: str, tmp_path) -> None:
    wav = tmp_path / "prompt.wav"
    write_wav(wav, sine(TONE_HZ, 400, 0.3))  # 20 frames, then the app hangs up
    async with running_server(playback_app(wav)) as server, sip_caller() as caller:
        leg, rec = await dial(caller, server, transport)
        ended = await asyncio.wait_for(leg.wait_closed(), WAIT_S)
        assert ended.by == "remote"
        assert rec.of(Hangup) == [ended]  # the sink hears it, and last
        assert rec.events[-1] == ended
        assert rec.tone_frames() >= 15  # the prompt was heard before the BYE
        await eventually(lambda: len(server.sip.recent) >= 1, "the server's summary")
        assert server.sip.recent[-1].ended_by == "local"
        assert caller.calls == {} and caller.pool.in_use == 0


@pytest.mark.parametrize("side", ["caller", "server", "cancel"])
async def test_a_local_hangup_is_summarised_once(side: str, tmp_path) -> None:
    wav = tmp_path / "prompt.wav"
    write_wav(wav, sine(TONE_HZ, 200, 0.3))
    app = playback_app(wav) if side == "server" else RecordingEcho()
    async with (
        running_server(app, ring_ms=2000 if side == "cancel" else 0) as server,
        sip_caller() as caller,
    ):
        if side == "cancel":
            with pytest.raises(CallFailedError):
                await caller.dial(*target(server.sip_address), answer_timeout_s=0.2)
            call_id = caller.recent[0].call_id
        else:
            leg, _ = await dial(caller, server)
            call_id = leg.call_id
            if side == "caller":
                await leg.hangup()
            await asyncio.wait_for(leg.wait_closed(), WAIT_S)
        await eventually(lambda: len(server.sip.recent) >= 1, "the server's summary")
        await asyncio.sleep(0.2)  # let any second append happen
        hung_up_by = server.sip if side == "server" else caller
        ids = [s.call_id for s in hung_up_by.recent]
        assert ids == [call_id], f"{side}'s recent lists {ids}"


async def test_cancel_while_ringing_frees_everything() -> None:
    """The caller gives up during --ring-ms: CANCEL (RFC 3261 §9.1), the server ends the
    call as cancelled and frees the port and the pacer slot; answering later is moot."""
    async with running_server(ring_ms=1000) as server, sip_caller() as caller:
        with pytest.raises(CallFailedError) as failed:
            await caller.dial(*target(server.sip_address), answer_timeout_s=0.2)
        assert failed.value.status == 408
        await eventually(lambda: len(server.sip.recent) == 1, "the server to see the CANCEL")
        summary = server.sip.recent[-1]
        assert (summary.ended_by, summary.reason) == ("remote", "cancelled")
        assert server.pool.in_use == 0 and caller.pool.in_use == 0
        await asyncio.sleep(1.2)  # past the ring: the server's answer must go nowhere
        assert server.sip.calls == {} and server.pacer.stream_count == 0
        assert len(server.sip.recent) == 1
        # And the server still takes calls.
        leg, rec = await dial(caller, server)
        leg.send_audio(tone(400))
        await eventually(lambda: rec.tone_frames() >= 15, "the next call's echo")
        await leg.hangup()


# --- mid-call -----------------------------------------------------------------------------------


async def test_reinvite_hold_and_unhold() -> None:
    """Our re-INVITE with a=sendonly puts the server on hold: it stops sending (RFC 3264
    §8.4) and its app hears HoldChanged; sendrecv again resumes the echo.

    ``SipCalls`` has no re-INVITE API for an outgoing call yet, so the test drives the
    UA directly (``ua.reinvite`` + ``endpoint.pump``) and taps its events.
    """
    app = RecordingEcho()
    async with running_server(app) as server, sip_caller() as caller:
        leg, rec = await dial(caller, server)
        leg.send_audio(sine(TONE_HZ, 10_000, 0.3))  # keep talking through the whole test
        await eventually(lambda: rec.tone_frames() >= 10, "the echo")
        record = call_record(caller, leg)
        origin = record.pending_offer.origin
        assert caller.ua is not None and caller.endpoint is not None
        tap = EventTap(caller)

        def reoffer(direction: Direction, version: int) -> None:
            offer = make_offer(
                local_host=HOST,
                local_port=record.port,
                session_id=origin.session_id,  # RFC 3264 §8: same id, higher version
                session_version=version,
                direction=direction,
            )
            caller.ua.reinvite(record.sip, bytes(offer), now=now())
            caller.endpoint.pump()

        reoffer(Direction.SENDONLY, 2)
        await eventually(lambda: len(tap.of(ev.ReinviteAnswered)) == 1, "the hold's 200")
        assert b"a=recvonly" in tap.of(ev.ReinviteAnswered)[0].sdp
        await eventually(lambda: app.holds() == [True], "HoldChanged(on=True) at the server")
        # Echo packets already in flight may still land; then the stream must stop.
        await asyncio.sleep(0.2)
        held_at = leg.stats.received
        server_leg = app.legs[0]
        heard_at = server_leg.stats.received
        await asyncio.sleep(0.5)  # 25 frames' worth of time with nothing coming back
        assert leg.stats.received == held_at, "the server kept sending while on hold"
        # One-way hold: the server answered recvonly and still hears us.
        assert server_leg.stats.received >= heard_at + 10

        reoffer(Direction.SENDRECV, 3)
        await eventually(lambda: len(tap.of(ev.ReinviteAnswered)) == 2, "the unhold's 200")
        await eventually(lambda: app.holds() == [True, False], "HoldChanged(on=False)")
        await eventually(lambda: leg.stats.received >= held_at + 20, "the echo to resume")
        assert tap.of(ev.ReinviteFailed) == []


async def test_info_dtmf_is_recorded_in_the_summary() -> None:
    app = RecordingEcho()
    async with running_server(app) as server, sip_caller() as caller:
        leg, _ = await dial(caller, server)
        assert caller.ua is not None and caller.endpoint is not None
        record = call_record(caller, leg)
        caller.ua.send_dtmf_info(record.sip, "5", now=now())
        caller.endpoint.pump()
        await eventually(lambda: app.digits() == "5", "the app to hear the digit")
        await leg.hangup()
        await eventually(lambda: len(server.sip.recent) == 1, "the server's summary")
        assert server.sip.recent[-1].dtmf == "5"


async def test_ringing_first_still_connects() -> None:
    async with running_server(ring_ms=300) as server, sip_caller() as caller:
        tap = EventTap(caller)
        leg, rec = await dial(caller, server)
        ringing = tap.of(ev.CallRinging)
        assert [r.status for r in ringing] == [180]
        assert tap.events.index(ringing[0]) < tap.events.index(tap.of(ev.CallAnswered)[0])
        leg.send_audio(tone(400))
        await eventually(lambda: rec.tone_frames() >= 15, "the echo")
        await leg.hangup()


# --- refusals -----------------------------------------------------------------------------------


async def test_max_calls_reached_gets_503_with_retry_after() -> None:
    async with running_server(max_calls=1) as server, sip_caller() as caller:
        server_tap = OutboundTap()
        assert server.sip.endpoint is not None
        server.sip.endpoint.drop_outbound = server_tap
        first, _ = await dial(caller, server)
        with pytest.raises(CallFailedError) as failed:
            await dial(caller, server)
        assert failed.value.status == 503
        assert server.sip.refused == {503: 1}
        refusal = next(m for m in server_tap.messages if m.startswith(b"SIP/2.0 503"))
        assert b"\r\nRetry-After: " in refusal
        assert caller.pool.in_use == 1  # the refused call gave its RTP port back
        # The first call is unaffected, and once it ends there is room again.
        await first.hangup()
        await eventually(lambda: server.sip.active == 0, "the first call to end")
        again, _ = await dial(caller, server)
        await again.hangup()


async def test_exhausted_rtp_pool_gets_503() -> None:
    # 42000-42001 holds one even/odd pair: room for exactly one call.
    async with running_server(rtp=(42000, 42001)) as server, sip_caller() as caller:
        assert server.pool.capacity == 1
        first, rec = await dial(caller, server)
        with pytest.raises(CallFailedError) as failed:
            await dial(caller, server)
        assert failed.value.status == 503
        assert server.sip.refused == {503: 1}
        first.send_audio(tone(400))
        await eventually(lambda: rec.tone_frames() >= 15, "the first call's echo")
        await first.hangup()


async def test_media_setup_failure_gets_500_with_retry_after(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with running_server() as server, sip_caller() as caller:
        start = SipRtpLeg.start
        broken: list[SipRtpLeg] = []

        def fail_on_server(leg: SipRtpLeg) -> None:
            if leg.control is server.sip:
                broken.append(leg)
                raise OSError("no file descriptors left")
            start(leg)

        monkeypatch.setattr(SipRtpLeg, "start", fail_on_server)
        server_tap = OutboundTap()
        assert server.sip.endpoint is not None
        server.sip.endpoint.drop_outbound = server_tap
        with pytest.raises(CallFailedError) as failed:
            await dial(caller, server)
        assert failed.value.status == 500
        assert broken and server.sip.refused == {500: 1}
        refusal = next(m for m in server_tap.messages if m.startswith(b"SIP/2.0 500"))
        assert b"\r\nRetry-After: " in refusal
        assert server.pool.in_use == 0 and not server.sip.calls
        monkeypatch.setattr(SipRtpLeg, "start", start)
        leg, rec = await dial(caller, server)  # the next call is fine
        leg.send_audio(tone(400))
        await eventually(lambda: rec.tone_frames() >= 15, "the echo after a refused call")
        await leg.hangup()


async def test_offer_without_g711_gets_488() -> None:
    g729_only = (
        b"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
        b"m=audio 43998 RTP/AVP 18\r\na=rtpmap:18 G729/8000\r\na=sendrecv\r\n"
    )
    async with running_server() as server, sip_caller() as caller:
        assert caller.ua is not None and caller.endpoint is not None
        tap = EventTap(caller)
        uri, peer = target(server.sip_address)
        call = caller.ua.invite(uri, g729_only, peer, from_uri=f"sip:t@{HOST}", now=now())
        caller.endpoint.pump()
        await eventually(lambda: bool(tap.of(ev.CallFailed)), "the refusal")
        failed = tap.of(ev.CallFailed)
        assert [(f.call, f.status) for f in failed] == [(call, 488)]
        assert server.sip.refused == {488: 1}
        assert server.pool.in_use == 0


# --- loss ---------------------------------------------------------------------------------------


async def test_call_survives_lost_datagrams() -> None:
    """Deterministic loss on both sides; the call must set up and tear down through
    RFC 3261 retransmissions alone.

    Lost: our first INVITE (Timer A re-sends it), the server's first 200 to the INVITE
    (§13.3.1.4: re-sent until the ACK), our first ACK (the next 200 gets a new ACK,
    §13.2.2.4), and the server's first 200 to our BYE (Timer E re-sends the BYE).
    """
    async with running_server() as server, sip_caller() as caller:
        assert server.sip.endpoint is not None and caller.endpoint is not None
        server_tap = OutboundTap({"200 INVITE": 1, "200 BYE": 1})
        caller_tap = OutboundTap({"INVITE": 1, "ACK": 1})
        server.sip.endpoint.drop_outbound = server_tap
        caller.endpoint.drop_outbound = caller_tap

        leg, rec = await dial(caller, server)
        assert caller_tap.dropped == {"INVITE": 1, "ACK": 1}
        assert caller_tap.sent["INVITE"] >= 1  # the retransmission got through
        assert server_tap.dropped == {"200 INVITE": 1}
        # The call is only confirmed at the server once a second ACK went out.
        await eventually(lambda: caller_tap.sent.get("ACK", 0) >= 1, "a re-sent ACK")
        assert server_tap.sent["200 INVITE"] >= 2  # one answered by the dropped ACK
        leg.send_audio(tone(400))
        await eventually(lambda: rec.tone_frames() >= 15, "the echo")

        await leg.hangup()
        await eventually(lambda: server_tap.sent.get("200 BYE", 0) >= 1, "a second BYE 200")
        assert server_tap.dropped == {"200 INVITE": 1, "200 BYE": 1}
        assert caller_tap.sent["BYE"] >= 2  # Timer E re-sent it
        summary = server.sip.recent[-1]
        assert (summary.ended_by, summary.reason) == ("remote", "bye")


# --- many calls ---------------------------------------------------------------------------------


async def test_twenty_concurrent_calls_each_get_their_echo() -> None:
    count = 20
    async with running_server() as server, sip_caller() as caller:
        answered = await asyncio.gather(*(dial(caller, server) for _ in range(count)))
        assert server.sip.active == count
        assert len({leg.local_port for leg, _ in answered}) == count
        for leg, _ in answered:
            leg.send_audio(tone(1000))
        for leg, rec in answered:
            await eventually(lambda rec=rec: rec.tone_frames() >= 40, f"{leg.call_id}'s echo")
        await asyncio.gather(*(leg.hangup() for leg, _ in answered))
        await eventually(lambda: len(server.sip.recent) == count, "every call to end")
        assert {s.ended_by for s in server.sip.recent} == {"remote"}
        assert {s.call_id for s in server.sip.recent} == {leg.call_id for leg, _ in answered}
        assert server.pool.in_use == 0

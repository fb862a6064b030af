"""SIPp calls trunkline: our server is the UAS, SIPp 3.6.1 the UAC.

Each test starts ``python -m trunkline serve`` (see ``conftest.launch_trunkline``) and
runs one scenario from ``scenarios/``. What the tests assume of the server:

- ``serve --app echo|playback FILE --sip H:P --http H:P --rtp-ports LO-HI [--ring-ms N]``;
  SIP over UDP and TCP on the same port; ``GET /health`` answers 200 once it is ready.
- ``GET /calls/recent`` answers a JSON list of finished calls, each at least
  ``{"call_id": str, "dtmf": str, "ended_by": "remote" | "local", "reason": ...}``.
- RTP goes to the address in SIPp's SDP, or to the source of SIPp's packets (symmetric
  RTP); the scenarios make both the same port, where the test's ``RtpSink`` listens.

SIPp's own exit status and ``-trace_stat`` counters say whether the SIP flow went as
the scenario demands (responses, their order, and the regexp checks inside it).
"""

from __future__ import annotations

import pytest

from trunkline.media.tones import sine
from trunkline.media.wav import write_wav

from .sipp import (
    EXIT_ALL_OK,
    PCAP_DIR,
    RtpSink,
    dominant_frequency,
    dtmf_pcap,
    echo_similarity,
    pcap_alaw_payload,
    pcap_alaw_pcm,
    received_pcm,
    write_alaw_pcap,
)

pytestmark = pytest.mark.interop

G711A_PCAP = PCAP_DIR / "g711a.pcap"
G711A_SECONDS = 7.08  # 236 packets of 30 ms


def test_options_lists_invite(trunkline_server, run_sipp):
    server = trunkline_server()
    result = run_sipp("options.xml", server.sip_address)
    assert result.returncode == EXIT_ALL_OK, result.describe()
    assert result.successful == 1, result.describe()


@pytest.mark.parametrize(
    ("transport", "ptime_ms", "pause_ms"),
    [("u1", 30, int(G711A_SECONDS * 1000) + 200), ("u1", 20, 3000), ("t1", 20, 3000)],
    ids=["udp-30ms", "udp-20ms", "tcp-20ms"],
)
def test_echo_returns_the_callers_audio(
    tmp_path,
    transport,
    ptime_ms,
    pause_ms,
    needs_pcap_play,
    trunkline_server,
    run_sipp,
    rtp_sink: RtpSink,
):
    """SIPp plays speech into a call with the echo app; the echo must come back.

    The speech is sip-tester's g711a.pcap as shipped (30 ms packets, all of it), or
    its audio re-packed into 20 ms packets (3 s of it). How the echo is observed:
    NOT by SIPp. SIPp 3.6.1 cannot count the RTP it receives (no rtpcheck; its RTP
    rates only appear on its screen, and -rtp_echo would bounce the echo back to us
    forever). Instead SIPp's offer names the port of the test's own UDP socket
    (``RtpSink``, on SIPp's ``-mp`` + 4), and SIPp's pcap replay uses that port as its
    source port, so the echo lands in the sink whether the server sends to the SDP
    address or latches onto the source. The test decodes what arrived and requires
    the audio SIPp sent: A-law only, at least 80 % of the sent duration, and 80 % of
    the non-silent half seconds correlating at >= 0.9 with some part of what was
    sent (an echo of G.711 is sample-exact, so this leaves room only for gaps).
    """
    pcap = G711A_PCAP
    if ptime_ms != 30:
        pcap = tmp_path / f"speech_{ptime_ms}ms.pcap"
        write_alaw_pcap(pcap, pcap_alaw_payload(G711A_PCAP), ptime_ms)
    server = trunkline_server()
    result = run_sipp(
        "basic.xml",
        server.sip_address,
        transport=transport,
        pause_ms=pause_ms,
        media_port=rtp_sink.sipp_media_port,
        pcaps={"audio.pcap": pcap},
    )
    assert result.returncode == EXIT_ALL_OK, result.describe()
    packets = rtp_sink.snapshot()
    assert packets, f"no RTP reached the sink on port {rtp_sink.port}"
    assert {p.payload_type for p in packets} == {8}, "the echo must stay on PCMA"
    sent = pcap_alaw_pcm(pcap)[: pause_ms * 16]  # what SIPp sent before its BYE
    echoed = received_pcm(packets)
    assert len(echoed) >= 0.8 * len(sent), (
        f"echo carried {len(echoed) / 16000:.2f} s of audio, SIPp sent {len(sent) / 16000:.2f} s"
    )
    scores = echo_similarity(echoed, sent)
    assert len(scores) >= 2, (
        f"the echo is silent: {len(packets)} packets, {len(echoed) / 16000:.2f} s, "
        f"peak sample {max(abs(v) for v in memoryview(echoed).cast('h')) if echoed else 0}"
    )
    good = [s for s in scores if s >= 0.9]
    assert len(good) >= 0.8 * len(scores), f"echo does not match what was sent: {scores}"
    call = server.wait_for_call(result.call_id())
    assert call["ended_by"] == "remote", call


def test_dtmf_digits_are_reported(needs_pcap_play, trunkline_server, run_sipp):
    """Each of sip-tester's twelve RFC 4733 pcaps, one call per digit, run in parallel."""
    server = trunkline_server()
    digits = "0123456789*#"
    runs = {
        digit: run_sipp.start("dtmf.xml", server.sip_address, pcaps={"dtmf.pcap": dtmf_pcap(digit)})
        for digit in digits
    }
    results = {digit: process.wait() for digit, process in runs.items()}
    for result in results.values():
        assert result.returncode == EXIT_ALL_OK, result.describe()
    reported = {
        digit: server.wait_for_call(result.call_id()).get("dtmf")
        for digit, result in results.items()
    }
    assert reported == {digit: digit for digit in digits}


def test_cancel_while_ringing(trunkline_server, run_sipp):
    server = trunkline_server(ring_ms=5000)
    result = run_sipp("cancel.xml", server.sip_address)
    assert result.returncode == EXIT_ALL_OK, result.describe()
    call = server.wait_for_call(result.call_id())
    assert call["ended_by"] == "remote", call


def test_caller_hangs_up(trunkline_server, run_sipp):
    server = trunkline_server()
    result = run_sipp("bye_caller.xml", server.sip_address, pause_ms=500)
    assert result.returncode == EXIT_ALL_OK, result.describe()
    call = server.wait_for_call(result.call_id())
    assert call["ended_by"] == "remote", call


def test_server_hangs_up_after_playback(tmp_path, trunkline_server, run_sipp, rtp_sink: RtpSink):
    """The playback app plays a 1 s 440 Hz WAV, then sends BYE; SIPp answers it."""
    wav = tmp_path / "tone.wav"
    write_wav(wav, sine(440.0, 1000))
    server = trunkline_server("playback", str(wav))
    result = run_sipp("bye_server.xml", server.sip_address, media_port=rtp_sink.sipp_media_port)
    assert result.returncode == EXIT_ALL_OK, result.describe()
    packets = rtp_sink.snapshot()
    assert {p.payload_type for p in packets} == {8}, f"{len(packets)} packets"
    audio = received_pcm(packets)
    assert len(audio) >= 0.9 * 16000, f"only {len(audio) / 16000:.2f} s of the 1 s prompt arrived"
    assert abs(dominant_frequency(audio) - 440.0) < 15.0
    call = server.wait_for_call(result.call_id())
    assert call["ended_by"] == "local", call


def test_hold_and_resume(trunkline_server, run_sipp):
    """re-INVITE sendonly must be answered recvonly, then sendrecv again (in hold.xml)."""
    server = trunkline_server()
    result = run_sipp("hold.xml", server.sip_address)
    assert result.returncode == EXIT_ALL_OK, result.describe()
    call = server.wait_for_call(result.call_id())
    assert call["ended_by"] == "remote", call


def test_offer_without_common_codec_gets_488(trunkline_server, run_sipp):
    server = trunkline_server()
    result = run_sipp("codec488.xml", server.sip_address)
    assert result.returncode == EXIT_ALL_OK, result.describe()
    assert result.successful == 1, result.describe()


@pytest.mark.slow
def test_load_100_calls(trunkline_server, run_sipp):
    """100 one-second calls at 10 calls/s, at most 100 at once: none may fail."""
    server = trunkline_server()
    result = run_sipp(
        "bye_caller.xml",
        server.sip_address,
        "-r", "10", "-l", "100",
        calls=100,
        pause_ms=1000,
        timeout=60,
    )  # fmt: skip
    assert result.returncode == EXIT_ALL_OK, result.describe()
    assert (result.successful, result.failed) == (100, 0), result.describe()

"""The SIPp scenarios checked against SIPp itself, so they are known good before trunkline.

Each UAC scenario of ``test_sipp_uas.py`` runs here against a SIPp UAS playing the
server's part: ``uas.xml`` / ``uas_hangup.xml`` (the callee scenarios our UAC tests use,
which this also checks) or a stand-in from ``scenarios/selftest/``. A scenario that
passes here and fails against trunkline points at trunkline. The negative cases
prove that the checks inside the scenarios (regexps on answers and CSeq) can fail.
The last tests check the harness's own audio and pcap helpers.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from .sipp import (
    EXIT_ALL_OK,
    EXIT_SOME_FAILED,
    PCAP_DIR,
    SCENARIOS,
    RtpSink,
    best_alignment,
    dtmf_pcap,
    echo_similarity,
    parse_rtp,
    pcap_alaw_payload,
    pcap_alaw_pcm,
    read_pcap_rtp,
    received_pcm,
    write_alaw_pcap,
)

pytestmark = pytest.mark.interop

G711A_PCAP = PCAP_DIR / "g711a.pcap"
STANDINS = SCENARIOS / "selftest"


def _broken_standin(tmp_path: Path, name: str, old: str, new: str, after: str = "") -> Path:
    """A copy of a stand-in with the first ``old`` after ``after`` replaced by ``new``."""
    text = (STANDINS / name).read_text()
    start = text.index(after) if after else 0
    at = text.index(old, start)
    path = tmp_path / f"broken_{name}"
    path.write_text(text[:at] + new + text[at + len(old) :])
    return path


def _failed_counters(result) -> dict[str, str]:
    return {
        k: v
        for k, v in result.stats.items()
        if k.startswith("Failed") and k.endswith("(C)") and v != "0"
    }


def test_options(sipp_uas, run_sipp):
    server = sipp_uas(scenario=STANDINS / "server_options.xml", echo=False)
    result = run_sipp("options.xml", server.address)
    assert result.returncode == EXIT_ALL_OK, result.describe()
    assert server.wait().returncode == EXIT_ALL_OK


def test_options_without_invite_in_allow_fails(tmp_path, sipp_uas, run_sipp):
    standin = _broken_standin(tmp_path, "server_options.xml", "Allow: INVITE, ", "Allow: ")
    server = sipp_uas(scenario=standin, echo=False)
    result = run_sipp("options.xml", server.address, timeout=10)
    assert result.returncode == EXIT_SOME_FAILED
    assert _failed_counters(result).get("FailedRegexpDoesntMatch(C)") == "1"


@pytest.mark.parametrize(
    ("transport", "ptime_ms"), [("u1", 30), ("t1", 20)], ids=["udp-30ms", "tcp-20ms"]
)
def test_basic_call_audio_reaches_the_sink(
    tmp_path, transport, ptime_ms, needs_pcap_play, sipp_uas, run_sipp, rtp_sink: RtpSink
):
    """The stand-in plays the speech pcap to the offer's address, as an echo of it would.

    The 20 ms case replays a pcap written by ``write_alaw_pcap``, which checks that
    SIPp accepts what the harness writes.
    """
    pcap = G711A_PCAP
    if ptime_ms != 30:
        pcap = tmp_path / "speech.pcap"
        assert write_alaw_pcap(pcap, pcap_alaw_payload(G711A_PCAP), ptime_ms) == 354
    pcaps = {"audio.pcap": pcap}
    server = sipp_uas(
        scenario=STANDINS / "server_echo.xml", echo=False, transport=transport, pcaps=pcaps
    )
    result = run_sipp(
        "basic.xml",
        server.address,
        transport=transport,
        pause_ms=1500,
        media_port=rtp_sink.sipp_media_port,
        pcaps=pcaps,
    )
    assert result.returncode == EXIT_ALL_OK, result.describe()
    assert server.wait().returncode == EXIT_ALL_OK, server.wait().describe()
    packets = rtp_sink.snapshot()
    assert {p.payload_type for p in packets} == {8}
    assert {len(p.payload) for p in packets} == {8 * ptime_ms}
    scores = echo_similarity(received_pcm(packets), pcap_alaw_pcm(G711A_PCAP))
    assert scores and min(scores) > 0.99, scores


def test_dtmf_pcap_reaches_the_offer_address(needs_pcap_play, sipp_uas, run_sipp, rtp_sink):
    """uas.xml with -rtp_echo returns the digit's RFC 4733 packets to the sink."""
    server = sipp_uas()
    result = run_sipp(
        "dtmf.xml",
        server.address,
        media_port=rtp_sink.sipp_media_port,
        pcaps={"dtmf.pcap": dtmf_pcap("#")},
    )
    assert result.returncode == EXIT_ALL_OK, result.describe()
    events = [p for p in rtp_sink.snapshot() if p.payload_type == 101]
    assert events, "no telephone-event packets came back"
    assert {p.payload[0] for p in events} == {11}  # RFC 4733 §3.2: '#' is event 11


def test_cancel(sipp_uas, run_sipp):
    server = sipp_uas(scenario=STANDINS / "server_cancel.xml", echo=False)
    result = run_sipp("cancel.xml", server.address)
    assert result.returncode == EXIT_ALL_OK, result.describe()
    assert server.wait().returncode == EXIT_ALL_OK
    # CANCEL and the ACK of the 487 must reuse the INVITE's branch (RFC 3261 §9.1, §17.1.1.3).
    branches = {
        line.split("branch=")[1].split(";")[0]
        for line in result.messages.splitlines()
        if line.startswith("Via:")
    }
    assert len(branches) == 1, branches


def test_cancel_checks_which_response_answers_what(tmp_path, sipp_uas, run_sipp):
    standin = _broken_standin(
        tmp_path, "server_cancel.xml", "CSeq: 1 INVITE", "CSeq: 1 CANCEL", after="487"
    )
    server = sipp_uas(scenario=standin, echo=False)
    result = run_sipp("cancel.xml", server.address, timeout=10)
    assert result.returncode == EXIT_SOME_FAILED
    assert _failed_counters(result).get("FailedRegexpDoesntMatch(C)") == "1"


def test_caller_hangs_up_against_uas(sipp_uas, run_sipp):
    server = sipp_uas()
    result = run_sipp("bye_caller.xml", server.address, pause_ms=300)
    assert result.returncode == EXIT_ALL_OK, result.describe()
    assert server.wait().successful == 1


def test_uas_echoes_rtp(sipp_uas):
    """The callee for our UAC tests returns RTP to its sender (-rtp_echo)."""
    import socket

    server = sipp_uas()
    packet = bytes([0x80, 0x00, 0x12, 0x34]) + bytes(8) + bytes(range(160))
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(3)
        sock.sendto(packet, ("127.0.0.1", server.media_port))
        assert sock.recvfrom(2048)[0] == packet


def test_server_hangs_up(sipp_uas, run_sipp):
    server = sipp_uas(scenario="uas_hangup.xml", pause_ms=300)
    result = run_sipp("bye_server.xml", server.address)
    assert result.returncode == EXIT_ALL_OK, result.describe()
    assert server.wait().successful == 1
    assert any(line.startswith("BYE ") for line in result.messages.splitlines())


def test_hold(sipp_uas, run_sipp):
    server = sipp_uas(scenario=STANDINS / "server_hold.xml", echo=False)
    result = run_sipp("hold.xml", server.address)
    assert result.returncode == EXIT_ALL_OK, result.describe()
    assert server.wait().returncode == EXIT_ALL_OK


@pytest.mark.parametrize(
    ("old", "new", "after", "counter"),
    [
        ("a=recvonly", "a=sendrecv", "", "FailedRegexpDoesntMatch(C)"),
        ("a=sendrecv", "a=inactive", "o=selftest 1 3", "FailedRegexpShouldntMatch(C)"),
    ],
    ids=["hold-not-recvonly", "resume-still-held"],
)
def test_hold_checks_the_answers(tmp_path, sipp_uas, run_sipp, old, new, after, counter):
    standin = _broken_standin(tmp_path, "server_hold.xml", old, new, after=after)
    server = sipp_uas(scenario=standin, echo=False)
    result = run_sipp("hold.xml", server.address, timeout=10)
    assert result.returncode == EXIT_SOME_FAILED
    assert _failed_counters(result).get(counter) == "1", result.describe()


def test_codec488(sipp_uas, run_sipp):
    server = sipp_uas(scenario=STANDINS / "server_488.xml", echo=False)
    result = run_sipp("codec488.xml", server.address)
    assert result.returncode == EXIT_ALL_OK, result.describe()
    assert server.wait().returncode == EXIT_ALL_OK


def test_load_invocation(sipp_uas, run_sipp):
    """The load test's options, scaled down: 20 calls at 20 calls/s."""
    server = sipp_uas(calls=20)
    result = run_sipp(
        "bye_caller.xml", server.address, "-r", "20", "-l", "20", calls=20, pause_ms=200
    )
    assert result.returncode == EXIT_ALL_OK, result.describe()
    assert (result.successful, result.failed) == (20, 0)
    assert server.wait().successful == 20


# --- the harness's own helpers ------------------------------------------------------------


def test_g711a_pcap_is_what_the_tests_expect():
    packets = [parse_rtp(p, ("", 0)) for p in read_pcap_rtp(G711A_PCAP)]
    assert len(packets) == 236
    assert {p.payload_type for p in packets if p} == {8}
    assert {len(p.payload) for p in packets if p} == {240}  # 30 ms packets
    assert len(pcap_alaw_pcm(G711A_PCAP)) == 236 * 240 * 2


def test_alignment_tells_an_echo_from_another_sound():
    sent = pcap_alaw_pcm(G711A_PCAP)
    delayed = bytes(800) + sent[16000:40000]  # 50 ms of silence, then 0.75 s from 1 s in
    lag, corr = best_alignment(delayed, sent)
    assert lag == 8000 - 400 and corr > 0.99
    noise = np.random.default_rng(7).normal(0, 3000, 12000).astype("<i2").tobytes()
    assert max(echo_similarity(noise, sent)) < 0.3
    reversed_speech = np.frombuffer(sent, "<i2")[::-1].tobytes()[:24000]
    assert max(echo_similarity(reversed_speech, sent)) < 0.5


def test_parse_rtp_rejects_what_is_not_rtp():
    assert parse_rtp(b"", ("", 0)) is None
    assert parse_rtp(bytes(12), ("", 0)) is None  # version 0
    assert parse_rtp(bytes([0x81]) + bytes(11), ("", 0)) is None  # CSRC count past the end
    packet = parse_rtp(bytes([0x80, 0xE5, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3, 9]), ("h", 1))
    assert packet is not None
    assert (packet.payload_type, packet.seq, packet.timestamp, packet.ssrc) == (101, 1, 2, 3)
    assert packet.payload == b"\x09"

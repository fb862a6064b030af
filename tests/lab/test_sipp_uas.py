"""The lab against SIPp as the callee: sane figures from a peer that is not trunkline.

SIPp 3.6.1 (Debian ``sip-tester``) runs its built-in ``uas`` scenario with
``-rtp_echo``: it answers every INVITE (PCMU) and sends every RTP packet back to where it
came from. So the "agent" the lab hears is its own caller's voice, a few milliseconds
late. What the lab must then report:

- the call answered (200), its setup time, and who hung up (the caller, at the script's
  end; SIPp waits for the BYE);
- RTP back with no loss on loopback, a small finite jitter, and the E-model's MOS of a
  clean G.711 call (no loss, 60 ms mouth to ear: about 4.4);
- the echo heard as speech, *while the caller speaks*: it is talk-over, not a reply.
  Turn latency is the first agent speech that *starts* after the caller's last sample,
  and time to first word the agent speech before the caller's first action; an echo
  starts inside the utterance it echoes, so both stay None ("not measured"), and no
  reply is owed dead air either (the caller waits 1 s, under the 2 s mark).

A second SIPp answers 486 Busy Here to everything: a categorised setup failure.
"""

from __future__ import annotations

import asyncio
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from trunkline.lab.engine import Lab, Target
from trunkline.lab.script import CallScript, HangUp, Listen, Say

from ..interop.sipp import (
    SippProcess,
    free_media_base,
    free_port,
    free_udp_range,
    sipp_path,
    start_sipp,
    wait_until_listening,
)

pytestmark = [
    pytest.mark.interop,
    pytest.mark.skipif(sipp_path() is None, reason="sipp is not on PATH (Debian sip-tester)"),
]

CALLS = 3
LINE = "I would like my order status please"
ECHO_SCRIPT = CallScript(
    "echo",
    seed=11,
    steps=(Say(LINE, wait_for_agent=False, gap_s=0.2), Listen(timeout_s=1.0), HangUp()),
    reply_timeout_s=1.0,
    max_duration_s=20.0,
)

BUSY_XML = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<!DOCTYPE scenario SYSTEM "sipp.dtd">
<scenario name="busy callee">
  <recv request="INVITE"/>
  <send>
    <![CDATA[

      SIP/2.0 486 Busy Here
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]-[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      Content-Length: 0

    ]]>
  </send>
  <recv request="ACK"/>
</scenario>
"""


def start_echo_uas(workdir: Path, calls: int) -> SippProcess:
    """``sipp -sn uas -rtp_echo`` on 127.0.0.1, for ``calls`` calls."""
    workdir.mkdir(parents=True, exist_ok=True)
    port, media = free_port(), free_media_base()
    command = [
        sipp_path() or "sipp", "-sn", "uas", "-rtp_echo",
        "-i", "127.0.0.1", "-mi", "127.0.0.1", "-bind_local",
        "-p", str(port), "-mp", str(media), "-m", str(calls),
        "-nostdin", "-timeout", "60s", "-timeout_error",
        "-trace_err", "-error_file", "errors.log",
        "-trace_stat", "-stf", "stats.csv", "-fd", "1",
    ]  # fmt: skip
    with open(workdir / "stdout.txt", "wb") as out:
        process = subprocess.Popen(
            command, cwd=workdir, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT
        )
    sipp = SippProcess(process, command, workdir, port, media, uuid.uuid4().hex[:8], 70, "u1")
    wait_until_listening(sipp)
    return sipp


@pytest.fixture
def echo_uas(tmp_path: Path) -> Iterator[SippProcess]:
    sipp = start_echo_uas(tmp_path / "echo", CALLS)
    yield sipp
    sipp.stop()


@pytest.fixture
def busy_uas(tmp_path: Path) -> Iterator[SippProcess]:
    scenario = tmp_path / "busy.xml"
    scenario.write_text(BUSY_XML)
    sipp = start_sipp(scenario, tmp_path / "busy", None, calls=1, timeout=30)
    wait_until_listening(sipp)
    yield sipp
    sipp.stop()


def lab_ports() -> tuple[int, int]:
    base = free_udp_range(40, even=True)
    return base, base + 39


async def test_the_lab_reports_sane_figures_against_an_echoing_sipp(
    echo_uas: SippProcess,
) -> None:
    target = Target.parse(f"sip:service@{echo_uas.address}")
    async with Lab(target, rtp_ports=lab_ports()) as lab:
        await lab.prepare([ECHO_SCRIPT])
        line = await lab.voices.say(ECHO_SCRIPT.persona, LINE)
        results = await asyncio.gather(*(lab.call(ECHO_SCRIPT, i) for i in range(CALLS)))
    sipp = await asyncio.to_thread(echo_uas.wait, 15)
    assert sipp.successful == CALLS, sipp.describe()
    speech_ms = (line.speech_end_s - line.speech_start_s) * 1000
    for r in results:
        assert r.failure is None, (r.failure, r.failure_detail)
        assert r.setup_status == 200 and r.setup_ms is not None and r.setup_ms > 0
        assert r.hangup_by == "caller" and r.duration_ms is not None
        media = r.media
        # Everything the lab sent came back: one packet per 20 ms of the call.
        assert media.packets_received > 0.8 * r.duration_ms / 20, media
        assert media.packets_received <= media.packets_expected
        assert media.loss_pct == 0.0
        assert 0.0 <= media.jitter_ms < 40.0, media  # loopback: a frame at the very most
        assert media.mos is not None and 4.2 <= media.mos <= 4.5, media
        # The echo is the caller's own voice: talk-over for about the utterance's length.
        assert 0.7 * speech_ms <= r.talk_over_ms <= speech_ms + 100, (r.talk_over_ms, speech_ms)
        [said] = [t for t in r.turns if t.kind == "say"]
        assert said.caller_end_ms is not None
        assert said.latency_ms is None and r.time_to_first_word_ms is None
        assert r.dead_air_ms == []


async def test_a_busy_sipp_is_a_categorised_setup_failure(busy_uas: SippProcess) -> None:
    target = Target.parse(f"sip:service@{busy_uas.address}")
    async with Lab(target, rtp_ports=lab_ports()) as lab:
        result = await lab.call(CallScript("busy", 1, steps=(Say("hello"),)))
    assert result.failure == "setup_486" and result.setup_failed
    assert result.setup_status == 486
    assert result.media.packets_received == 0 and result.turns == []
    assert not result.task_success

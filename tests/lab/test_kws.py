"""Keyword spotting on the agent's audio: real espeak-ng speech through G.711.

The spotter is checked where a lab uses it: on speech rendered by espeak-ng, cut to
8 kHz and companded with u-law (what an agent's audio is when it reaches the lab). Its
accuracy over all the Acme prompts is ``bench/kws_accuracy.py``'s job; these tests pin
one phrase heard and phrases not heard, the reply windows' audio, the verdicts, the
process pool, and a whole call to an agent that plays a prompt and has no transcript.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest

from trunkline.apps.playback import playback_app
from trunkline.lab import kws, kws_worker
from trunkline.lab.caller import CallTrace, Spoken
from trunkline.lab.ear import ULAW_LOUD, Ear
from trunkline.lab.engine import Lab, Target
from trunkline.lab.measure import fill_timing
from trunkline.lab.results import CallResult
from trunkline.lab.script import CallExpectations, CallScript, Expect, Listen, Press, Say, Silence
from trunkline.media.audio import FRAME_SAMPLES
from trunkline.media.wav import write_wav
from trunkline.rtp.g711 import ulaw_decode, ulaw_encode

from ..net.helpers import running_server
from .espeak_clips import needs_espeak, speech

pytestmark = needs_espeak

SORRY = "Sorry, I didn't hear anything."
BALANCE = "Your balance is 42.50 dollars."


def line(text: str) -> bytes:
    """``text`` as the lab receives it: 8 kHz, through u-law and back."""
    return ulaw_decode(ulaw_encode(speech(text).tobytes()))


def test_a_spoken_phrase_is_found_and_absent_ones_are_not() -> None:
    found = kws_worker.spot(line(SORRY), ("didn't hear anything", "transfer you", "goodbye"))
    assert found == {"didn't hear anything": True, "transfer you": False, "goodbye": False}


def test_numbers_are_spotted_as_spoken_words() -> None:
    found = kws_worker.spot(line(BALANCE), ("your balance is", "42.50 dollars", "call again later"))
    assert found == {"your balance is": True, "42.50 dollars": True, "call again later": False}


def test_silence_and_unknown_words() -> None:
    assert kws_worker.spot(bytes(16000), ("goodbye",)) == {"goodbye": False}
    assert kws_worker.spot(line(SORRY), ("zqxjv anything",)) == {"zqxjv anything": None}
    assert kws_worker.phrase_words("Didn't HEAR, anything!") == ["didn't", "hear", "anything"]
    assert kws_worker.phrase_words("42") == ["forty", "two"]
    assert kws_worker.phrase_words("") is None


def test_judge() -> None:
    found: dict[str, bool | None] = {"a": True, "b": False, "c": None}
    assert kws.judge(Expect(("a",)), found) == (True, "", "a")
    ok, detail, heard = kws.judge(Expect(("a", "b")), found)
    assert (ok, heard) == (False, "a") and "did not hear 'b'" in detail
    ok, detail, _ = kws.judge(Expect(("a", "c")), found)
    assert ok is None and "'c'" in detail and detail.startswith("not checked")
    ok, detail, _ = kws.judge(Expect(("a",), r"\d+"), found)
    assert ok is None and kws.NOT_REGEX in detail


def frames(pcm: bytes) -> list[bytes]:
    """u-law frames of ``pcm`` (the last one padded with silence)."""
    encoded = ulaw_encode(pcm)
    encoded += b"\xff" * (-len(encoded) % FRAME_SAMPLES)
    return [encoded[i : i + FRAME_SAMPLES] for i in range(0, len(encoded), FRAME_SAMPLES)]


def test_the_tap_keeps_speech_and_cuts_it_by_time() -> None:
    base = Ear(ULAW_LOUD)
    base.hear(0.0, b"\xff" * FRAME_SAMPLES)  # heard before the tap took over
    tap = kws.TapEar.replacing(base)
    assert tap.frames == 1 and not tap.is_alaw
    t = 0.02
    for _ in range(100):  # 2 s of line silence: not kept
        tap.hear(t, b"\xff" * FRAME_SAMPLES)
        t += 0.02
    said = frames(line(SORRY))
    start = t
    for frame in said:
        tap.hear(t, frame)
        t += 0.02
    for _ in range(100):
        tap.hear(t, b"\xff" * FRAME_SAMPLES)
        t += 0.02
    assert len(tap.segments) == 1 and tap.segments[0][0] >= start
    kept = tap.pcm_between(0.0, t)
    # The speech and its hangover, not the 4 s of silence around it.
    assert len(said) * 320 * 0.7 <= len(kept) <= (len(said) + 25) * 320
    assert tap.pcm_between(0.0, start) == b""
    assert kws_worker.spot(kept, ("didn't hear anything",)) == {"didn't hear anything": True}


class StubSpotter(kws.Spotter):
    """Answers from a table, or fails: the verdict logic without decoding."""

    def __init__(self, table: dict[str, bool | None] | None) -> None:
        super().__init__(1)
        self.table = table
        self.asked: list[tuple[int, tuple[str, ...]]] = []

    async def spot(self, pcm: bytes, phrases: tuple[str, ...]) -> dict[str, bool | None]:
        self.asked.append((len(pcm), phrases))
        if self.table is None:
            raise kws.SpotterError("BrokenProcessPool: a worker died")
        return {p: self.table.get(p, False) for p in phrases}


def one_call(script: CallScript) -> tuple[CallResult, object, kws.TapEar]:
    tap = kws.TapEar(ULAW_LOUD, 0.35)
    for i, frame in enumerate(frames(line(SORRY))):
        tap.hear(10.5 + i * 0.02, frame)
    trace = CallTrace(
        answered_at=10.0,
        ended_at=20.0,
        spoken=[Spoken(0, "dtmf", "1", 13.0, 13.1)],
        step_times=[10.0, 13.1, 13.1],
    )
    result = CallResult(0, "t", "sip:x", "sip", 1)
    return result, fill_timing(result, trace, tap, script), tap


async def test_turns_are_checked_by_keywords_and_marked_so() -> None:
    script = CallScript(
        "t",
        1,
        steps=(
            Press("1", expect=Expect(("didn't hear anything",))),
            Silence(5.0, expect=Expect(matches=r"\d")),
            Listen(1.0, expect=Expect(("goodbye",))),
        ),
    )
    result, timeline, tap = one_call(script)
    spotter = StubSpotter({"didn't hear anything": True})
    await kws.check_turns(result, script, timeline, tap, spotter)  # type: ignore[arg-type]
    dtmf, silence, listen = result.turns
    assert (dtmf.expect_ok, dtmf.checked_by, dtmf.heard) == (True, "kws", "didn't hear anything")
    assert silence.expect_ok is None and kws.NOT_REGEX in silence.expect_detail
    assert listen.expect_ok is False and listen.checked_by == "kws"
    # Only the phrases were decoded; the regex-only turn cost nothing.
    assert [phrases for _, phrases in spotter.asked] == [("didn't hear anything",), ("goodbye",)]


async def test_a_failing_spotter_leaves_turns_not_checked() -> None:
    script = CallScript("t", 1, steps=(Press("1", expect=Expect(("anything",))),))
    result, timeline, tap = one_call(script)
    await kws.check_turns(result, script, timeline, tap, StubSpotter(None))  # type: ignore[arg-type]
    [turn] = result.turns
    assert turn.expect_ok is None and turn.checked_by == ""
    assert turn.expect_detail.startswith("not checked: keyword spotting failed")


async def test_the_spotter_decodes_in_its_pool() -> None:
    spotter = kws.Spotter(workers=1)
    try:
        found = await spotter.spot(line(SORRY), ("didn't hear anything", "goodbye"))
    finally:
        spotter.close()
    assert found == {"didn't hear anything": True, "goodbye": False}


def test_needs_spotting() -> None:
    assert kws.needs_spotting(CallScript("t", 1, steps=(Say("x", expect=Expect(("a",))),)))
    assert not kws.needs_spotting(CallScript("t", 1, steps=(Say("x", expect=Expect(matches="a")),)))
    assert not kws.needs_spotting(CallScript("t", 1, steps=(Say("x"),)))


async def test_a_call_to_an_agent_without_transcript_is_checked_by_keywords(
    tmp_path: Path,
) -> None:
    # The agent plays one prompt and hangs up; the lab has no transcript URL.
    wav = tmp_path / "prompt.wav"
    pcm = np.concatenate([np.zeros(4000, np.int16), speech(SORRY)]).tobytes()
    write_wav(wav, pcm)

    def listening(expect: Expect) -> CallScript:
        return CallScript(
            "kws",
            1,
            steps=(Listen(6.0, expect=expect),),
            expect=CallExpectations(hangup_by="agent"),
            max_duration_s=15.0,
        )

    heard, absent = listening(Expect(("didn't hear anything",))), listening(Expect(("goodbye",)))
    async with running_server(playback_app(wav), rtp=(45000, 45099)) as server:
        host, port = server.sip_address
        async with Lab(Target.parse(f"sip:agent@{host}:{port}"), rtp_ports=(45100, 45199)) as lab:
            results = await asyncio.gather(lab.call(heard, 0), lab.call(absent, 1))
    ok, failed = results
    assert ok.failure is None and ok.task_success, (ok.failure, ok.failure_detail, ok.turns)
    assert ok.turns[0].checked_by == "kws" and ok.turns[0].expect_ok is True
    assert failed.failure == "expectation" and failed.turns[0].checked_by == "kws"
    assert "did not hear 'goodbye'" in failed.failure_detail


@pytest.mark.parametrize("transcript_url", ["http://127.0.0.1:9/calls/{call_id}"])
def test_no_tap_when_a_transcript_is_expected(transcript_url: str) -> None:
    lab = Lab(Target.parse("sip:127.0.0.1:5060"), transcript_url=transcript_url)
    script = CallScript("t", 1, steps=(Say("x", expect=Expect(("a",))),))

    class Leg:
        ear = Ear()

    leg = Leg()
    assert lab._tap(leg, script) is None and type(leg.ear) is Ear  # type: ignore[arg-type]
    lab.transcript_url = None
    assert isinstance(lab._tap(leg, script), kws.TapEar)  # type: ignore[arg-type]
    assert isinstance(leg.ear, kws.TapEar)

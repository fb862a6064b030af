"""The agent over real SIP and RTP: ``Server`` with the agent app on Acme, our UAC calling it.

The caller speaks espeak-ng renderings of "order status" and "one two three four five"
(8 kHz, through G.711 and the jitter buffer), so the VAD and the endpointer work on
real speech at real time. The first test uses the scripted recognizer and a fast fake
synthesizer and proves the wiring (legs, pacer, pipeline, brain, tools, records); the
second runs the embedded providers (pocketsphinx in a worker process, espeak-ng) and
talks over the agent's prompts. Waits are for conditions under generous deadlines;
nothing asserts a time.
"""

from __future__ import annotations

import functools
import subprocess

import pytest

from trunkline.agent import AgentSpec, ToolRunner
from trunkline.agent.demo_crm import CrmServer
from trunkline.apps.agent import agent_app
from trunkline.media.audio import SILENCE_FRAME
from trunkline.media.tones import rms_dbfs
from trunkline.media.wav import decode_wav
from trunkline.providers.embedded_asr import PocketsphinxASR
from trunkline.providers.embedded_tts import EspeakTTS
from trunkline.runtime.stores import MemorySessionStore

from ..net.helpers import dial, eventually, running_server, sip_caller
from .fakes import FakeTTS, ScriptedASR
from .harness import Records, make_context

pytestmark = pytest.mark.slow

ORDER_PROMPT = "Please say or type your five digit order number."


@functools.cache
def espeak(text: str) -> bytes:
    """The caller's voice: espeak-ng's American voice, which pocketsphinx's en-us model
    hears best (with the default voice "five" comes out as "oh", "order" as "bye")."""
    wav = subprocess.run(
        ["espeak-ng", "-v", "en-us", "--stdout", text], capture_output=True, check=True
    ).stdout
    return decode_wav(wav)


def audible(frames: list[bytes]) -> int:
    return sum(1 for f in frames if rms_dbfs(f) > -40)


async def test_order_status_over_sip(
    acme_spec: AgentSpec, crm: CrmServer, tools: ToolRunner
) -> None:
    asr = ScriptedASR("order status", "one two three four five")
    records = Records()
    sessions = MemorySessionStore()
    app = agent_app(
        acme_spec,
        asr=asr,
        tts=FakeTTS(frames_per_word=1),  # 20 ms a word: the prompts play quickly
        context_factory=make_context(crm, tools),
        sessions=sessions,
        records=records,
    )
    async with running_server(app) as server, sip_caller() as caller:
        leg, rec = await dial(caller, server)
        greeting = 17 + 5 + 1  # words of the greeting and menu, minus a slack for the edges
        await eventually(lambda: audible(rec.frames) >= greeting, "the greeting")
        conv = next(iter(app.live.values()))
        await eventually(lambda: conv.waiting_for_caller, "the greeting to end")

        leg.send_audio(espeak("order status") + SILENCE_FRAME * 10)
        await eventually(
            lambda: conv.turns >= 2 and conv.waiting_for_caller, "the order number prompt"
        )
        assert conv.brain.listen_spec().dtmf is not None  # now in order_status
        heard_before = audible(rec.frames)

        leg.send_audio(espeak("one two three four five") + SILENCE_FRAME * 10)
        await eventually(lambda: conv.turns >= 3 and conv.waiting_for_caller, "the status")
        assert audible(rec.frames) > heard_before  # the reply reached the caller

        await leg.hangup()
        await eventually(lambda: bool(records.records), "the call record")
    record = records.records[0]
    assert record.outcome == "caller_hangup"
    assert any("Order 1 2 3 4 5 is shipped." in t["text"] for t in record.transcript)
    assert [t["text"] for t in record.transcript if t["role"] == "caller"] == [
        "order status",
        "one two three four five",
    ]
    assert len(asr.streams) == 2  # the VAD found exactly two utterances in the audio
    for turn in record.turns[1:]:
        assert turn.end_of_speech is not None and turn.first_outbound_packet is not None


async def test_embedded_providers_over_sip_with_barge_in(
    acme_spec: AgentSpec, crm: CrmServer, tools: ToolRunner
) -> None:
    """pocketsphinx and espeak-ng for real; the caller talks over the prompts, as people do."""
    records = Records()
    async with PocketsphinxASR(workers=1) as asr, EspeakTTS() as tts:
        app = agent_app(
            acme_spec,
            asr=asr,
            tts=tts,
            context_factory=make_context(crm, tools),
            sessions=MemorySessionStore(),
            records=records,
        )
        async with running_server(app) as server, sip_caller() as caller:
            leg, rec = await dial(caller, server)
            await eventually(lambda: audible(rec.frames) >= 25, "half a second of greeting")
            conv = next(iter(app.live.values()))
            leg.send_audio(espeak("order status") + SILENCE_FRAME * 10)
            await eventually(lambda: conv.caller.barge_ins != [], "the barge-in")
            # Turns: 0 the greeting, 1 the barge-in, 2 "order status": its reply plays.
            await eventually(lambda: conv.turns >= 3 and conv.speaker.speaking, "the prompt")
            heard = len(rec.frames)
            await eventually(lambda: audible(rec.frames[heard:]) >= 25, "the prompt to play")
            leg.send_audio(espeak("one two three four five") + SILENCE_FRAME * 10)
            await eventually(lambda: len(conv.caller.barge_ins) == 2, "the second barge-in")
            heard = len(rec.frames)
            await eventually(lambda: conv.turns >= 4, "the order status turn")
            await eventually(lambda: audible(rec.frames[heard:]) > 100, "two seconds of reply")
            await leg.hangup()
            await eventually(lambda: bool(records.records), "the call record")
    record = records.records[0]
    played = [e["played_text"] for e in record.extra["events"] if e["kind"] == "interrupted"]
    assert played[0] and "Thank you for calling Acme.".startswith(played[0])  # cut in the greeting
    assert played[1] and ORDER_PROMPT.startswith(played[1])
    callers = [t["text"] for t in record.transcript if t["role"] == "caller"]
    assert callers == ["order status", "one two three four five"]  # heard by pocketsphinx
    assert any("Order 1 2 3 4 5 is shipped." in t["text"] for t in record.transcript)
    assert record.turns[-1].first_outbound_packet is not None

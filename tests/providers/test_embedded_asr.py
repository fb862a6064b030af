"""PocketsphinxASR: espeak-ng phrases through G.711, grammars, the general model, crashes.

The caller's audio is espeak-ng speech cut to 8 kHz and sent through G.711 u-law and
back, as it would arrive from a phone. One pool (two workers) serves the module; tests
that break workers use their own.
"""

from __future__ import annotations

import asyncio
import functools
import os
import shutil
import signal
import subprocess
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from trunkline.media.audio import FRAME_BYTES
from trunkline.media.wav import decode_wav
from trunkline.providers import APIConnectionError, ASREvent, Final, Partial, ProviderError
from trunkline.providers.asr_worker import GRAMMAR_WHOLE
from trunkline.providers.embedded_asr import PocketsphinxASR
from trunkline.rtp.g711 import ulaw_decode, ulaw_encode

pytestmark = [
    pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="needs espeak-ng"),
    pytest.mark.asyncio(loop_scope="module"),
]

PHRASES = ["order status", "my order number is one two three four five", "talk to a person",
           "yes", "no"]  # fmt: skip
GRAMMAR = "#JSGF V1.0;\ngrammar menu;\npublic <answer> = " + " | ".join(PHRASES) + ";\n"
#: Deadline for anything the pool must do; generous for a loaded 2-core CI machine.
WAIT_S = 20.0


@functools.cache
def phone_audio(text: str) -> bytes:
    """``text`` spoken by espeak-ng, as 8 kHz PCM after a G.711 u-law round trip."""
    wav = subprocess.run(
        ["espeak-ng", "--stdout", "-v", "en-us", "-s", "160", "--", text],
        capture_output=True,
        check=True,
    ).stdout
    return ulaw_decode(ulaw_encode(decode_wav(wav)))


def push_utterance(stream: object, pcm: bytes) -> None:
    """Push 100 ms of silence, the speech, 300 ms of silence, in 20 ms frames."""
    audio = bytes(1600) + pcm + bytes(4800)
    audio += bytes(-len(audio) % FRAME_BYTES)
    for i in range(0, len(audio), FRAME_BYTES):
        stream.push(audio[i : i + FRAME_BYTES])  # type: ignore[attr-defined]


async def events_of(stream: AsyncIterator[ASREvent]) -> list[ASREvent]:
    async with asyncio.timeout(WAIT_S):
        return [event async for event in stream]


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def asr() -> AsyncIterator[PocketsphinxASR]:
    async with PocketsphinxASR(workers=2) as pool:
        yield pool


async def recognise(asr: PocketsphinxASR, text: str, grammar: str | None) -> list[ASREvent]:
    stream = asr.stream(grammar=grammar, call_id=f"call-{text}")
    push_utterance(stream, phone_audio(text))
    stream.end_input()
    return await events_of(stream)


@pytest.mark.parametrize("phrase", PHRASES)
async def test_grammar_phrases_are_recognised_exactly(asr: PocketsphinxASR, phrase: str) -> None:
    events = await recognise(asr, phrase, GRAMMAR)
    final = events[-1]
    assert isinstance(final, Final)
    assert final.text == phrase
    assert final.confidence == GRAMMAR_WHOLE
    assert [w.word for w in final.words] == phrase.split()
    assert all(0 <= w.start < w.end for w in final.words)
    assert all(isinstance(e, Partial) for e in events[:-1])


async def test_partials_arrive_before_the_final(asr: PocketsphinxASR) -> None:
    events = await recognise(asr, PHRASES[1], GRAMMAR)
    partials = [e for e in events if isinstance(e, Partial)]
    assert len(partials) >= 2
    assert isinstance(events[-1], Final)
    assert events.index(partials[-1]) < len(events) - 1
    # Hypotheses change as audio comes; the later ones grow along the phrase.
    assert any(len(p.text.split()) >= 2 and PHRASES[1].startswith(p.text) for p in partials)


async def test_general_model_gets_at_least_one_word(asr: PocketsphinxASR) -> None:
    sentence = "i would like to check my order"
    events = await recognise(asr, sentence, None)
    final = events[-1]
    assert isinstance(final, Final)
    print(f"general model heard {final.text!r} (confidence {final.confidence:.3f})")
    assert set(final.text.split()) & set(sentence.split())
    assert 0.0 <= final.confidence <= 1.0


async def test_utterances_in_one_stream_and_an_empty_flush(asr: PocketsphinxASR) -> None:
    stream = asr.stream(grammar=GRAMMAR, call_id="multi")
    push_utterance(stream, phone_audio("yes"))
    stream.flush()
    stream.flush()  # nothing since the last flush: an empty Final
    push_utterance(stream, phone_audio("no"))
    stream.end_input()
    finals = [e for e in await events_of(stream) if isinstance(e, Final)]
    assert [f.text for f in finals] == ["yes", "", "no"]
    assert finals[1].confidence == 0.0


async def test_a_grammar_that_does_not_compile_fails_the_stream(asr: PocketsphinxASR) -> None:
    stream = asr.stream(grammar="#JSGF V1.0;\ngrammar broken;\npublic <a> = ( yes ;\n")
    push_utterance(stream, phone_audio("yes"))
    stream.end_input()
    with pytest.raises(ProviderError) as info:
        await events_of(stream)
    assert not info.value.retryable
    assert "grammar" in str(info.value)


async def test_aclose_mid_utterance_then_the_pool_goes_on(asr: PocketsphinxASR) -> None:
    stream = asr.stream(grammar=GRAMMAR, call_id="hangup")
    push_utterance(stream, phone_audio("talk to a person"))
    await stream.aclose()
    assert await events_of(stream) == []  # results still on their way are dropped
    events = await recognise(asr, "yes", GRAMMAR)
    assert isinstance(events[-1], Final) and events[-1].text == "yes"


async def test_decode_cost_is_reported(asr: PocketsphinxASR) -> None:
    stats = asr.stats
    assert stats.utterances > 0 and stats.audio_seconds > 0 and stats.cpu_seconds > 0
    print(
        f"decode CPU: {1000 * stats.cpu_seconds / stats.audio_seconds:.0f} ms per second "
        f"of audio over {stats.utterances} utterances (grammar and general model together)"
    )


# -- crashes and overload: pools of their own ---------------------------------------------


async def test_worker_crash_fails_its_streams_and_the_pool_recovers() -> None:
    async with PocketsphinxASR(workers=1) as pool:
        stream = pool.stream(grammar=GRAMMAR, call_id="doomed")
        push_utterance(stream, phone_audio("order status"))
        (pid,) = pool.worker_pids
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        with pytest.raises(APIConnectionError) as info:
            await events_of(stream)  # promptly: WAIT_S is a deadline, not a measurement
        assert info.value.retryable
        async with asyncio.timeout(WAIT_S):
            while pool.worker_pids[0] in (None, pid):
                await asyncio.sleep(0.05)
        assert pool.stats.worker_restarts == 1
        events = await recognise(pool, "yes", GRAMMAR)
        assert isinstance(events[-1], Final) and events[-1].text == "yes"


async def test_a_stalled_worker_overloads_streams_instead_of_growing_memory() -> None:
    async with PocketsphinxASR(workers=1, max_backlog_ms=2000) as pool:
        stream = pool.stream(grammar=GRAMMAR, call_id="flood")
        (pid,) = pool.worker_pids
        assert pid is not None
        os.kill(pid, signal.SIGSTOP)  # the worker stops reading; the socket fills up
        try:
            frame = bytes(FRAME_BYTES)
            async with asyncio.timeout(WAIT_S):
                while not stream.failed:
                    for _ in range(50):
                        stream.push(frame)
                    await asyncio.sleep(0.01)  # let the writer thread fill the socket
        finally:
            os.kill(pid, signal.SIGCONT)
        with pytest.raises(ProviderError) as info:
            await events_of(stream)
        assert info.value.retryable and "overloaded" in str(info.value)
        assert pool.stats.overloaded_streams == 1
        # A flush answers after everything queued before it: the worker has caught up.
        probe = pool.stream(grammar=GRAMMAR)
        probe.flush()
        probe.end_input()
        assert await events_of(probe) == [Final("", 0.0)]
        assert pool.backlog_ms == [0]
        events = await recognise(pool, "no", GRAMMAR)  # the worker catches up and goes on
        assert isinstance(events[-1], Final) and events[-1].text == "no"


async def test_closing_the_pool_ends_open_streams() -> None:
    pool = PocketsphinxASR(workers=1)
    await pool.start()
    stream = pool.stream(grammar=GRAMMAR)
    push_utterance(stream, phone_audio("yes"))
    await pool.aclose()
    with pytest.raises(ProviderError):
        await events_of(stream)
    assert pool.worker_pids == [None]

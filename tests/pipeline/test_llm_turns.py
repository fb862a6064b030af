"""The LLM agent on a fake leg in virtual time: barge-in mid-stream, turn timings, silence.

Every test runs on :class:`~tests.pipeline.virtual_time.VirtualTimeLoop`: the fake leg
ticks every 20 ms of the loop's clock and the fake providers' scripted latencies are
sleeps on the same clock, so the call's timeline (the leg's tick of each frame, the
record's per-turn timings) is exact and does not depend on the machine's speed.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import pathlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

import pytest

from tests.api.exposition import parse
from trunkline.agent import AgentSpec, BrainContext, load_agent_spec
from trunkline.agent.llm_brain import CUT_OFF_TEXT, LLM_DOWN_TEXT
from trunkline.agent.llm_history import INTERRUPTED_NOTE
from trunkline.agent.llm_wait import ANSWER_TIMEOUT_S, FILLER_TEXT, HOLD_TEXT, tool_limit
from trunkline.agent.spec import ToolSpec
from trunkline.agent.tools import ToolRequest, ToolResult
from trunkline.aio import cancel_and_wait
from trunkline.api.metrics import RuntimeMetrics
from trunkline.apps.agent import AgentApp, agent_app, call_fields
from trunkline.pipeline.conversation import Conversation
from trunkline.providers.errors import ProviderError
from trunkline.providers.fakes import FailurePlan, FakeASR, FakeLLM, FakeReply, FakeTTS
from trunkline.providers.llm import LLMChunk, TextDelta, ToolCallChunk
from trunkline.runtime.stores import CallRecord, MemorySessionStore

from .fakes import FakeLeg, talk
from .harness import Records
from .virtual_time import run_virtual

LLM_SPEC = pathlib.Path(__file__).resolve().parents[2] / "examples" / "acme" / "agent-llm.yaml"
TODAY = dt.date(2025, 1, 6)
#: "No call goes silent for more than 2 s", in 20 ms ticks.
MAX_SILENCE_TICKS = 100
LONG_REPLY = " ".join(f"Here is the number {n} thing you should know about it." for n in range(12))


@pytest.fixture(scope="module")
def spec() -> AgentSpec:
    return load_agent_spec(LLM_SPEC)


class TrackedLLM(FakeLLM):
    """A FakeLLM that counts open streams and the chunks it handed out."""

    def __init__(self, replies: Sequence[FakeReply], **kwargs: Any) -> None:
        super().__init__(replies, **kwargs)
        self.open = 0
        self.chunks = 0

    async def _chat_impl(
        self, messages: list[dict[str, Any]], *, tools: list[dict[str, Any]] | None
    ) -> AsyncIterator[LLMChunk]:
        self.open += 1
        try:
            async for chunk in super()._chat_impl(messages, tools=tools):
                self.chunks += 1
                yield chunk
        finally:
            self.open -= 1


class HangingTools:
    """A ToolCaller that never answers (a runner without timeouts, a wedged socket)."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    async def call(self, tool: ToolSpec, request: ToolRequest) -> ToolResult:
        self.calls.append(tool.name)
        await asyncio.Event().wait()
        raise AssertionError("unreachable")


@dataclass
class VCall:
    app: AgentApp
    leg: FakeLeg
    task: asyncio.Task[None]
    records: Records
    conv: Conversation

    async def listening(self, turns: int, what: str) -> int:
        return await self.leg.until_paced(
            lambda: self.conv.turns >= turns and self.conv.waiting_for_caller, what
        )

    async def speak(self, ms: int) -> tuple[int, int]:
        """The caller talks for ``ms``; returns the ticks of the first and last voiced frame."""
        frames = talk(ms)
        first = self.leg.speak(frames)
        return first, first + len(frames) - 1

    async def end(self) -> CallRecord:
        self.leg.caller_hangs_up()
        await self.leg.until_paced(self.task.done, "the call to end")
        await self.task
        return self.records.records[0]


async def start(
    spec: AgentSpec,
    llm: FakeLLM,
    heard: list[str],
    *,
    tts: FakeTTS | None = None,
    asr_latency: float = 0.0,
    tools: Any = None,
) -> VCall:
    loop = asyncio.get_running_loop()
    asr = FakeASR(lambda i, grammar: [(0, heard.pop(0) if heard else "")],
                  final_latency=asr_latency)  # fmt: skip
    records = Records()

    def context(info: Any) -> BrainContext:
        return BrainContext(
            tools=tools, variables={"crm": "http://127.0.0.1:9"}, call=call_fields(info),
            today=lambda: TODAY, clock=loop.time,
        )  # fmt: skip

    app = agent_app(spec, asr=asr, tts=tts or FakeTTS(), context_factory=context,
                    sessions=MemorySessionStore(), records=records, llm=llm,
                    clock=loop.time)  # fmt: skip
    leg = FakeLeg("call-v")
    task = asyncio.create_task(app(leg))
    await leg.until_paced(lambda: leg.call_id in app.live, "the app to start")
    call = VCall(app, leg, task, records, app.live[leg.call_id])
    await call.listening(1, "the greeting")
    return call


def spoken(tts: FakeTTS) -> str:
    """Every sentence the TTS was asked for, in order, as one text."""
    return " ".join(text for text, _ in tts.requests)


def silences(leg: FakeLeg, since: int, until: int | None = None) -> list[int]:
    """Ticks of silence from ``since`` to the first audible frame, then between frames."""
    heard = [t for t in leg.audible_ticks(since) if until is None or t <= until]
    assert heard, "nothing was heard"
    return [heard[0] - since] + [b - a - 1 for a, b in zip(heard, heard[1:], strict=False)]


# -- barge-in while the model streams ------------------------------------------------------


def test_barge_in_mid_stream_stops_the_audio_and_cancels_the_model(spec: AgentSpec) -> None:
    async def main() -> None:
        llm = TrackedLLM([LONG_REPLY, "Sure, I will stop."], time_to_first_token=0.2,
                         token_delay=0.05)  # fmt: skip
        tts = FakeTTS(first_byte_latency=0.05)
        call = await start(spec, llm, ["tell me everything", "stop please"], tts=tts)
        leg = call.leg
        _, last = await call.speak(600)
        await leg.until_paced(lambda: len(leg.audible_ticks(last)) >= 60, "1.2 s of the reply")
        assert llm.open == 1, "the model should still be streaming"
        first, _ = await call.speak(600)
        confirmed = first + 2  # webrtcvad hears the tone from its first frame; 3 confirm
        await leg.until_paced(lambda: bool(leg.clears), "the barge-in")
        cut = leg.clears[0]
        assert 0 <= cut - confirmed <= 2
        # The request was closed in that frame's turn of the loop, long before its end.
        await leg.run_paced(1)
        assert llm.open == 0
        assert llm.chunks < len(LONG_REPLY.split())
        spoken_before = list(tts.requests)
        await call.listening(3, "the answer to 'stop please'")
        # Nothing of the cut reply was sent after the clear: the next audio is the answer
        # to the barge-in utterance, after its endpoint silence (800 ms).
        after = leg.audible_ticks(cut)
        assert after and after[0] > first + 30 + 40
        new_texts = [text for text, _ in tts.requests[len(spoken_before) :]]
        assert new_texts == ["Sure, I will stop."]
        # The model's next request holds only what was heard, marked as cut off.
        messages = llm.requests[-1][0]
        assert messages[-1] == {"role": "user", "content": "stop please"}
        cut_reply = messages[-2]
        assert cut_reply["role"] == "assistant"
        assert cut_reply["content"].endswith(INTERRUPTED_NOTE)
        heard = cut_reply["content"].removesuffix(INTERRUPTED_NOTE)
        assert heard and LONG_REPLY.startswith(heard) and len(heard) < len(LONG_REPLY) // 2
        played = call.conv.caller.barge_ins[0][1]
        assert played == heard
        record = await call.end()
        assert record.extra["counters"]["turns_cut"] == 1
        assert [e["played_text"] for e in record.extra["events"]
                if e["kind"] == "interrupted"] == [heard]  # fmt: skip

    run_virtual(main())


# -- per-turn timings ----------------------------------------------------------------------


def test_turn_timings_are_the_real_stages(spec: AgentSpec) -> None:
    async def main() -> CallRecord:
        llm = FakeLLM(["Your order has shipped."], time_to_first_token=0.301, token_delay=0.01)
        tts = FakeTTS(first_byte_latency=0.157)
        call = await start(spec, llm, ["where is my order"], tts=tts, asr_latency=0.123)
        await call.speak(600)
        await call.listening(2, "the answer")
        return await call.end()

    record = run_virtual(main())
    turn = record.turns[1]
    assert None not in (turn.end_of_speech, turn.asr_final, turn.first_brain_output,
                        turn.first_tts_audio, turn.first_outbound_packet)  # fmt: skip
    assert turn.end_of_speech is not None and turn.asr_final is not None
    assert turn.first_brain_output is not None and turn.first_tts_audio is not None
    assert turn.first_outbound_packet is not None
    # Endpoint silence (800 ms, within a frame or two) plus the recognizer's 123 ms.
    assert 0.8 + 0.123 <= turn.asr_final - turn.end_of_speech <= 0.8 + 0.123 + 0.041
    # The model's first token after 301 ms, the sentence three tokens of 10 ms later.
    assert turn.first_brain_output - turn.asr_final == pytest.approx(0.331, abs=0.002)
    # The TTS's first audio 157 ms after the sentence: not the moment the leg sent it.
    assert turn.first_tts_audio - turn.first_brain_output == pytest.approx(0.157, abs=0.002)
    send = turn.first_outbound_packet - turn.first_tts_audio
    assert 0 < send <= 0.021  # the pacer's next tick
    metrics = RuntimeMetrics()
    metrics.observe_record(record)
    family = parse(metrics.render())["trunkline_turn_latency_seconds"]
    # Both turns (the greeting's from its first brain output) in the tts and send stages.
    greeting = record.turns[0]
    assert greeting.first_tts_audio is not None and greeting.first_outbound_packet is not None
    greeting_send = greeting.first_outbound_packet - greeting.first_tts_audio
    assert 0 < greeting_send <= 0.021
    assert family.value("_count", stage="tts") == 2
    assert family.value("_sum", stage="tts") == pytest.approx(2 * 0.157, abs=0.004)
    assert family.value("_sum", stage="send") == pytest.approx(send + greeting_send, abs=1e-4)
    assert family.value("_count", stage="brain") == 1  # the greeting's has no start
    assert family.value("_sum", stage="brain") == pytest.approx(0.331, abs=0.002)


# -- no call goes silent -------------------------------------------------------------------


def test_a_stream_cut_mid_sentence_speaks_what_was_whole_then_apologises(
    spec: AgentSpec,
) -> None:
    async def main() -> None:
        reply: list[LLMChunk] = [TextDelta("Your order has shipped. It should arr"),
                                 TextDelta("ive on Friday.")]  # fmt: skip
        cut = ProviderError("connection reset", provider="fake-llm", retryable=True)
        llm = FakeLLM([reply], time_to_first_token=0.3, failure=FailurePlan(cut, at="mid"))
        tts = FakeTTS(first_byte_latency=0.1)
        call = await start(spec, llm, ["where is my order"], tts=tts)
        _, last = await call.speak(600)
        await call.listening(2, "the answer")
        assert spoken(tts).endswith(f"Your order has shipped. {CUT_OFF_TEXT}")
        assert max(silences(call.leg, last)) <= MAX_SILENCE_TICKS
        await call.end()

    run_virtual(main())


def test_a_model_that_never_answers_gets_a_filler_then_the_fallback(spec: AgentSpec) -> None:
    async def main() -> None:
        llm = TrackedLLM(["never heard"], time_to_first_token=600.0)
        tts = FakeTTS(first_byte_latency=0.1)
        call = await start(spec, llm, ["where is my order"], tts=tts)
        _, last = await call.speak(600)
        await call.listening(2, "the fallback")
        assert spoken(tts).endswith(f"{FILLER_TEXT} {LLM_DOWN_TEXT}")
        gaps = silences(call.leg, last)
        assert max(gaps) <= MAX_SILENCE_TICKS
        assert llm.open == 0  # the request was given up, not left hanging
        record = await call.end()
        turn = record.turns[1]
        assert turn.asr_final is not None and turn.first_outbound_packet is not None
        assert turn.end_of_speech is not None
        assert turn.first_outbound_packet - turn.end_of_speech <= 2.0
        down = [e["at"] for e in record.extra["events"] if e.get("text") == LLM_DOWN_TEXT]
        assert down and down[0] == pytest.approx(turn.asr_final + ANSWER_TIMEOUT_S, abs=0.05)

    run_virtual(main())


def test_a_tool_that_hangs_gets_a_hold_message_then_its_fallback(spec: AgentSpec) -> None:
    async def main() -> None:
        lookup = ToolCallChunk("call_1", "order_status", '{"order_number": "12345"}')
        sorry = "Sorry, I can't reach our order system right now."
        llm = FakeLLM([[lookup], sorry], time_to_first_token=0.2)
        tts = FakeTTS(first_byte_latency=0.1)
        tools = HangingTools()
        call = await start(spec, llm, ["where is order one two three four five"], tts=tts,
                           tools=tools)  # fmt: skip
        _, last = await call.speak(800)
        await call.listening(2, "the fallback")
        assert tools.calls == ["order_status"]
        assert spoken(tts).endswith(f"{FILLER_TEXT} {HOLD_TEXT} {sorry}")
        assert max(silences(call.leg, last)) <= MAX_SILENCE_TICKS
        answer = llm.requests[-1][0][-1]
        assert answer["role"] == "tool" and '"ok": false' in answer["content"]
        record = await call.end()
        assert [c["outcome"] for c in record.tool_calls] == ["timeout"]
        limit = tool_limit(spec.tools["order_status"])
        assert record.tool_calls[0]["ms"] == pytest.approx(limit * 1000)

    run_virtual(main())


def test_virtual_time_is_exact() -> None:
    async def main() -> float:
        loop = asyncio.get_running_loop()
        began = loop.time()
        task = asyncio.create_task(asyncio.sleep(3600))
        await asyncio.sleep(1.5)
        await cancel_and_wait(task)
        return loop.time() - began

    assert run_virtual(main()) == 1.5

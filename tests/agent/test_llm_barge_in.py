"""Barge-in while the LLM streams, over the wire: the OpenAI adapter against the local
OpenAI-compatible server, the agent app on a fake leg ticking every 20 ms of real time."""

from __future__ import annotations

import asyncio
import datetime as dt
import pathlib
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.pipeline.fakes import FakeLeg, FakeTTS, ScriptedASR, talk
from tests.pipeline.harness import Records
from trunkline.agent import AgentSpec, BrainContext, load_agent_spec
from trunkline.agent.llm_history import INTERRUPTED_NOTE
from trunkline.apps.agent import agent_app, call_fields
from trunkline.providers import RetryPolicy
from trunkline.providers.openai_llm import OpenAILLM
from trunkline.providers.testing import ChatReply, OpenAIServer
from trunkline.runtime.stores import MemorySessionStore

LLM_SPEC = pathlib.Path(__file__).resolve().parents[2] / "examples" / "acme" / "agent-llm.yaml"
LONG_REPLY = " ".join(f"Point {n} is a thing you should know about it." for n in range(15))


@pytest.fixture
async def server() -> AsyncIterator[OpenAIServer]:
    # 50 ms a token: the reply takes about 7 s to stream, far longer than the test waits.
    async with OpenAIServer([ChatReply(LONG_REPLY), ChatReply("Okay.")],
                            token_delay=0.05) as srv:  # fmt: skip
        yield srv


async def test_barge_in_mid_stream_closes_the_request_and_keeps_what_was_heard(
    server: OpenAIServer,
) -> None:
    spec: AgentSpec = load_agent_spec(LLM_SPEC)
    asr = ScriptedASR("tell me everything", "okay stop")
    tts = FakeTTS()
    records = Records()

    def context(info: Any) -> BrainContext:
        return BrainContext(variables={"crm": "http://127.0.0.1:9"}, call=call_fields(info),
                            today=lambda: dt.date(2025, 1, 6))  # fmt: skip

    llm = OpenAILLM(
        model="gpt-test", api_key="test-key", base_url=server.base_url,
        retry=RetryPolicy(attempts=1), first_token_timeout=2.0, idle_timeout=2.0,
    )  # fmt: skip
    async with llm:
        app = agent_app(spec, asr=asr, tts=tts, context_factory=context,
                        sessions=MemorySessionStore(), records=records, llm=llm)  # fmt: skip
        leg = FakeLeg("call-bi")
        task = asyncio.create_task(app(leg))
        try:
            await leg.until_paced(lambda: leg.call_id in app.live, "the app", 200)
            conv = app.live[leg.call_id]
            await leg.until_paced(lambda: conv.waiting_for_caller, "the greeting", 500)
            frames = talk(600)
            last = leg.speak(frames) + len(frames) - 1
            await leg.until_paced(lambda: len(leg.audible_ticks(last)) >= 30, "the reply", 500)
            assert server.client_gone == 0
            first = leg.speak(talk(600))
            await leg.until_paced(lambda: bool(leg.clears), "the barge-in", 100)
            assert 0 <= leg.clears[0] - (first + 2) <= 2  # three voiced frames confirm
            await leg.until_paced(lambda: server.client_gone == 1, "the server to see it", 50)
            await leg.until_paced(lambda: len(server.requests) == 2, "the next request", 200)
            messages = server.requests[-1].body["messages"]
            assert messages[-1] == {"role": "user", "content": "okay stop"}
            heard = messages[-2]["content"]
            assert heard.endswith(INTERRUPTED_NOTE)
            assert LONG_REPLY.startswith(heard.removesuffix(INTERRUPTED_NOTE))
            # Not a sentence past the cut was spoken: what the TTS was given after the
            # barge-in is only the answer to "okay stop".
            await leg.until_paced(lambda: "Okay." in tts.texts, "the answer", 200)
            spoken = " ".join(tts.texts[2:-1])  # after the greeting, before "Okay."
            assert spoken and len(spoken) < len(LONG_REPLY) // 2
            leg.caller_hangs_up()
            await leg.until_paced(task.done, "the end", 100)
        finally:
            if not task.done():
                task.cancel()
            await asyncio.wait({task})
    assert records.records[0].extra["counters"]["turns_cut"] == 1

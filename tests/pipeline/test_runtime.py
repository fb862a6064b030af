"""``agent_runtime``: the demo CRM, tools, providers and the SQLite record writer around the app."""

from __future__ import annotations

import asyncio
import pathlib

import pytest

from tests.conftest import ACME
from trunkline.agent import AgentError, AgentSpec, parse_agent_spec
from trunkline.apps.agent import agent_runtime
from trunkline.runtime.stores import SqliteRecordBackend

from .fakes import FakeLeg, FakeTTS, ScriptedASR, talk


async def test_a_call_lands_in_the_sqlite_records(
    acme_spec: AgentSpec, tmp_path: pathlib.Path
) -> None:
    db = tmp_path / "records.sqlite3"
    asr = ScriptedASR("order status", "one two three four five")
    async with agent_runtime(
        acme_spec, asr=asr, tts=FakeTTS(), records_db=db, spool_dir=tmp_path / "spool",
        demo_crm=True,
    ) as app:  # fmt: skip
        leg = FakeLeg("call-rt")
        task = asyncio.create_task(app(leg))
        await leg.until(lambda: "call-rt" in app.live, "the call to start")
        conv = app.live["call-rt"]
        await leg.until(lambda: conv.waiting_for_caller, "the greeting")
        leg.speak(talk(600))
        await leg.until(lambda: conv.turns >= 2 and conv.waiting_for_caller, "the prompt")
        leg.speak(talk(1200))
        await leg.until(lambda: conv.turns >= 3 and conv.waiting_for_caller, "the status")
        leg.caller_hangs_up()
        await task
    backend = SqliteRecordBackend(db)  # the writer drained into it on the way out
    try:
        record = await backend.get("call-rt")
    finally:
        await backend.aclose()
    assert record is not None and record.outcome == "caller_hangup"
    assert any("is shipped" in t["text"] for t in record.transcript)  # the demo CRM answered
    assert [c["outcome"] for c in record.tool_calls] == ["ok"]


async def test_an_llm_spec_without_a_chat_model_is_refused_and_nothing_is_left_running(
    acme_spec: AgentSpec, tmp_path: pathlib.Path
) -> None:
    llm = "brain: llm\nllm:\n  model: m\n  system_prompt: be nice\n"
    spec = parse_agent_spec(ACME.read_text().replace("brain: flow", llm))
    tts = FakeTTS()
    with pytest.raises(AgentError, match="give it a chat model"):
        async with agent_runtime(
            spec, asr=ScriptedASR(), tts=tts, records_db=tmp_path / "r.sqlite3",
            spool_dir=tmp_path / "spool", demo_crm=True,
        ):  # fmt: skip
            pass
    # The writer let go of its spool (a second writer on it would be refused otherwise).
    async with agent_runtime(
        acme_spec, asr=ScriptedASR(), tts=tts, records_db=tmp_path / "r.sqlite3",
        spool_dir=tmp_path / "spool",
    ) as app:  # fmt: skip
        assert app.live == {}

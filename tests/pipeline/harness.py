"""A call under test: the agent app on a fake leg, with scripted ASR/TTS and in-memory stores."""

from __future__ import annotations

import asyncio
import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from trunkline.agent import AgentSpec, BrainContext, ToolRunner
from trunkline.agent.demo_crm import CrmServer
from trunkline.aio import cancel_and_wait
from trunkline.apps.agent import AgentApp, agent_app, call_fields
from trunkline.pipeline.conversation import Conversation
from trunkline.runtime.stores import CallRecord, MemorySessionStore, SessionStore

from .fakes import FakeLeg, FakeTTS, ScriptedASR

TODAY = dt.date(2025, 1, 6)  # a Monday


class Records:
    """A RecordSink that keeps what it is given."""

    def __init__(self) -> None:
        self.records: list[CallRecord] = []

    def submit(self, record: CallRecord) -> None:
        self.records.append(record)


@dataclass
class Call:
    app: AgentApp
    leg: FakeLeg
    asr: ScriptedASR
    tts: FakeTTS
    sessions: SessionStore
    records: Records
    task: asyncio.Task[None]
    conv: Conversation = field(init=False)
    expect_turns: int = 1

    async def started(self) -> Call:
        await self.leg.until(lambda: self.leg.call_id in self.app.live, "the app to start")
        self.conv = self.app.live[self.leg.call_id]
        return self

    def listening(self) -> bool:
        """The agent answered the last utterance, finished speaking and waits for the caller."""
        return self.conv.turns >= self.expect_turns and self.conv.waiting_for_caller

    async def until_listening(self, what: str = "the agent to finish speaking") -> int:
        return await self.leg.until(self.listening, what)

    async def say(self, frames: list[bytes], *heard: Any) -> int:
        """The caller speaks ``frames``; the recognizer will hear ``heard``."""
        self.asr.add(*heard)
        self.expect_turns = self.conv.turns + 1
        return self.leg.speak(frames)

    def said(self) -> list[str]:
        """Every sentence the TTS was asked to speak."""
        return list(self.tts.texts)

    async def ended(self) -> CallRecord:
        await self.leg.until(self.task.done, "the call to end")
        await self.task
        assert len(self.records.records) == 1
        return self.records.records[0]

    async def crash(self) -> None:
        await cancel_and_wait(self.task)


def make_context(crm: CrmServer, tools: ToolRunner) -> Any:
    def factory(info: Any) -> BrainContext:
        return BrainContext(
            tools=tools, variables={"crm": crm.url}, call=call_fields(info), today=lambda: TODAY
        )

    return factory


async def start_call(
    spec: AgentSpec,
    crm: CrmServer,
    tools: ToolRunner,
    *,
    leg: FakeLeg | None = None,
    asr: ScriptedASR | None = None,
    tts: FakeTTS | None = None,
    sessions: SessionStore | None = None,
    records: Records | None = None,
) -> Call:
    asr = asr or ScriptedASR()
    tts = tts or FakeTTS()
    sessions = sessions if sessions is not None else MemorySessionStore()
    records = records or Records()
    leg = leg or FakeLeg()
    app = agent_app(
        spec,
        asr=asr,
        tts=tts,
        context_factory=make_context(crm, tools),
        sessions=sessions,
        records=records,
    )
    task = asyncio.create_task(app(leg))
    return await Call(app, leg, asr, tts, sessions, records, task).started()

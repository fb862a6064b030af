"""Shared fixtures: the Acme spec, the demo CRM on a free port, a fixed calendar."""

from __future__ import annotations

import datetime as dt
import pathlib
from collections.abc import AsyncIterator, Callable

import pytest

from trunkline.agent import AgentSpec, BrainContext, FlowBrain, ToolRunner, load_agent_spec
from trunkline.agent.demo_crm import CrmServer, start_crm

ACME = pathlib.Path(__file__).resolve().parents[2] / "examples" / "acme" / "agent.yaml"
# A Monday, so "friday" is 2025-01-10 and "tomorrow" 2025-01-07.
TODAY = dt.date(2025, 1, 6)


@pytest.fixture(scope="session")
def acme_spec() -> AgentSpec:
    return load_agent_spec(ACME)


@pytest.fixture
async def crm(tmp_path: pathlib.Path) -> AsyncIterator[CrmServer]:
    server = await start_crm("127.0.0.1", 0, str(tmp_path / "crm.sqlite3"))
    try:
        yield server
    finally:
        await server.close()


@pytest.fixture
async def tools() -> AsyncIterator[ToolRunner]:
    async with ToolRunner(backoff_s=0.01) as runner:
        yield runner


class ManualClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        self.now += 0.001
        return self.now


@pytest.fixture
def make_brain(acme_spec: AgentSpec, crm: CrmServer, tools: ToolRunner) -> Callable[..., FlowBrain]:
    def make(spec: AgentSpec | None = None) -> FlowBrain:
        return FlowBrain(spec or acme_spec, context(crm.url, tools))

    return make


def context(crm_url: str, tools: ToolRunner | None) -> BrainContext:
    return BrainContext(
        tools=tools,
        variables={"crm": crm_url},
        call={"id": "call-1"},
        clock=ManualClock(),
        today=lambda: TODAY,
    )

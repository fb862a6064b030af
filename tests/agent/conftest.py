"""Agent-test fixtures: a fixed calendar, a manual clock, a brain on Acme."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import pytest

from trunkline.agent import AgentSpec, BrainContext, FlowBrain, ToolRunner
from trunkline.agent.demo_crm import CrmServer

# A Monday, so "friday" is 2025-01-10 and "tomorrow" 2025-01-07.
TODAY = dt.date(2025, 1, 6)


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

"""Fixtures shared across test folders: the Acme spec, the demo CRM, a tool runner, a Redis."""

from __future__ import annotations

import pathlib
from collections.abc import AsyncIterator, Iterator

import pytest

from trunkline.agent import AgentSpec, ToolRunner, load_agent_spec
from trunkline.agent.demo_crm import CrmServer, start_crm

from .stores.servers import RedisServer, redis_problem, redis_server

ACME = pathlib.Path(__file__).resolve().parents[1] / "examples" / "acme" / "agent.yaml"


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


@pytest.fixture
def redis() -> Iterator[RedisServer]:
    """A fresh Redis for this test (the stores' and the lab's Redis workers' tests)."""
    problem = redis_problem()
    if problem:
        pytest.skip(problem)
    with redis_server() as server:
        yield server

"""Agents behind a running server: live view, records and transcripts over HTTP, metrics of
a real call, two agents routed by number; records read back from PostgreSQL.

The agents run with scripted recognition and a fast fake synthesizer (the pipeline's own
tests cover the embedded engines); the server, legs, pacer, pipeline, record writer and
SQLite are the real ones. Waits are for conditions under deadlines; nothing asserts a time.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ACME
from tests.net.helpers import HOST, SERVER_RTP, eventually, sip_caller, target
from tests.net.test_http_api import base_of, get_json, scrape
from tests.pipeline.fakes import ScriptedASR, talk
from tests.stores.servers import PostgresServer
from trunkline.agent import AgentSpec, parse_agent_spec
from trunkline.api.metrics import RuntimeMetrics
from trunkline.apps.agent import AgentRuntime, agents_runtime
from trunkline.apps.echo import echo
from trunkline.net.calls import CallFailedError
from trunkline.net.leg import CallHandler
from trunkline.net.ws_client import WsMediaCaller
from trunkline.providers.fakes import FakeTTS
from trunkline.runtime.routing import Route, Router
from trunkline.runtime.server import ServeConfig, Server
from trunkline.runtime.stores.records import CallRecord, TurnTiming
from trunkline.runtime.stores.records_postgres import PostgresRecordBackend

CONFIG = ServeConfig(
    sip_host=HOST, sip_port=0, http_host=HOST, http_port=0,
    rtp_low=SERVER_RTP[0], rtp_high=SERVER_RTP[1],
)  # fmt: skip


@asynccontextmanager
async def agents(
    tmp_path: Path, specs: list[AgentSpec], asr: ScriptedASR, metrics: RuntimeMetrics
) -> AsyncIterator[AgentRuntime]:
    tts = FakeTTS(ms_per_char=2.0, metrics=metrics.providers)  # prompts play in a blink
    async with agents_runtime(
        specs, asr=asr, tts=tts, records_db=tmp_path / "records.sqlite3",
        spool_dir=tmp_path / "spool", metrics=metrics,
    ) as runtime:  # fmt: skip
        yield runtime


@asynccontextmanager
async def serving(
    runtime: AgentRuntime, metrics: RuntimeMetrics, router: Router[CallHandler]
) -> AsyncIterator[Server]:
    server = Server(
        CONFIG, router=router, metrics=metrics, records=runtime.writer.backend,
        live_view=runtime.live_view,
    )  # fmt: skip
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


def taken(runtime: AgentRuntime, call_id: str) -> Callable[[], bool]:
    """Whether one of the agents runs call ``call_id``."""
    return lambda: any(call_id in app.live for app in runtime.apps)


async def until_record(base: str, call_id: str) -> dict[str, Any]:
    """``GET /calls/{id}`` until the record is in (it is written through a queue)."""
    for _ in range(500):  # 10 s
        status, doc = await get_json(base, f"/calls/{call_id}")
        if status == 200 and doc["record"] is not None:
            return doc
        await asyncio.sleep(0.02)
    pytest.fail(f"no record of {call_id} within 10 s")


async def test_an_agent_call_over_websocket(acme_spec: AgentSpec, tmp_path: Path) -> None:
    metrics = RuntimeMetrics()
    async with (
        agents(tmp_path, [acme_spec], ScriptedASR("order status"), metrics) as runtime,
        serving(runtime, metrics, Router.single(runtime.apps[0])) as server,
    ):
        base = base_of(server)
        app = runtime.apps[0]
        caller = await WsMediaCaller.connect(
            f"ws://{HOST}:{server.http_address[1]}/media", server.pacer
        )
        await eventually(lambda: caller.call_id in app.live, "the agent to take the call")
        conversation = app.live[caller.call_id]
        await eventually(lambda: conversation.waiting_for_caller, "the greeting")
        _, live = await get_json(base, f"/calls/{caller.call_id}")

        caller.send_audio(b"".join(talk(600)))
        await eventually(
            lambda: conversation.turns >= 2 and conversation.waiting_for_caller, "the reply"
        )
        await caller.hangup()
        ended = await until_record(base, caller.call_id)
        families = await scrape(base)

    assert live["live"] is True and live["agent"] == "acme"
    assert live["call"]["transport"] == "ws"
    assert live["transcript"][0]["role"] == "agent"
    assert "Thank you for calling Acme." in live["transcript"][0]["text"]

    assert ended["live"] is False and ended["call"]["ended_by"] == "remote"
    record = ended["record"]
    assert record["agent"] == "acme" and record["outcome"] == "caller_hangup"
    assert ended["transcript"] == record["transcript"]
    assert [t["text"] for t in record["transcript"] if t["role"] == "caller"] == ["order status"]

    latency = families["trunkline_turn_latency_seconds"]
    assert latency.value("_count", stage="total") == 1  # the one caller turn
    assert latency.value("_count", stage="asr") == 1
    assert families["trunkline_calls_total"].value(transport="ws", outcome="caller_hangup") == 1
    assert families["trunkline_active_calls"].value(transport="ws") == 0
    assert (
        families["trunkline_provider_requests_total"].value(provider="fake-tts", operation="tts")
        >= 2
    )  # the greeting and the reply
    assert families["trunkline_records_written_total"].value() == 1


async def test_two_agents_routed_by_dialled_number(acme_spec: AgentSpec, tmp_path: Path) -> None:
    billing_spec = parse_agent_spec(ACME.read_text().replace("name: acme", "name: billing", 1))
    metrics = RuntimeMetrics()
    async with (
        agents(tmp_path, [acme_spec, billing_spec], ScriptedASR(), metrics) as runtime,
    ):
        acme, billing = runtime.apps
        router: Router[CallHandler] = Router([Route("1001", acme), Route("2002", billing)])
        async with serving(runtime, metrics, router) as server, sip_caller() as caller:
            base = base_of(server)
            answered = {}
            for number in ("2002", "1001"):
                uri, peer = target(server.sip_address, user=number)
                leg = await caller.dial(uri, peer, answer_timeout_s=10)
                await eventually(taken(runtime, leg.call_id), "an agent to take the call")
                _, doc = await get_json(base, f"/calls/{leg.call_id}")
                answered[number] = (doc["agent"], leg)
            uri, peer = target(server.sip_address, user="3003")
            with pytest.raises(CallFailedError) as refused:
                await caller.dial(uri, peer, answer_timeout_s=10)
            for _, leg in answered.values():
                await leg.hangup()
            records = {n: await until_record(base, leg.call_id) for n, (_, leg) in answered.items()}
    assert {n: agent for n, (agent, _) in answered.items()} == {"2002": "billing", "1001": "acme"}
    assert records["2002"]["record"]["agent"] == "billing"
    assert records["1001"]["record"]["agent"] == "acme"
    assert refused.value.status == 404


async def test_records_are_read_from_postgres_and_a_hung_database_is_a_503(
    pg: tuple[PostgresServer, str],
) -> None:
    cluster, dsn = pg
    backend = PostgresRecordBackend(dsn, timeout_s=5.0)
    await backend.start()
    record = CallRecord(
        "CA-pg", "acme", "default", 1_700_000_000.0, 1_700_000_030.0,
        transcript=[{"role": "agent", "text": "Thank you for calling Acme.", "at": 0.1}],
        turns=[TurnTiming(0, None, None, 0.1, 0.2, 0.2)], outcome="caller_hangup", revision=1,
    )  # fmt: skip
    await backend.write_many([record])
    server = Server(CONFIG, echo, records=backend)
    await server.start()
    try:
        base = base_of(server)
        status, doc = await get_json(base, "/calls/CA-pg")
        missing, _ = await get_json(base, "/calls/CA-none")
        cluster.pause()
        try:
            hung, error = await get_json(base, "/calls/CA-pg")
        finally:
            cluster.resume()
    finally:
        await server.stop()
        await backend.aclose()
    assert status == 200 and doc["live"] is False and doc["call"] is None
    assert doc["record"]["call_id"] == "CA-pg" and doc["record"]["outcome"] == "caller_hangup"
    assert doc["transcript"] == record.transcript
    assert missing == 404
    assert hung == 503 and error["error"] == "the record store is unavailable"

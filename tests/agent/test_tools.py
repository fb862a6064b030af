"""ToolRunner against a local HTTP server: success, retries, and every failure kind."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from types import MappingProxyType

import pytest
from aiohttp import web

from trunkline.agent import ToolOutcome, ToolRequest, ToolRunner
from trunkline.agent.spec import ToolSpec
from trunkline.agent.template import Template
from trunkline.agent.tools import MAX_TOOL_RESPONSE_BYTES


def tool(retries: int = 2, timeout_ms: int = 300, **result: str) -> ToolSpec:
    return ToolSpec(
        name="t",
        method="GET",
        url=Template.parse("unused"),
        headers=MappingProxyType({}),
        body=None,
        timeout_ms=timeout_ms,
        retries=retries,
        fallback=Template.parse("sorry"),
        result=MappingProxyType({k: tuple(v.split(".")) for k, v in result.items()}),
        line=None,
    )


class Server:
    def __init__(self) -> None:
        self.hits: dict[str, int] = {}
        self.url = ""

    async def handle(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        self.hits[name] = self.hits.get(name, 0) + 1
        n = self.hits[name]
        if name == "ok":
            body = await request.json() if request.can_read_body else {}
            return web.json_response(
                {"a": {"b": [{"c": "deep"}]}, "echo": body, "h": request.headers.get("X-Key")}
            )
        if name == "flaky":  # two 503s, then an answer
            if n <= 2:
                return web.json_response({}, status=503)
            return web.json_response({"a": {"b": [{"c": "third time"}]}})
        if name == "missing":
            return web.json_response({"error": "no"}, status=404)
        if name == "slow":
            await asyncio.sleep(2)
            return web.json_response({})
        if name == "garbage":
            return web.Response(text="<html>", content_type="text/html")
        if name == "nofield":
            return web.json_response({"other": 1})
        if name == "huge":
            return web.Response(body=b"[" + b"1," * MAX_TOOL_RESPONSE_BYTES + b"1]")
        if name == "redirect":
            raise web.HTTPFound("/x/ok")
        return web.json_response({}, status=500)


@pytest.fixture
async def server() -> AsyncIterator[Server]:
    srv = Server()
    app = web.Application()
    app.router.add_route("*", "/x/{name}", srv.handle)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    srv.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    try:
        yield srv
    finally:
        await runner.cleanup()


class Sleeps:
    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)


async def test_ok_maps_nested_fields_and_sends_headers_and_body(server: Server) -> None:
    async with ToolRunner() as runner:
        request = ToolRequest("POST", f"{server.url}/x/ok", {"X-Key": "k1"}, {"day": "monday"})
        result = await runner.call(tool(c="a.b.0.c", echo="echo.day", h="h"), request)
    assert result.ok and result.status == 200 and result.attempts == 1
    assert dict(result.values) == {"c": "deep", "echo": "monday", "h": "k1"}


async def test_retryable_failures_are_retried_with_backoff(server: Server) -> None:
    sleeps = Sleeps()
    async with ToolRunner(backoff_s=0.1, sleep=sleeps) as runner:
        result = await runner.call(tool(c="a.b.0.c"), ToolRequest("GET", f"{server.url}/x/flaky"))
    assert result.ok and result.values["c"] == "third time" and result.attempts == 3
    assert sleeps.delays == [0.1, 0.2]


@pytest.mark.parametrize(
    ("name", "outcome", "attempts", "status"),
    [
        ("missing", ToolOutcome.REJECTED, 1, 404),  # 4xx: a retry would not change it
        ("boom", ToolOutcome.ERROR, 3, 500),
        ("slow", ToolOutcome.TIMEOUT, 3, None),
        ("garbage", ToolOutcome.GARBAGE, 1, 200),
        ("nofield", ToolOutcome.GARBAGE, 1, 200),
        ("huge", ToolOutcome.GARBAGE, 1, None),
        ("redirect", ToolOutcome.ERROR, 1, 302),
    ],
)
async def test_failures_never_raise(
    server: Server, name: str, outcome: ToolOutcome, attempts: int, status: int | None
) -> None:
    async with ToolRunner(sleep=Sleeps()) as runner:
        result = await runner.call(tool(x="a"), ToolRequest("GET", f"{server.url}/x/{name}"))
    assert (result.outcome, result.attempts, result.status) == (outcome, attempts, status)
    assert result.values == {} and result.error
    assert server.hits[name] == attempts


async def test_connection_refused_and_bad_urls_are_errors() -> None:
    async with ToolRunner(sleep=Sleeps()) as runner:
        refused = await runner.call(tool(retries=1), ToolRequest("GET", "http://127.0.0.1:9/x"))
        bad = await runner.call(tool(), ToolRequest("GET", "not a url"))
    assert (refused.outcome, refused.attempts) == (ToolOutcome.ERROR, 2)
    assert (bad.outcome, bad.attempts) == (ToolOutcome.ERROR, 1)


async def test_a_tool_without_result_mapping_accepts_any_body(server: Server) -> None:
    async with ToolRunner() as runner:
        result = await runner.call(tool(), ToolRequest("GET", f"{server.url}/x/garbage"))
    assert result.ok and result.values == {}

"""``trunkline serve --agent`` with a ``brain: llm`` spec: the chat model is built from the
spec's ``llm:`` block and reached over the wire (the local OpenAI-compatible server); a
caller on a Media Stream hears the model's reply and a tool call runs against the demo
CRM. A model that is down at start is reported, not crashed on; a bad block is refused.

Recognition is scripted and synthesis a fast fake; everything else is the real server.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import re
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.net.helpers import eventually
from tests.net.test_http_api import get_json
from tests.pipeline.fakes import ScriptedASR, talk
from trunkline.cli import _serve_agent, build_parser
from trunkline.net.pacer import Pacer
from trunkline.net.ws_client import WsMediaCaller
from trunkline.providers.fakes import FakeTTS
from trunkline.providers.testing import ChatReply, OpenAIServer, ScriptedToolCall
from trunkline.runtime.server import ServeConfig

LLM_SPEC = Path(__file__).resolve().parents[2] / "examples" / "acme" / "agent-llm.yaml"
KEY_ENV = "TRUNKLINE_TEST_LLM_KEY"


def spec_file(tmp_path: Path, extra: str) -> Path:
    """The Acme LLM example with ``extra`` lines added to its ``llm:`` block."""
    text = LLM_SPEC.read_text().replace("llm:\n", "llm:\n" + extra, 1)
    path = tmp_path / "agent-llm.yaml"
    path.write_text(text)
    return path


def serve_args(tmp_path: Path, spec: Path) -> argparse.Namespace:
    return build_parser().parse_args([
        "serve", "--agent", str(spec), "--demo-crm", "--records", str(tmp_path / "r.sqlite3"),
        "--spool-dir", str(tmp_path / "spool"),
    ])  # fmt: skip


@asynccontextmanager
async def serving(
    tmp_path: Path, spec: Path, asr: ScriptedASR, capsys: pytest.CaptureFixture[str]
) -> AsyncIterator[str]:
    """Run ``serve`` until the block ends; yields the HTTP base URL."""
    config = ServeConfig(sip_port=0, http_port=0, rtp_low=47100, rtp_high=47199)
    tts = FakeTTS(ms_per_char=10.0)
    task = asyncio.create_task(
        _serve_agent(serve_args(tmp_path, spec), config, providers=lambda m: (asr, tts))
    )
    try:
        printed = ""
        for _ in range(1000):  # up to 10 s for the server (and its checks) to start
            printed += capsys.readouterr().out
            if "serving" in printed or task.done():
                break
            await asyncio.sleep(0.01)
        http = re.search(r"http://127\.0\.0\.1:(\d+)", printed)
        assert http is not None, (printed, task.done() and task.result())
        yield f"http://127.0.0.1:{http.group(1)}"
    finally:
        if not task.done():
            os.kill(os.getpid(), signal.SIGTERM)  # what serve waits for
        async with asyncio.timeout(10):
            assert await task == 0


async def test_serve_builds_the_chat_model_from_the_spec(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def reply(messages: list[dict[str, Any]]) -> ChatReply:
        last = messages[-1]
        if last["role"] == "tool":
            status = "shipped" if '"shipped"' in last["content"] else "unknown"
            return ChatReply(f"Your order is {status}.")
        order = ScriptedToolCall("order_status", {"order_number": "12345"})
        return ChatReply("Let me look.", (order,))

    monkeypatch.setenv(KEY_ENV, "sekrit")
    async with OpenAIServer(reply, api_key="sekrit") as llm_server:
        extra = f"  base_url: {llm_server.base_url}\n  api_key_env: {KEY_ENV}\n"
        spec = spec_file(tmp_path, extra)
        asr = ScriptedASR("where is order one two three four five")
        async with serving(tmp_path, spec, asr, capsys) as base:
            _, health = await get_json(base, "/health")
            assert health["status"] == "ok"
            assert health["providers"]["llm:acme-llm"] == {"up": True, "detail": ""}
            pacer = Pacer()
            pacer.start()
            try:
                port = base.rsplit(":", 1)[1]
                caller = await WsMediaCaller.connect(f"ws://127.0.0.1:{port}/media", pacer)
                call = f"/calls/{caller.call_id}"

                async def said() -> str:
                    _, doc = await get_json(base, call)
                    return " ".join(t["text"] for t in doc.get("transcript", []))

                for _ in range(500):  # the greeting, then the caller's question
                    if "How can I help" in await said():
                        break
                    await asyncio.sleep(0.02)
                caller.send_audio(b"".join(talk(600)))
                for _ in range(500):
                    if "Your order is shipped." in await said():
                        break
                    await asyncio.sleep(0.02)
                assert "Let me look. Your order is shipped." in await said()
                heard = caller.frames_played
                # "Your order is shipped.": 22 characters of 10 ms, about 11 frames.
                await eventually(lambda: caller.frames_played >= heard + 10, "the reply")
                await caller.hangup()
            finally:
                pacer.stop()
            # The model got the CRM's answer to its tool call, with the spec's key.
            chats = [r for r in llm_server.requests if r.path.endswith("/chat/completions")]
            assert chats[0].body["model"] == "gpt-4o-mini"
            assert chats[0].body["temperature"] == 0.3
            assert chats[-1].headers["Authorization"] == "Bearer sekrit"
            tool = chats[-1].body["messages"][-1]
            assert tool["role"] == "tool" and '"status": "shipped"' in tool["content"]


async def test_a_model_down_at_start_is_reported_and_the_server_starts(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(KEY_ENV, raising=False)
    # A port nothing listens on: take one from a server, then close it.
    async with OpenAIServer() as gone:
        dead_url = gone.base_url
    spec = spec_file(tmp_path, f"  base_url: {dead_url}\n")
    caplog.set_level(logging.WARNING, logger="trunkline.runtime.llm_setup")
    async with serving(tmp_path, spec, ScriptedASR(), capsys) as base:
        _, health = await get_json(base, "/health")
    assert health["status"] == "degraded"
    state = health["providers"]["llm:acme-llm"]
    assert state["up"] is False and "unreachable" in state["detail"]
    assert any("down at start" in r.getMessage() for r in caplog.records)

    # A key variable the spec names but the environment lacks: reported the same way.
    spec = spec_file(tmp_path, f"  base_url: {dead_url}\n  api_key_env: {KEY_ENV}\n")
    async with serving(tmp_path, spec, ScriptedASR(), capsys) as base:
        _, health = await get_json(base, "/health")
    assert f"{KEY_ENV} is not set" in health["providers"]["llm:acme-llm"]["detail"]


async def test_an_invalid_llm_block_is_refused_with_its_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = spec_file(tmp_path, "  base_url: ftp://example\n  idle_timeout_ms: 5\n")
    config = ServeConfig(sip_port=0, http_port=0, rtp_low=47100, rtp_high=47199)
    code = await _serve_agent(serve_args(tmp_path, spec), config)
    assert code == 2
    err = capsys.readouterr().err
    line = LLM_SPEC.read_text().splitlines().index("llm:") + 2  # 1-based, first added line
    assert f"agent-llm.yaml:{line}: llm.base_url: expected an http:// or https:// URL" in err
    assert f"agent-llm.yaml:{line + 1}: llm.idle_timeout_ms: 5 is out of range" in err

"""Bad command lines are refused at start with a message that names the problem."""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import signal
from pathlib import Path

import aiohttp
import pytest

from tests.conftest import ACME
from trunkline.cli import _probe_tts, _serve_agent, build_parser, main, make_app
from trunkline.providers.errors import ProviderError
from trunkline.providers.fakes import FailurePlan, FakeASR, FakeTTS
from trunkline.providers.retry import RetryPolicy
from trunkline.runtime.server import ServeConfig
from trunkline.runtime.stores import RecordWriter, SqliteRecordBackend


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["serve", "--sip", "127.0.0.1"], "expected HOST:PORT"),
        (["serve", "--sip", "127.0.0.1:99999"], "port out of range"),
        (["serve", "--http", ":8080"], "expected HOST:PORT"),
        (["serve", "--rtp-ports", "20000"], "expected LO-HI"),
        (["serve", "--rtp-ports", "30000-20000"], "must be within 1024-65535"),
        (["serve", "--rtp-ports", "80-2000"], "must be within 1024-65535"),
    ],
)
def test_bad_flags_are_refused(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args(argv)
    assert exc.value.code == 2
    assert message in capsys.readouterr().err


def test_defaults_match_the_documented_addresses() -> None:
    args = build_parser().parse_args(["serve"])
    assert args.sip == ("127.0.0.1", 5060)
    assert args.http == ("127.0.0.1", 8080)
    assert args.ring_ms == 0
    assert args.app == ["echo"]


def test_ipv6_listen_address() -> None:
    args = build_parser().parse_args(["serve", "--sip", "[::1]:5070"])
    assert args.sip == ("::1", 5070)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (["karaoke"], "unknown app 'karaoke'"),
        (["echo", "extra"], "unknown app 'echo extra'"),
        (["playback"], "unknown app 'playback'"),
        (["playback", "/nonexistent/prompt.wav"], "cannot play"),
    ],
)
def test_bad_apps_are_refused(spec: list[str], message: str) -> None:
    with pytest.raises(SystemExit, match=message):
        make_app(spec)


def test_playback_of_a_file_that_is_not_wav(tmp_path: Path) -> None:
    path = tmp_path / "junk.wav"
    path.write_bytes(b"this is not a RIFF file at all")
    with pytest.raises(SystemExit, match="cannot play"):
        make_app(["playback", str(path)])


# --- serve --agent [MATCH=]SPEC ... ---------------------------------------------------------


def test_agent_may_be_repeated_with_a_match() -> None:
    args = build_parser().parse_args(["serve", "--agent", "a.yaml", "--agent", "1001=b.yaml"])
    assert args.agent == ["a.yaml", "1001=b.yaml"]


@pytest.mark.parametrize(
    ("agents", "message"),
    [
        (["1001=a.yaml", "1001=b.yaml"], "MATCH '1001' is given twice (1001=a.yaml, 1001=b.yaml)"),
        (["+1-555=a.yaml", "+1555=b.yaml"], "MATCH '+1555' is given twice"),
        (["a.yaml", "b.yaml"], "two agents without MATCH (a.yaml, b.yaml)"),
        (["=a.yaml"], "nothing before '='"),
        (["1001="], "no spec file after '='"),
        (["two words=a.yaml"], "neither a number"),
        (["1001=/nonexistent/agent.yaml"], "cannot load agent '/nonexistent/agent.yaml'"),
    ],
)
def test_bad_agent_routes_are_refused_at_start(
    agents: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["serve", "--sip", "127.0.0.1:0", "--http", "127.0.0.1:0"]
    for agent in agents:
        argv += ["--agent", agent]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err
    assert "Traceback" not in err


def test_a_spec_with_errors_is_refused_naming_its_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nbrain: flow\n")
    assert main(["serve", "--agent", str(ACME), "--agent", f"1001={bad}"]) == 2
    assert f"cannot load agent {str(bad)!r}" in capsys.readouterr().err


class DownASR(FakeASR):
    """An ASR whose workers never come up."""

    async def start(self) -> None:
        raise ProviderError("workers did not start", provider="pocketsphinx", retryable=True)


def serve_args(tmp_path: Path, *agents: str) -> argparse.Namespace:
    argv = ["serve", "--records", str(tmp_path / "r.sqlite3"), "--spool-dir", str(tmp_path / "s")]
    for agent in agents:
        argv += ["--agent", agent]
    return build_parser().parse_args(argv)


def free_config() -> ServeConfig:
    return ServeConfig(sip_port=0, http_port=0, rtp_low=47000, rtp_high=47099)


async def test_a_provider_down_at_start_is_reported_not_crashed_on(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = serve_args(tmp_path, str(ACME))
    code = await _serve_agent(args, free_config(), providers=lambda m: (DownASR(), FakeTTS()))
    assert code == 2
    err = capsys.readouterr().err
    assert "cannot start acme: pocketsphinx: workers did not start" in err
    # Everything that had started was stopped: the spool can be taken by a new writer.
    writer = RecordWriter(SqliteRecordBackend(tmp_path / "r.sqlite3"), spool_dir=tmp_path / "s")
    await writer.start()
    await writer.aclose()


async def test_a_tts_that_cannot_speak_at_start_is_reported(
    capsys: pytest.CaptureFixture[str],
) -> None:
    down = FakeTTS(
        failure=FailurePlan(ProviderError("espeak-ng is not installed", provider="espeak")),
        retry=RetryPolicy(attempts=1),
    )
    assert await _probe_tts(down) is False
    assert "text-to-speech 'fake-tts' does not work at start (espeak-ng is not installed)" in (
        capsys.readouterr().err
    )
    assert await _probe_tts(FakeTTS()) is True
    assert capsys.readouterr().err == ""


async def test_two_agents_serve_until_a_signal(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    billing = tmp_path / "billing.yaml"
    billing.write_text(ACME.read_text().replace("name: acme", "name: billing", 1))
    args = serve_args(tmp_path, str(ACME), f"1001={billing}")
    task = asyncio.create_task(
        _serve_agent(args, free_config(), providers=lambda m: (FakeASR(metrics=m), FakeTTS()))
    )
    try:
        printed = ""
        for _ in range(500):  # up to 5 s for the server to start
            printed += capsys.readouterr().out
            if "serving" in printed or task.done():
                break
            await asyncio.sleep(0.01)
        assert "serving agents acme, billing (1001) on sip:127.0.0.1:" in printed
        http = re.search(r"http://127\.0\.0\.1:(\d+)", printed)
        assert http is not None
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"http://127.0.0.1:{http.group(1)}/metrics") as resp,
        ):
            text = await resp.text()
        assert "trunkline_records_queue_depth 0" in text  # the shared writer is watched
    finally:
        if not task.done():
            os.kill(os.getpid(), signal.SIGTERM)  # what _wait_for_signal waits for
        async with asyncio.timeout(10):
            code = await task
    assert code == 0

"""Fixtures for the interop tests: trunkline as a subprocess, SIPp runs, RTP sinks.

Every test here needs the ``sipp`` binary (Debian package ``sip-tester``, which
``scripts/setup.sh`` installs); without it the tests skip with that reason. Tests that
replay pcaps additionally need raw sockets: see ``sipp.pcap_play_problem``.

When a test fails, the log of every trunkline server it used is added to the report.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Generator, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from .sipp import (
    RtpSink,
    SippProcess,
    SippResult,
    free_udp_range,
    pcap_play_problem,
    sipp_path,
    start_sipp,
    wait_until_listening,
)
from .sipp import free_port as _free_port

#: How long the server may take to answer /health: a cold Python start plus imports.
HEALTH_TIMEOUT_S = 15.0
#: RTP ports handed to each server: room for the load test's concurrent calls.
RTP_PORT_COUNT = 200
#: How long stop() waits after SIGTERM before SIGKILL.
STOP_GRACE_S = 5.0


@pytest.fixture(autouse=True)
def _require_sipp() -> None:
    if sipp_path() is None:
        pytest.skip("sipp is not on PATH: install Debian's sip-tester (scripts/setup.sh does)")


@pytest.fixture
def needs_pcap_play() -> None:
    """Skip unless SIPp can replay pcaps (it needs a raw socket)."""
    problem = pcap_play_problem()
    if problem is not None:
        pytest.skip(problem)


@pytest.fixture
def free_port() -> Callable[[], int]:
    """A function returning a port free on 127.0.0.1 for both UDP and TCP."""
    return _free_port


# --- trunkline serve ---------------------------------------------------------------------


@dataclass
class TrunklineServer:
    """One ``python -m trunkline serve`` subprocess on 127.0.0.1."""

    process: subprocess.Popen[bytes]
    command: list[str]
    sip_port: int
    http_port: int
    rtp_ports: tuple[int, int]
    log_path: Path

    @property
    def sip_address(self) -> str:
        """``host:port`` for SIPp's remote-host argument."""
        return f"127.0.0.1:{self.sip_port}"

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.http_port}{path}"

    def get_json(self, path: str, timeout: float = 5.0) -> Any:
        """GET a JSON document from the server's HTTP API."""
        with urllib.request.urlopen(self.url(path), timeout=timeout) as response:
            return json.loads(response.read())

    def recent_calls(self) -> list[dict[str, Any]]:
        """``GET /calls/recent``: ``[{"call_id", "dtmf", "ended_by", "reason"}, ...]``."""
        calls = self.get_json("/calls/recent")
        assert isinstance(calls, list), f"/calls/recent returned {calls!r}"
        return calls

    def wait_for_call(self, call_id: str, timeout: float = 5.0) -> dict[str, Any]:
        """Poll /calls/recent until ``call_id`` is listed as ended; fail if it never is."""
        deadline = time.monotonic() + timeout
        seen: list[dict[str, Any]] = []
        while True:
            seen = self.recent_calls()
            for call in seen:
                if call.get("call_id") == call_id and call.get("ended_by"):
                    return call
            if time.monotonic() > deadline:
                pytest.fail(f"call {call_id} never ended in /calls/recent; it lists {seen!r}")
            time.sleep(0.1)

    def log(self) -> str:
        """Everything the server wrote to stdout and stderr so far."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after ``STOP_GRACE_S``."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=STOP_GRACE_S)


def _healthy(server: TrunklineServer) -> bool:
    try:
        with urllib.request.urlopen(server.url("/health"), timeout=1.0) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def launch_trunkline(
    workdir: Path,
    app: str = "echo",
    *app_args: str,
    ring_ms: int = 0,
    extra_args: Sequence[str] = (),
) -> TrunklineServer:
    """Start ``python -m trunkline serve`` on free ports and wait until /health says 200.

    The command is ``serve --app APP [APP_ARGS] --sip 127.0.0.1:P --http 127.0.0.1:H
    --rtp-ports LO-HI [--ring-ms N] [EXTRA_ARGS]``; stdout and stderr go to a file.
    Fails the test with the server's log if it exits or stays unhealthy for
    ``HEALTH_TIMEOUT_S``.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    sip_port, http_port = _free_port(), _free_port()
    while http_port == sip_port:
        http_port = _free_port()
    rtp_lo = free_udp_range(RTP_PORT_COUNT, even=True)
    rtp_hi = rtp_lo + RTP_PORT_COUNT - 1
    command = [
        sys.executable, "-m", "trunkline", "serve",
        "--app", app, *app_args,
        "--sip", f"127.0.0.1:{sip_port}",
        "--http", f"127.0.0.1:{http_port}",
        "--rtp-ports", f"{rtp_lo}-{rtp_hi}",
    ]  # fmt: skip
    if ring_ms:
        command += ["--ring-ms", str(ring_ms)]
    command += list(extra_args)
    log_path = workdir / "server.log"
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env
        )
    server = TrunklineServer(process, command, sip_port, http_port, (rtp_lo, rtp_hi), log_path)
    deadline = time.monotonic() + HEALTH_TIMEOUT_S
    while not _healthy(server):
        if process.poll() is not None or time.monotonic() > deadline:
            state = (
                f"exited with {process.returncode}"
                if process.poll() is not None
                else f"not healthy after {HEALTH_TIMEOUT_S} s"
            )
            server.stop()
            pytest.fail(
                f"trunkline server {state}\ncommand: {' '.join(command)}\n"
                f"--- server log ---\n{server.log()[-20000:]}",
                pytrace=False,
            )
        time.sleep(0.1)
    return server


@dataclass
class TrunklineServers:
    """The ``trunkline_server`` fixture: call it to start a server; all stop at teardown."""

    workdir: Path
    started: list[TrunklineServer] = field(default_factory=list)

    def __call__(
        self,
        app: str = "echo",
        *app_args: str,
        ring_ms: int = 0,
        extra_args: Sequence[str] = (),
    ) -> TrunklineServer:
        server = launch_trunkline(
            self.workdir / f"server{len(self.started)}",
            app,
            *app_args,
            ring_ms=ring_ms,
            extra_args=extra_args,
        )
        self.started.append(server)
        return server

    def stop_all(self) -> None:
        for server in self.started:
            server.stop()


@pytest.fixture
def trunkline_server(tmp_path: Path) -> Iterator[TrunklineServers]:
    """Factory: ``trunkline_server(app="echo", *app_args, ring_ms=0, extra_args=())``."""
    servers = TrunklineServers(tmp_path)
    yield servers
    servers.stop_all()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Attach the log of every trunkline server a failed test used to its report."""
    report = yield
    if report.failed and report.when == "call":
        servers: list[TrunklineServer] = []
        for value in getattr(item, "funcargs", {}).values():
            if isinstance(value, TrunklineServer):
                servers.append(value)
            elif isinstance(value, TrunklineServers):
                servers.extend(value.started)
        for server in servers:
            report.sections.append(
                (f"trunkline server log ({' '.join(server.command[2:])})", server.log()[-20000:])
            )
    return report


# --- SIPp --------------------------------------------------------------------------------


@dataclass
class SippRunner:
    """The ``run_sipp`` fixture: each call runs SIPp to the end in its own directory."""

    workdir: Path
    runs: int = 0

    def __call__(
        self, scenario: str | Path, target: str | None, *args: str, **kwargs: Any
    ) -> SippResult:
        """Run SIPp in the foreground; keyword arguments are those of ``sipp.start_sipp``.

        Returns a ``SippResult``: ``returncode``, ``stats`` (last ``-trace_stat`` row),
        ``errors`` (``-trace_err`` log) and ``messages`` (``-trace_msg`` log).
        """
        return self.start(scenario, target, *args, **kwargs).wait()

    def start(
        self, scenario: str | Path, target: str | None, *args: str, **kwargs: Any
    ) -> SippProcess:
        """Start SIPp without waiting (for runs in parallel); ``.wait()`` collects it."""
        self.runs += 1
        return start_sipp(scenario, self.workdir / f"sipp{self.runs}", target, *args, **kwargs)


@pytest.fixture
def run_sipp(tmp_path: Path) -> SippRunner:
    """Factory: ``run_sipp(scenario, target, *sipp_args, timeout=30, ...) -> SippResult``."""
    return SippRunner(tmp_path)


@dataclass
class SippUasFactory:
    """The ``sipp_uas`` fixture: SIPp as a callee (UAS) listening on 127.0.0.1."""

    workdir: Path
    started: list[SippProcess] = field(default_factory=list)

    def __call__(
        self,
        port: int | None = None,
        *args: str,
        scenario: str | Path = "uas.xml",
        calls: int = 1,
        transport: str = "u1",
        pause_ms: int | None = None,
        echo: bool = True,
        timeout: float = 60.0,
        pcaps: Mapping[str, Path] | None = None,
    ) -> SippProcess:
        """Start SIPp running ``scenario`` for ``calls`` calls and wait until it listens.

        Args:
            port: SIP port (UDP, or TCP with ``transport="t1"``); default: a free one.
            args: extra SIPp options.
            scenario: ``uas.xml`` (waits for the caller's BYE) or ``uas_hangup.xml``
                (sends BYE after ``pause_ms``), or a selftest stand-in.
            echo: run with ``-rtp_echo``: RTP sent to ``.media_port`` comes back to its
                source (SIPp also echoes ``.media_port + 2``).
            pcaps: files the scenario plays, linked next to it under these names.

        Returns the ``SippProcess``: ``.address`` is ``127.0.0.1:port`` for the caller,
        ``.media_port`` is the RTP port its answers name, ``.wait()`` gives the result
        once ``calls`` calls are done (``.stop()`` ends it early).
        """
        extra = ["-rtp_echo", *args] if echo else list(args)
        process = start_sipp(
            scenario,
            self.workdir / f"uas{len(self.started)}",
            None,
            *extra,
            calls=calls,
            transport=transport,
            pause_ms=pause_ms,
            sip_port=port,
            timeout=timeout,
            pcaps=pcaps,
        )
        self.started.append(process)
        wait_until_listening(process)
        return process


@pytest.fixture
def sipp_uas(tmp_path: Path) -> Iterator[SippUasFactory]:
    """Factory: ``sipp_uas(port=None, scenario="uas.xml", calls=1, ...) -> SippProcess``."""
    factory = SippUasFactory(tmp_path)
    yield factory
    for process in factory.started:
        process.stop()


@pytest.fixture
def rtp_sink() -> Iterator[RtpSink]:
    """A UDP receiver for the RTP sent to a SIPp offer; pass ``.sipp_media_port`` as -mp."""
    sink = RtpSink()
    yield sink
    sink.close()

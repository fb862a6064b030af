"""A server under test in its own process: pinned to CPU 0, health-checked, its loop lag read.

Used by ``agent_density.py`` for both servers. The process is pinned in the child before
``exec`` (``preexec_fn``), so every thread it ever starts inherits the affinity;
``sched_setaffinity`` on a running process would pin only its main thread. Its stderr
goes to a log file whose tail is shown when it fails to start; its stdout carries the
``loop_lag`` JSON lines (SIGUSR2).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from pathlib import Path

import aiohttp

HOST = "127.0.0.1"
#: Longest wait for the server to answer ``GET /health``.
START_TIMEOUT_S = 60.0


class ServerProcess:
    """A server under test, pinned to CPU 0 from its first instruction (all its threads)."""

    def __init__(self, side: str, cmd: list[str], port: int, log_path: Path) -> None:
        self.side, self.cmd, self.port, self.log_path = side, cmd, port, log_path
        self.proc: asyncio.subprocess.Process | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    async def start(self) -> None:
        log = os.open(self.log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            self.proc = await asyncio.create_subprocess_exec(
                *self.cmd,
                stdout=asyncio.subprocess.PIPE,
                stderr=log,
                preexec_fn=lambda: os.sched_setaffinity(0, {0}),
            )
        finally:
            os.close(log)
        deadline = time.monotonic() + START_TIMEOUT_S
        async with aiohttp.ClientSession() as session:
            while time.monotonic() < deadline:
                if self.proc.returncode is not None:
                    raise RuntimeError(f"{self.side} server exited: {self.log_tail()}")
                try:
                    async with session.get(f"http://{HOST}:{self.port}/health") as resp:
                        if resp.status == 200:
                            return
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.2)
        raise RuntimeError(f"{self.side} server did not answer /health: {self.log_tail()}")

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    async def lag(self) -> dict[str, float]:
        """The server's loop lag since the last reset (SIGUSR2, one JSON line back)."""
        assert self.proc is not None and self.proc.stdout is not None
        self.signal(signal.SIGUSR2)
        async with asyncio.timeout(10):
            while True:
                line = (await self.proc.stdout.readline()).decode(errors="replace").strip()
                if not line:
                    raise RuntimeError(f"{self.side} server closed stdout: {self.log_tail()}")
                if line.startswith("{"):
                    data: dict[str, float] = json.loads(line)
                    return data

    async def stop(self) -> None:
        if self.proc is None or self.proc.returncode is not None:
            return
        self.proc.terminate()
        try:
            async with asyncio.timeout(15):
                await self.proc.communicate()
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()

    def log_tail(self, chars: int = 2000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return "(no log)"

    def error_lines(self, limit: int = 5) -> list[str]:
        """The first lines of its log that report an error (a server that logs errors
        during a measurement is not measured as it should run)."""
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return []
        return [line for line in lines if "ERROR" in line or "Traceback" in line][:limit]

"""What the local protocol servers share: start on a free loopback port, faults, stop.

Each server is an aiohttp application behind an ``AppRunner``. Faults are queued with
``fail(...)`` and taken one per request (or per WebSocket connection), so a test says
"the next two requests answer 500" and the third behaves. A server that "hangs" waits
on the server's closing event, bounded by ``HANG_LIMIT_S``, so ``close()`` never waits
for a hung handler and no handler outlives the server.
"""

from __future__ import annotations

import abc
import asyncio
from collections import deque
from dataclasses import dataclass
from typing import Literal, Self

from aiohttp import web

__all__ = ["HANG_LIMIT_S", "Fault", "FaultKind", "LocalServer"]

#: Longest a "hang" fault holds a request: far past any client timeout under test, and
#: bounded so a forgotten server cannot hold a test run forever.
HANG_LIMIT_S = 60.0

FaultKind = Literal["status", "hang", "stall", "garbage", "cut", "truncate", "close", "drop"]


@dataclass(frozen=True, slots=True)
class Fault:
    """One injected failure.

    Kinds (not every server knows every kind; each server's docstring lists its own):

    - ``status``: answer ``status`` with an error body, before any byte of the stream;
    - ``hang``: accept the request and never answer (not even headers);
    - ``stall``: stream ``after`` units, then send nothing more;
    - ``garbage``: stream ``after`` units, then something that is not the protocol;
    - ``cut``: stream ``after`` units, then drop the connection (no clean end);
    - ``truncate``: stream ``after`` units, then end cleanly without the end marker;
    - ``close``: (WebSocket) close with ``status`` as the close code after ``after`` units;
    - ``drop``: (WebSocket) drop the TCP connection after ``after`` units, no close frame.

    A unit is a chunk of the stream: a token for chat, a byte for speech, a millisecond
    of audio received for the Deepgram-protocol server.
    """

    kind: FaultKind
    status: int = 500
    after: int = 0


class LocalServer(abc.ABC):
    """Start/stop and the fault queue of a local protocol server (see the module docstring)."""

    def __init__(self) -> None:
        self.faults: deque[Fault] = deque()
        self.host = "127.0.0.1"
        self.port = 0
        self._runner: web.AppRunner | None = None
        self._closing = asyncio.Event()

    def fail(self, kind: FaultKind, *, status: int = 500, after: int = 0, times: int = 1) -> None:
        """Queue ``times`` faults: the next requests (connections) meet them in order."""
        self.faults.extend(Fault(kind, status, after) for _ in range(times))

    def take_fault(self) -> Fault | None:
        """The fault for the request now arriving, if one is queued."""
        return self.faults.popleft() if self.faults else None

    @abc.abstractmethod
    def build_app(self) -> web.Application:
        """The aiohttp application (subclasses add their routes)."""

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        """Serve on ``host:port`` (port 0: a free one; read ``port`` back)."""
        runner = web.AppRunner(self.build_app(), access_log=None, shutdown_timeout=0.25)
        await runner.setup()
        site = web.TCPSite(runner, host, port)
        await site.start()
        self._runner = runner
        self.host = host
        self.port = int(runner.addresses[0][1]) if runner.addresses else port

    async def close(self) -> None:
        """Stop serving; hung handlers return at once."""
        self._closing.set()
        await self.before_close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def before_close(self) -> None:  # noqa: B027 (optional hook)
        """Subclasses close their long-lived connections here."""

    async def hang(self) -> None:
        """Wait until the server closes (at most ``HANG_LIMIT_S``)."""
        try:
            async with asyncio.timeout(HANG_LIMIT_S):
                await self._closing.wait()
        except TimeoutError:
            pass

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

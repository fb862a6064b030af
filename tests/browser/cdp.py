"""A small Chrome DevTools Protocol client for tests: headless Chromium, driven over CDP.

:class:`Chromium` starts the browser with ``--remote-debugging-port=0`` and reads the
address it picked from its stderr ("DevTools listening on ws://..."); stderr goes to a
file in the profile directory, so a chatty browser can never block on a full pipe.
:class:`Cdp` is one WebSocket to the browser (aiohttp); :meth:`Cdp.new_page` opens a tab
in a fresh browser context (its own cookies and storage) and attaches to it in flat mode,
so every page's commands and events share that one socket, told apart by ``sessionId``.

A :class:`Page` collects what a test usually wants to fail on: console errors,
uncaught exceptions and failed loads (``errors``). Every wait has a deadline.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import os
import pathlib
import re
import shutil
import signal
import subprocess
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import aiohttp

#: The Debian package's binary (scripts/setup.sh installs ``chromium``).
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
START_TIMEOUT_S = 30.0  # a cold start on a loaded 2-core machine takes a few seconds
COMMAND_TIMEOUT_S = 15.0  # one CDP command; navigation and evaluation are far quicker
_LISTENING = re.compile(rb"DevTools listening on (ws://\S+)")

HEADLESS_ARGS = (
    "--headless=new",
    "--no-sandbox",  # containers run as root, where the sandbox cannot start
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-extensions",
    "--disable-background-networking",  # no calls home: tests use loopback only
    "--disable-component-update",
    "--disable-sync",
    "--use-fake-ui-for-media-stream",  # grant the microphone without a prompt
    "--use-fake-device-for-media-stream",  # a beep, or --use-file-for-fake-audio-capture
    "--autoplay-policy=no-user-gesture-required",
)


class CdpError(Exception):
    """The browser answered a command with an error, or a page script threw."""


def chromium_available() -> bool:
    return os.access(CHROMIUM, os.X_OK)


class Chromium:
    """A headless Chromium process with remote debugging on a free loopback port."""

    def __init__(
        self,
        profile: pathlib.Path,
        extra_args: Sequence[str] = (),
        base_args: Sequence[str] = HEADLESS_ARGS,
    ) -> None:
        self.profile = profile
        self.args = [*base_args, *extra_args]
        self.ws_url = ""
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self) -> str:
        """Start the browser; returns its DevTools WebSocket address.

        Raises:
            RuntimeError: it exited or printed no address within ``START_TIMEOUT_S``.
        """
        self.profile.mkdir(parents=True, exist_ok=True)
        log_path = self.profile / "stderr.log"
        with log_path.open("wb") as log:
            self._proc = subprocess.Popen(
                [
                    CHROMIUM,
                    *self.args,
                    f"--user-data-dir={self.profile}",
                    "--remote-debugging-address=127.0.0.1",
                    "--remote-debugging-port=0",
                    "about:blank",
                ],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=log,
                start_new_session=True,  # its helper processes go with it on close()
            )
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            match = _LISTENING.search(log_path.read_bytes())
            if match:
                self.ws_url = match.group(1).decode()
                return self.ws_url
            if self._proc.poll() is not None:
                break
            time.sleep(0.05)
        self.close()
        tail = log_path.read_bytes()[-2000:].decode(errors="replace")
        raise RuntimeError(f"chromium did not start (exit {self._proc.returncode}): {tail}")

    def close(self) -> None:
        """Kill the browser and its helper processes (its own process group)."""
        proc = self._proc
        if proc is None or proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


class Page:
    """One tab, attached in flat mode; collects errors and events while it lives."""

    def __init__(self, cdp: Cdp, session_id: str, target_id: str, context_id: str) -> None:
        self.cdp = cdp
        self.session_id = session_id
        self.target_id = target_id
        self.context_id = context_id
        self.errors: list[str] = []  # console errors, uncaught exceptions, failed loads
        self.console: list[str] = []  # every console message, "type: text"
        self._loaded = asyncio.Event()

    async def send(self, method: str, **params: Any) -> dict[str, Any]:
        return await self.cdp.send(method, params, session_id=self.session_id)

    def on_event(self, method: str, params: dict[str, Any]) -> None:
        if method == "Runtime.consoleAPICalled":
            text = " ".join(str(a.get("value", a.get("description", ""))) for a in params["args"])
            self.console.append(f"{params['type']}: {text}")
            if params["type"] in ("error", "assert"):
                self.errors.append(f"console.{params['type']}: {text}")
        elif method == "Runtime.exceptionThrown":
            details = params["exceptionDetails"]
            text = details.get("exception", {}).get("description") or details.get("text", "")
            self.errors.append(f"exception: {text}")
        elif method == "Log.entryAdded" and params["entry"]["level"] == "error":
            entry = params["entry"]
            self.errors.append(f"log[{entry['source']}]: {entry['text']} {entry.get('url', '')}")
        elif method == "Page.loadEventFired":
            self._loaded.set()

    async def navigate(self, url: str, timeout_s: float = COMMAND_TIMEOUT_S) -> None:
        """Load ``url`` and wait for its load event."""
        self._loaded.clear()
        result = await self.send("Page.navigate", url=url)
        if "errorText" in result:
            raise CdpError(f"cannot load {url}: {result['errorText']}")
        try:
            async with asyncio.timeout(timeout_s):
                await self._loaded.wait()
        except TimeoutError:
            raise CdpError(f"{url} did not finish loading within {timeout_s:g} s") from None

    async def evaluate(self, expression: str) -> Any:
        """The JSON value of ``expression`` in the page (promises are awaited).

        Raises:
            CdpError: the expression threw.
        """
        result = await self.send(
            "Runtime.evaluate", expression=expression, awaitPromise=True, returnByValue=True
        )
        if "exceptionDetails" in result:
            details = result["exceptionDetails"]
            text = details.get("exception", {}).get("description") or details.get("text")
            raise CdpError(f"{expression[:60]!r} threw: {text}")
        return result["result"].get("value")

    async def wait_for(self, expression: str, what: str, timeout_s: float = 10.0) -> Any:
        """Poll ``expression`` until it is truthy; its value. Raises CdpError at the deadline."""
        value: Any = None
        try:
            async with asyncio.timeout(timeout_s):
                while not (value := await self.evaluate(expression)):
                    await asyncio.sleep(0.05)
        except TimeoutError:
            raise CdpError(f"timed out after {timeout_s:g} s waiting for {what}") from None
        return value

    async def screenshot(self) -> bytes:
        """A PNG of the page's viewport."""
        result = await self.send("Page.captureScreenshot", format="png")
        return base64.b64decode(result["data"])

    async def close(self) -> None:
        with contextlib.suppress(CdpError, ConnectionError, TimeoutError):
            await self.cdp.send("Target.closeTarget", {"targetId": self.target_id})
            await self.cdp.send(
                "Target.disposeBrowserContext", {"browserContextId": self.context_id}
            )
        self.cdp.pages.pop(self.session_id, None)


class Cdp:
    """One DevTools connection to the browser: commands by id, events routed to pages."""

    def __init__(self, session: aiohttp.ClientSession, ws: aiohttp.ClientWebSocketResponse) -> None:
        self._session = session
        self._ws = ws
        self._ids = itertools.count(1)
        self._waiting: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self.pages: dict[str, Page] = {}
        self._reader: asyncio.Task[None] | None = None

    @classmethod
    async def connect(cls, ws_url: str) -> Cdp:
        session = aiohttp.ClientSession()
        try:
            ws = await session.ws_connect(ws_url, max_msg_size=64 * 1024 * 1024)
        except BaseException:
            await session.close()
            raise
        cdp = cls(session, ws)
        cdp._reader = asyncio.create_task(cdp._read(), name="cdp reader")
        return cdp

    async def send(
        self, method: str, params: dict[str, Any] | None = None, *, session_id: str | None = None
    ) -> dict[str, Any]:
        """Send one command and wait for its result.

        Raises:
            CdpError: the browser answered with an error.
            ConnectionError: the connection closed first.
            TimeoutError: no answer within ``COMMAND_TIMEOUT_S``.
        """
        if self._reader is None or self._reader.done():
            raise ConnectionError("the DevTools connection is closed")
        ident = next(self._ids)
        message: dict[str, Any] = {"id": ident, "method": method, "params": params or {}}
        if session_id is not None:
            message["sessionId"] = session_id
        waiter: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiting[ident] = waiter
        try:
            await self._ws.send_str(json.dumps(message))
            async with asyncio.timeout(COMMAND_TIMEOUT_S):
                return await waiter
        finally:
            self._waiting.pop(ident, None)

    async def new_page(self) -> Page:
        """A blank tab in its own browser context, with Page, Runtime and Log events on."""
        context = await self.send("Target.createBrowserContext")
        context_id = context["browserContextId"]
        target = await self.send(
            "Target.createTarget", {"url": "about:blank", "browserContextId": context_id}
        )
        attached = await self.send(
            "Target.attachToTarget", {"targetId": target["targetId"], "flatten": True}
        )
        page = Page(self, attached["sessionId"], target["targetId"], context_id)
        self.pages[page.session_id] = page
        for domain in ("Page", "Runtime", "Log"):
            await page.send(f"{domain}.enable")
        return page

    async def _read(self) -> None:
        try:
            async for msg in self._ws:
                if msg.type is not aiohttp.WSMsgType.TEXT:
                    break
                message = json.loads(msg.data)
                if "id" in message:
                    waiter = self._waiting.get(message["id"])
                    if waiter is None or waiter.done():
                        continue
                    if "error" in message:
                        waiter.set_exception(CdpError(str(message["error"])))
                    else:
                        waiter.set_result(message.get("result", {}))
                else:
                    page = self.pages.get(message.get("sessionId", ""))
                    if page is not None:
                        page.on_event(message["method"], message.get("params", {}))
        finally:
            for waiter in self._waiting.values():
                if not waiter.done():
                    waiter.set_exception(ConnectionError("the DevTools connection closed"))

    async def close(self) -> None:
        await self._ws.close()
        if self._reader is not None:
            await asyncio.wait({self._reader}, timeout=COMMAND_TIMEOUT_S)
        await self._session.close()


@asynccontextmanager
async def open_page(browser: Chromium) -> AsyncIterator[Page]:
    """A new tab in ``browser`` over its own DevTools connection, closed on exit."""
    cdp = await Cdp.connect(browser.ws_url)
    try:
        page = await cdp.new_page()
        try:
            yield page
        finally:
            await page.close()
    finally:
        await cdp.close()

"""The Acme demo CRM: a small JSON-over-HTTP service on aiohttp and SQLite.

It backs ``examples/acme/agent.yaml``: order status, appointment booking and account
balance. The runtime starts it in demo mode; tests start it on port 0. It lives in the
package (not only under ``examples/``) so an installed trunkline can start it too;
``examples/acme/crm.py`` runs it from a checkout.

Endpoints (all JSON):

- ``GET /orders/{order_number}`` -> ``{"order_number", "status", "eta"}`` or 404
- ``POST /appointments`` ``{"customer", "day": "YYYY-MM-DD"}`` -> 201
  ``{"id", "customer", "day", "when"}``; 400 on a bad day
- ``GET /accounts/{pin}/balance`` -> ``{"balance": "42.50"}`` or 404
- ``GET /health`` -> ``{"ok": true}``
- ``PUT /_faults`` ``{"mode": "none|slow|error|garbage", "delay_ms": 5000}``: make every
  other endpoint slow, fail with 500, or answer non-JSON, to rehearse integration
  failures (the lab and the tests use it).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import sqlite3
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

FAULT_MODES = ("none", "slow", "error", "garbage")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS orders (
    order_number TEXT PRIMARY KEY, status TEXT NOT NULL, eta TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS accounts (
    pin TEXT PRIMARY KEY, owner TEXT NOT NULL, balance_cents INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS appointments (
    id INTEGER PRIMARY KEY AUTOINCREMENT, customer TEXT NOT NULL, day TEXT NOT NULL,
    time TEXT NOT NULL);
"""
SEED_ORDERS = [
    ("12345", "shipped", "It should arrive on Friday."),
    ("24680", "being prepared", "It will ship within two days."),
    ("11111", "delivered", "It was delivered on Monday."),
]
SEED_ACCOUNTS = [("1234", "demo", 4250), ("4321", "lee", 133700)]
SEED_APPOINTMENTS = [("demo", "2030-01-07", "10 AM")]


@dataclass(slots=True)
class CrmFaults:
    """Fault injection for every endpoint but ``/health`` and ``/_faults``."""

    mode: str = "none"
    delay_s: float = 5.0


class CrmDatabase:
    """The SQLite store, used from worker threads so queries never block the loop."""

    def __init__(self, path: str) -> None:
        self._conn = sqlite3.connect(path, check_same_thread=False)
        self._lock = threading.Lock()
        with self._lock, self._conn:
            self._conn.executescript(_SCHEMA)
            if self._conn.execute("SELECT COUNT(*) FROM orders").fetchone()[0] == 0:
                self._conn.executemany("INSERT INTO orders VALUES (?, ?, ?)", SEED_ORDERS)
                self._conn.executemany("INSERT INTO accounts VALUES (?, ?, ?)", SEED_ACCOUNTS)
                self._conn.executemany(
                    "INSERT INTO appointments (customer, day, time) VALUES (?, ?, ?)",
                    SEED_APPOINTMENTS,
                )

    def query(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with self._lock, self._conn:
            return self._conn.execute(sql, args).fetchall()

    def close(self) -> None:
        with self._lock:
            self._conn.close()


_DB = web.AppKey("db", CrmDatabase)
_FAULTS = web.AppKey("faults", CrmFaults)


@dataclass(slots=True)
class CrmServer:
    """A running CRM: its address, its fault switch, and how to stop it."""

    runner: web.AppRunner
    host: str
    port: int
    db: CrmDatabase
    faults: CrmFaults = field(default_factory=CrmFaults)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def close(self) -> None:
        await self.runner.cleanup()
        self.db.close()


async def start_crm(host: str = "127.0.0.1", port: int = 0, db_path: str = ":memory:") -> CrmServer:
    """Create (and seed, when empty) the database at ``db_path`` and serve on host:port.

    ``port=0`` takes a free port; read it back from ``CrmServer.port``.
    """
    db = await asyncio.to_thread(CrmDatabase, db_path)
    faults = CrmFaults()
    app = web.Application(middlewares=[_fault_middleware(faults)])
    app[_DB] = db
    app[_FAULTS] = faults
    app.router.add_get("/health", _health)
    app.router.add_get("/orders/{order_number}", _order)
    app.router.add_post("/appointments", _book)
    app.router.add_get("/accounts/{pin}/balance", _balance)
    app.router.add_put("/_faults", _set_faults)
    # A demo service: on close, do not wait long for a handler the fault switch made slow.
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.25)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound = port
    if runner.addresses:  # the bound address, which differs when port 0 was asked for
        bound = int(runner.addresses[0][1])
    return CrmServer(runner, host, bound, db, faults)


_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _fault_middleware(faults: CrmFaults) -> Any:
    @web.middleware
    async def middleware(request: web.Request, handler: _Handler) -> web.StreamResponse:
        if request.path in ("/health", "/_faults") or faults.mode == "none":
            return await handler(request)
        if faults.mode == "slow":
            await asyncio.sleep(faults.delay_s)
            return await handler(request)
        if faults.mode == "error":
            return web.json_response({"error": "injected failure"}, status=500)
        return web.Response(text="<html>upstream hiccup</html>", content_type="text/html")

    return middleware


async def _health(request: web.Request) -> web.Response:
    return web.json_response({"ok": True})


async def _order(request: web.Request) -> web.Response:
    number = request.match_info["order_number"]
    rows = await _db(request, "SELECT status, eta FROM orders WHERE order_number = ?", (number,))
    if not rows:
        return web.json_response({"error": "order not found"}, status=404)
    status, eta = rows[0]
    return web.json_response({"order_number": number, "status": status, "eta": eta})


async def _book(request: web.Request) -> web.Response:
    try:
        body = await request.json()
        customer = str(body["customer"])
        day = dt.date.fromisoformat(str(body["day"]))
    except (ValueError, KeyError, TypeError):
        return web.json_response({"error": "expected {customer, day: YYYY-MM-DD}"}, status=400)
    rows = await _db(
        request,
        "INSERT INTO appointments (customer, day, time) VALUES (?, ?, ?) RETURNING id",
        (customer, day.isoformat(), "10 AM"),
    )
    when = f"{day.strftime('%A')}, {day.strftime('%B')} {day.day} at 10 AM"
    return web.json_response(
        {"id": rows[0][0], "customer": customer, "day": day.isoformat(), "when": when}, status=201
    )


async def _balance(request: web.Request) -> web.Response:
    pin = request.match_info["pin"]
    rows = await _db(request, "SELECT balance_cents FROM accounts WHERE pin = ?", (pin,))
    if not rows:
        return web.json_response({"error": "no such account"}, status=404)
    cents = int(rows[0][0])
    return web.json_response({"balance": f"{cents // 100}.{cents % 100:02d}"})


async def _set_faults(request: web.Request) -> web.Response:
    faults = request.app[_FAULTS]
    try:
        body = await request.json()
        mode = str(body.get("mode", "none"))
        delay_ms = float(body.get("delay_ms", faults.delay_s * 1000))
    except (ValueError, AttributeError, TypeError):
        return web.json_response({"error": "expected {mode, delay_ms}"}, status=400)
    if mode not in FAULT_MODES:
        return web.json_response({"error": f"mode must be one of {FAULT_MODES}"}, status=400)
    faults.mode, faults.delay_s = mode, delay_ms / 1000
    return web.json_response({"mode": faults.mode, "delay_ms": delay_ms})


async def _db(request: web.Request, sql: str, args: tuple[Any, ...]) -> list[tuple[Any, ...]]:
    return await asyncio.to_thread(request.app[_DB].query, sql, args)


def main(argv: list[str] | None = None) -> None:
    """``python -m trunkline.agent.demo_crm [--host H] [--port P] [--db PATH]``."""
    parser = argparse.ArgumentParser(description="Acme demo CRM (aiohttp + SQLite)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8089)
    parser.add_argument("--db", default="acme-crm.sqlite3", help="SQLite file (:memory: ok)")
    args = parser.parse_args(argv)

    async def serve() -> None:
        crm = await start_crm(args.host, args.port, args.db)
        print(f"Acme CRM on {crm.url} (database {args.db})", flush=True)
        try:
            await asyncio.Event().wait()
        finally:
            await crm.close()

    try:
        asyncio.run(serve())
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()

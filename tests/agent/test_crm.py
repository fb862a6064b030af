"""The demo CRM's endpoints, as the Acme agent and the lab use them."""

from __future__ import annotations

import pathlib

import httpx

from trunkline.agent.demo_crm import CrmServer, start_crm


async def test_endpoints(crm: CrmServer) -> None:
    async with httpx.AsyncClient(base_url=crm.url) as client:
        assert (await client.get("/health")).json() == {"ok": True}
        order = await client.get("/orders/12345")
        assert order.json() == {
            "order_number": "12345",
            "status": "shipped",
            "eta": "It should arrive on Friday.",
        }
        assert (await client.get("/orders/00000")).status_code == 404
        booked = await client.post("/appointments", json={"customer": "demo", "day": "2025-01-10"})
        assert booked.status_code == 201
        assert booked.json()["when"] == "Friday, January 10 at 10 AM"
        bad = await client.post("/appointments", json={"customer": "demo", "day": "friday"})
        assert bad.status_code == 400
        assert (await client.get("/accounts/1234/balance")).json() == {"balance": "42.50"}
        assert (await client.get("/accounts/9999/balance")).status_code == 404


async def test_fault_switch(crm: CrmServer) -> None:
    async with httpx.AsyncClient(base_url=crm.url) as client:
        assert (await client.put("/_faults", json={"mode": "error"})).status_code == 200
        assert (await client.get("/orders/12345")).status_code == 500
        assert (await client.get("/health")).status_code == 200
        await client.put("/_faults", json={"mode": "garbage"})
        assert (await client.get("/orders/12345")).text.startswith("<html>")
        assert (await client.put("/_faults", json={"mode": "chaos"})).status_code == 400
        await client.put("/_faults", json={"mode": "none"})
        assert (await client.get("/orders/12345")).status_code == 200


async def test_database_persists_and_is_seeded_once(tmp_path: pathlib.Path) -> None:
    path = str(tmp_path / "crm.sqlite3")
    first = await start_crm("127.0.0.1", 0, path)
    async with httpx.AsyncClient(base_url=first.url) as client:
        await client.post("/appointments", json={"customer": "ann", "day": "2025-02-02"})
    await first.close()
    second = await start_crm("127.0.0.1", 0, path)
    try:
        assert second.db.query("SELECT COUNT(*) FROM orders") == [(3,)]
        assert second.db.query("SELECT day FROM appointments WHERE customer = 'ann'") == [
            ("2025-02-02",)
        ]
    finally:
        await second.close()

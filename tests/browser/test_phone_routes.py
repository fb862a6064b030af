"""The browser phone's HTTP side: ``trunkline serve`` serves the page and its files, from
its own origin only. No browser needed."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiohttp
import pytest
from aiohttp import web

from tests.net.helpers import running_server
from trunkline.web.phone import CONTENT_SECURITY_POLICY, PHONE_ASSETS, add_phone_routes

JS = "text/javascript"


async def test_the_runtime_serves_the_phone_page_and_its_files() -> None:
    async with running_server() as server, aiohttp.ClientSession() as http:
        host, port = server.http_address
        base = f"http://{host}:{port}"
        async with http.get(f"{base}/phone") as resp:
            assert resp.status == 200
            assert resp.content_type == "text/html"
            assert resp.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
            page = await resp.text()
        assets: dict[str, tuple[str, str]] = {}
        for name in PHONE_ASSETS:
            async with http.get(f"{base}/phone/{name}") as resp:
                assert resp.status == 200, name
                assert resp.headers["X-Content-Type-Options"] == "nosniff"
                assets[name] = (resp.content_type, await resp.text())
        async with http.get(f"{base}/phone/missing.js") as resp:
            assert resp.status == 404
    assert '<meta name="trunkline-media" content="/media">' in page
    assert '<script type="module" src="/phone/phone.js">' in page
    assert {name: kind for name, (kind, _) in assets.items()} == {
        "phone.js": JS,
        "dsp.js": JS,
        "worklet.js": JS,
        "phone.css": "text/css",
    }
    # Nothing is loaded from elsewhere: no absolute or protocol-relative URL anywhere.
    for text in [page, *(body for _, body in assets.values())]:
        assert not re.search(r"\b(?:https?|wss?)://|[\"'(=]//", text, re.IGNORECASE)


@asynccontextmanager
async def serving(app: web.Application) -> AsyncIterator[str]:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        host, port = runner.addresses[0][:2]
        yield f"http://{host}:{port}"
    finally:
        await runner.cleanup()


async def test_the_page_can_live_elsewhere_and_its_paths_are_escaped() -> None:
    app = web.Application()
    add_phone_routes(app, path="/lab/phone", media_path='/ws"><script>')
    async with serving(app) as base, aiohttp.ClientSession() as http:
        async with http.get(f"{base}/lab/phone") as resp:
            page = await resp.text()
        async with http.get(f"{base}/lab/phone/worklet.js") as resp:
            assert resp.status == 200 and resp.content_type == JS
    assert 'src="/lab/phone/phone.js"' in page
    assert 'content="/ws&quot;&gt;&lt;script&gt;"' in page
    assert page.count("<script") == 1  # only the page's own module


@pytest.mark.parametrize(
    ("path", "media_path"),
    [("phone", "/media"), ("/phone/", "/media"), ("//evil.example/phone", "/media"),
     ("/phone", "media"), ("/phone", "//evil.example/media")],
)  # fmt: skip
def test_paths_must_be_local_absolute_paths(path: str, media_path: str) -> None:
    with pytest.raises(ValueError, match="must"):
        add_phone_routes(web.Application(), path=path, media_path=media_path)

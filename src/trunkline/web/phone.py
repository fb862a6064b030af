"""The browser phone: a page that calls the runtime through its own Media Streams endpoint.

``GET /phone`` serves a page (plain HTML and JavaScript shipped as package data, no build
step, nothing loaded from another origin) that opens the microphone and speaks the same
Twilio-compatible Media Streams protocol as a telephony provider to the runtime's
WebSocket endpoint (``/media``). The browser is therefore one more leg, and the server
has no special case for it. The page's parts, under ``/phone/``:

- ``phone.js``: the call (the protocol's caller side), the keypad, the log, the
  optional transcript (from ``GET /calls/{id}`` when the runtime serves one);
- ``worklet.js``: the audio worklet, microphone to 8 kHz frames and inbound audio to the
  loudspeaker through a ring buffer;
- ``dsp.js``: G.711 u-law, bit-exact with :mod:`trunkline.rtp.g711`, and a windowed-sinc
  resampler.

Browsers grant the microphone only to secure contexts: ``http://127.0.0.1`` and
``http://localhost`` qualify, any other host needs HTTPS in front of the runtime (the page
says so instead of failing silently).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from html import escape
from importlib.resources import files
from string import Template

from aiohttp import web

__all__ = ["PHONE_ASSETS", "add_phone_routes"]

#: The files the page loads, served at ``{path}/{name}``.
PHONE_ASSETS = ("phone.js", "dsp.js", "worklet.js", "phone.css")

_TYPES = {".js": "text/javascript", ".css": "text/css"}

# Everything the page loads or connects to comes from the runtime's own origin, so a
# page served by a runtime never talks to anyone else ('self' covers ws: on the same host).
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; "
    "form-action 'none'; frame-ancestors 'none'"
)
# The files change with the runtime's version and are a few KiB: revalidate every time
# rather than serve a page that no longer matches the server.
_HEADERS = {
    "Cache-Control": "no-cache",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
}


def _read(name: str) -> str:
    return (files("trunkline.web") / "static" / name).read_text(encoding="utf-8")


def _responder(body: str, content_type: str) -> Callable[[web.Request], Awaitable[web.Response]]:
    data = body.encode("utf-8")

    async def serve(request: web.Request) -> web.Response:
        return web.Response(body=data, content_type=content_type, charset="utf-8", headers=_HEADERS)

    return serve


def add_phone_routes(
    app: web.Application, *, path: str = "/phone", media_path: str = "/media"
) -> None:
    """Serve the browser phone at ``path`` (its files under ``path/``), calling ``media_path``.

    The files are read once, here, so a broken installation fails at startup rather than
    on the first visitor.

    Args:
        path: where the page is served; an absolute path without a trailing slash.
        media_path: the Media Streams WebSocket route the page calls (same origin).

    Raises:
        ValueError: ``path`` or ``media_path`` is not an absolute path, or ``path`` ends
            with a slash.
        OSError: a file of the page is missing from the installation.
    """
    for name, value in (("path", path), ("media_path", media_path)):
        if not value.startswith("/") or value.startswith("//"):
            raise ValueError(f"{name} must be an absolute path, got {value!r}")
    if path.endswith("/"):
        raise ValueError(f"path must not end with '/', got {path!r}")
    page = Template(_read("phone.html")).substitute(
        base=escape(path, quote=True), media_path=escape(media_path, quote=True)
    )
    app.router.add_get(path, _responder(page, "text/html"))
    for name in PHONE_ASSETS:
        content_type = _TYPES[name[name.rindex(".") :]]
        app.router.add_get(f"{path}/{name}", _responder(_read(name), content_type))

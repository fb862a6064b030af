"""The playback app: plays one WAV file to the caller, then hangs up (BYE from us)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from trunkline.media.wav import read_wav
from trunkline.net.leg import CallHandler, LegEvent, MarkReached, MediaLeg

_END_MARK = "playback-end"


class _PlaybackSink:
    def __init__(self) -> None:
        self.done = asyncio.Event()

    def on_audio(self, pcm: bytes) -> None:
        return None  # the caller's audio is not used

    def on_event(self, event: LegEvent) -> None:
        if isinstance(event, MarkReached) and event.name == _END_MARK:
            self.done.set()


def playback_app(path: str | Path) -> CallHandler:
    """Build an app that plays ``path`` (read and converted once, at start)."""
    pcm = read_wav(path)

    async def playback(leg: MediaLeg) -> None:
        sink = _PlaybackSink()
        leg.attach(sink)
        leg.send_audio(pcm)
        leg.mark(_END_MARK)
        done: asyncio.Future[Any] = asyncio.ensure_future(sink.done.wait())
        closed: asyncio.Future[Any] = leg.closed
        try:
            await asyncio.wait({done, closed}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            done.cancel()
        # Returning hangs the call up from our side.

    return playback

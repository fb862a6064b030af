"""The echo app: every frame the caller sends comes straight back.

The whole per-frame path is one method call: the leg hands a frame to ``on_audio`` from
its pacer tick and the frame goes onto the same leg's outbound queue, to be sent in that
same tick. It is the cheapest app there is, which makes it the density benchmark's app.
"""

from __future__ import annotations

from trunkline.net.leg import LegEvent, MediaLeg


class _EchoSink:
    __slots__ = ("out",)

    def __init__(self, leg: MediaLeg) -> None:
        self.out = leg.out

    def on_audio(self, pcm: bytes) -> None:
        self.out.append(pcm)  # frames from a leg are always whole 20 ms frames

    def on_event(self, event: LegEvent) -> None:
        return None  # DTMF and hangup are recorded by the leg itself


async def echo(leg: MediaLeg) -> None:
    """Echo until the caller hangs up."""
    leg.attach(_EchoSink(leg))
    await leg.wait_closed()

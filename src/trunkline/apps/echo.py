"""The echo app: every frame the caller sends comes straight back.

It asks the leg to loop its audio back (``MediaLeg.loop_back``): the frame goes out in
the same pacer tick it is delivered in. An RTP leg does that without decoding and
re-encoding the G.711 payload, which makes this the cheapest app there is and the
density benchmark's app; a WebSocket leg queues the decoded frame like any app would.
"""

from __future__ import annotations

from trunkline.net.leg import MediaLeg


async def echo(leg: MediaLeg) -> None:
    """Echo until the caller hangs up."""
    leg.loop_back()
    await leg.wait_closed()

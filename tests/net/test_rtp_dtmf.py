"""DTMF sent by our SIP leg reaches our server: RFC 4733 events, or SIP INFO without them."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest

from trunkline.apps.echo import echo
from trunkline.net.calls import SipCalls
from trunkline.net.rtp_pool import RtpPortPool
from trunkline.rtp.errors import RtpUsageError
from trunkline.runtime.server import ServeConfig, Server
from trunkline.sip.events import Peer


async def _wait_recent(server: Server, count: int) -> None:
    for _ in range(200):
        if len(server.sip.recent) >= count:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"server recorded {len(server.sip.recent)} calls, wanted {count}")


@pytest.mark.parametrize("telephone_event", [True, False])
async def test_digits_sent_by_the_caller_are_recorded_by_the_server(telephone_event: bool) -> None:
    server = Server(ServeConfig(sip_port=0, http_port=0, rtp_low=46000, rtp_high=46099), echo)
    await server.start()
    caller = SipCalls(
        host="127.0.0.1",
        port=0,
        pool=RtpPortPool("127.0.0.1", 46100, 46199),
        pacer=server.pacer,
        handler=echo,
    )
    await caller.start()
    try:
        host, port = server.sip_address
        leg = await caller.dial(f"sip:echo@{host}:{port}", Peer("udp", host, port))
        infos: list[str] = []
        send_info = caller.dtmf_info_leg

        def spy(leg_: object, digit: str, duration_ms: int) -> None:
            infos.append(digit)
            send_info(leg, digit, duration_ms)

        caller.dtmf_info_leg = spy  # type: ignore[method-assign]
        if not telephone_event:
            # As if the far end had not accepted telephone-event: the leg falls back to INFO.
            leg.apply_media(dataclasses.replace(leg.media, telephone_event_pt=None))
        with pytest.raises(RtpUsageError):
            leg.send_dtmf("X")
        for digit in "19#":
            leg.send_dtmf(digit, 80)
        # Each digit is 80 ms of events plus 3 end packets: about 0.2 s a digit.
        await asyncio.sleep(1.2)
        await leg.hangup()
        await _wait_recent(server, 1)
        summary = server.sip.recent[-1]
        assert summary.dtmf == "19#"
        assert summary.ended_by == "remote"
        assert infos == ([] if telephone_event else ["1", "9", "#"])
    finally:
        await caller.close()
        await server.stop()

"""The RTP port pool: even ports, exhaustion is an answer, busy ports are skipped."""

from __future__ import annotations

import socket

import pytest

from trunkline.net.rtp_pool import PortPoolExhausted, RtpPortPool


def _free_even_range(width: int) -> int:
    for base in range(41000, 60000, 64):
        socks = []
        try:
            for port in range(base, base + width):
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                socks.append(s)
                s.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise RuntimeError("no free port range")


def test_even_ports_until_exhausted_then_release() -> None:
    base = _free_even_range(8)
    pool = RtpPortPool("127.0.0.1", base, base + 7)
    assert pool.capacity == 4
    socks = [pool.acquire() for _ in range(4)]
    ports = sorted(s.getsockname()[1] for s in socks)
    assert ports == [base, base + 2, base + 4, base + 6]
    with pytest.raises(PortPoolExhausted, match="all 4 RTP ports"):
        pool.acquire()
    first_port = socks[0].getsockname()[1]
    socks[0].close()
    pool.release(first_port)
    again = pool.acquire()
    assert again.getsockname()[1] == first_port
    for s in [again, *socks[1:]]:
        s.close()


def test_port_taken_by_another_program_is_skipped() -> None:
    base = _free_even_range(4)
    squatter = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    squatter.bind(("127.0.0.1", base))
    try:
        pool = RtpPortPool("127.0.0.1", base, base + 3)
        sock = pool.acquire()
        assert sock.getsockname()[1] == base + 2
        with pytest.raises(PortPoolExhausted):
            pool.acquire()
        sock.close()
    finally:
        squatter.close()


@pytest.mark.parametrize(("low", "high"), [(80, 2000), (3000, 2000), (5001, 5001), (1024, 70000)])
def test_bad_ranges_are_refused(low: int, high: int) -> None:
    with pytest.raises(ValueError, match="RTP port range"):
        RtpPortPool("127.0.0.1", low, high)

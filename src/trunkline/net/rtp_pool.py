"""A pool of RTP ports: each call takes one even port and gives it back when it ends.

An exhausted pool is a normal condition under load, not an error: ``acquire`` raises
``PortPoolExhausted`` and the SIP side answers 503 with Retry-After (RFC 3261 §21.5.4).

Ports are handed out even (RFC 3550 §11: RTP on an even port, RTCP on the next odd one),
and the odd port is kept free for RTCP, so a range of N ports carries N/2 calls. A port
that the OS refuses (taken by another program) is skipped and retried later.
"""

from __future__ import annotations

import socket
from collections import deque

# How long a released port rests before reuse, in allocations: late packets of the old
# call must not land in a new call on the same port. A FIFO of free ports gives that
# for free — a port comes back only after every other free port was used once.


class PortPoolExhausted(Exception):
    """No RTP port is free; the caller should be refused with 503 and Retry-After."""


class RtpPortPool:
    """Even RTP ports from ``low`` to ``high`` (inclusive), bound on ``host``."""

    def __init__(self, host: str, low: int, high: int) -> None:
        if low < 1024 or high > 65535 or low > high:
            raise ValueError(
                f"RTP port range {low}-{high} is invalid: use 1024..65535, low <= high"
            )
        first = low + (low % 2)
        self.host = host
        self.low = low
        self.high = high
        self._free: deque[int] = deque(range(first, high, 2))
        if not self._free:
            raise ValueError(f"RTP port range {low}-{high} holds no even/odd port pair")
        self._in_use: set[int] = set()

    @property
    def capacity(self) -> int:
        return len(self._free) + len(self._in_use)

    @property
    def in_use(self) -> int:
        return len(self._in_use)

    def acquire(self) -> socket.socket:
        """Bind a UDP socket on the next free even port and return it (non-blocking).

        Raises:
            PortPoolExhausted: every port is in use or refused by the OS.
        """
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        for _ in range(len(self._free)):
            port = self._free.popleft()
            sock = socket.socket(family, socket.SOCK_DGRAM)
            try:
                sock.bind((self.host, port))
            except OSError:
                sock.close()
                self._free.append(port)  # busy elsewhere now; try it again later
                continue
            sock.setblocking(False)
            self._in_use.add(port)
            return sock
        raise PortPoolExhausted(f"all {self.capacity} RTP ports in {self.low}-{self.high} are busy")

    def release(self, port: int) -> None:
        if port in self._in_use:
            self._in_use.remove(port)
            self._free.append(port)

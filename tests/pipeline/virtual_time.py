"""An event loop on a virtual clock, for tests that assert on a call's timeline.

``VirtualTimeLoop.time()`` starts at 0 and moves only when the loop would otherwise
wait: when nothing is ready, the clock jumps to the next timer instead of sleeping. So a
fake provider's scripted 300 ms latency is exactly 300 ms on the call's clock, a 20 ms
pacer tick is exactly 20 ms, and a test runs as fast as the machine allows whatever its
load. Real sockets still work (ready ones are served first), but a test that waits on
one would see virtual time race ahead of it: use these only with in-process fakes.
"""

from __future__ import annotations

import asyncio
import selectors
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

#: Longest real wait when no timer is armed (only the loop's own wake-up pipe is left):
#: a test that waits on nothing at all fails instead of hanging.
IDLE_LIMIT_S = 5.0


class _JumpingSelector(selectors.DefaultSelector):  # type: ignore[misc,valid-type]
    def __init__(self) -> None:
        super().__init__()
        self.now = 0.0

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        ready: list[tuple[selectors.SelectorKey, int]] = super().select(0)
        if ready:
            return ready
        if timeout is None:
            ready = super().select(IDLE_LIMIT_S)
            if not ready:
                raise RuntimeError("virtual time: the loop is waiting on nothing")
            return ready
        self.now += max(0.0, timeout)
        return []


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    """A selector event loop whose clock jumps over idle time (see the module docstring)."""

    def __init__(self) -> None:
        self._jumping = _JumpingSelector()
        super().__init__(self._jumping)

    def time(self) -> float:
        return self._jumping.now


def run_virtual(main: Coroutine[Any, Any, T]) -> T:
    """Run ``main`` to completion on a fresh :class:`VirtualTimeLoop`."""
    with asyncio.Runner(loop_factory=VirtualTimeLoop) as runner:
        return runner.run(main)

"""Event-loop lag, sampled inside a server under test, reported on a signal (stdlib only).

Both servers of ``agent_density.py`` run this (trunkline's and Pipecat's, in its own
virtualenv), so it imports nothing but the standard library. Every ``PERIOD_S`` a timer
notes how late it fired on ``time.monotonic()``: a loop busy with other callbacks runs it
late, so the lag is what any callback (a pacer tick, a reply's first audio) waits on top
of its own work. ``SIGUSR1`` clears the samples (the start of the measured window) and
``SIGUSR2`` prints one JSON line with the percentiles to stdout.
"""

from __future__ import annotations

import asyncio
import json
import math
import signal
import sys
import time

#: Sampling period: often enough for percentiles over a 30 s window (600 samples), rare
#: enough to cost nothing measurable (20 wake-ups a second).
PERIOD_S = 0.05
#: Samples kept: ten minutes at ``PERIOD_S``; older ones are dropped.
MAX_SAMPLES = 12_000


class LoopLag:
    """Samples the running loop's lag; ``install()`` starts it and the signal handlers."""

    def __init__(self) -> None:
        self.samples: list[float] = []
        self._due = 0.0
        self._loop: asyncio.AbstractEventLoop | None = None

    def install(self) -> None:
        """Start sampling and answer SIGUSR1 (reset) and SIGUSR2 (report) on this loop."""
        loop = self._loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGUSR1, self.reset)
        loop.add_signal_handler(signal.SIGUSR2, self.report)
        self._due = time.monotonic() + PERIOD_S
        loop.call_later(PERIOD_S, self._tick)

    def _tick(self) -> None:
        now = time.monotonic()
        self.samples.append(max(0.0, now - self._due))
        if len(self.samples) > MAX_SAMPLES:
            del self.samples[: MAX_SAMPLES // 2]
        self._due = now + PERIOD_S
        assert self._loop is not None
        self._loop.call_later(PERIOD_S, self._tick)

    def reset(self) -> None:
        self.samples.clear()

    def stats(self) -> dict[str, float]:
        """p50/p99/max lag in ms over the samples since the last reset."""
        ordered = sorted(self.samples)
        if not ordered:
            return {"lag_samples": 0, "lag_p50_ms": 0.0, "lag_p99_ms": 0.0, "lag_max_ms": 0.0}

        def pct(p: float) -> float:
            return 1000 * ordered[min(len(ordered) - 1, math.ceil(p / 100 * len(ordered)) - 1)]

        return {
            "lag_samples": len(ordered),
            "lag_p50_ms": pct(50),
            "lag_p99_ms": pct(99),
            "lag_max_ms": 1000 * ordered[-1],
        }

    def report(self) -> None:
        sys.stdout.write(json.dumps(self.stats()) + "\n")
        sys.stdout.flush()

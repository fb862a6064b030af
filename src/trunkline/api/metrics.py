"""What ``GET /metrics`` shows, and where each value comes from.

One :class:`RuntimeMetrics` per server (no process-wide state, so tests can run several).
Values are fed three ways:

- pushed as they happen: calls ending (``call_ended``, by the server), provider requests
  (:class:`ProviderCollector`, the ``ProviderMetrics`` hook of every provider), event
  loop lag (:class:`LoopLagMonitor`);
- read from a finished call's record (``observe_record``, through :class:`MeteredRecords`
  in front of the record writer): the turn latencies and barge-ins. A turn's first audio
  can reach the leg after the turn's task is over, so its timings are complete only when
  the call is, and that is when they are observed;
- read at scrape time from state kept elsewhere: live calls per transport, refused calls,
  the pacer's lateness histogram, the record writer's counters. Nothing is copied on the
  per-frame path.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import TYPE_CHECKING

from trunkline.aio import cancel_and_wait
from trunkline.api.health import ProviderHealth
from trunkline.api.prometheus import (
    CallbackCollector,
    Family,
    HistogramChild,
    Registry,
    histogram_samples,
)
from trunkline.providers.errors import ProviderError
from trunkline.providers.retry import ProviderMetrics
from trunkline.runtime.stores.records import CallRecord, TurnTiming

if TYPE_CHECKING:
    from trunkline.net.pacer import LatenessHistogram
    from trunkline.pipeline.conversation import RecordSink
    from trunkline.runtime.stores.writer import WriterStats

log = logging.getLogger(__name__)

#: Turn stages in seconds: a reply within 0.5 s feels live, past 2 s callers talk over it.
LATENCY_BUCKETS = (0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0)
#: Provider first byte: embedded engines answer in tens of ms, remote APIs in hundreds.
PROVIDER_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 2.0, 5.0, 10.0)
#: Loop lag: above 20 ms (one frame) media is late; above 100 ms the pacer drops grid.
LOOP_LAG_BUCKETS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0)
#: Pacer lateness: whole multiples of its 0.1 ms buckets, up to 100 ms (half its range,
#: whose last bucket also holds everything later and so has no upper edge).
PACER_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1)
#: How often the loop monitor wakes: ten a second is nothing next to the pacer's 1,000.
LOOP_LAG_INTERVAL_S = 0.1
#: Samples behind the max-lag gauge: the last minute at ``LOOP_LAG_INTERVAL_S``.
LOOP_LAG_WINDOW = 600

#: Turn stages in order: (stage label, the TurnTiming field that ends it). Each stage
#: starts at the latest earlier stamp the turn has (a DTMF turn has no ASR final).
TURN_STAGES = (
    ("asr", "asr_final"),
    ("brain", "first_brain_output"),
    ("tts", "first_tts_audio"),
    ("send", "first_outbound_packet"),
)

#: ``calls_total`` outcomes: who ended an answered call, an app that raised, or a call
#: never answered (capacity, no agent for the number, bad SDP, media setup failure).
OUTCOMES = ("caller_hangup", "local_hangup", "app_error", "refused")


class RuntimeMetrics:
    """The server's metrics and their registry (``render()`` gives the text format)."""

    def __init__(self) -> None:
        r = self.registry = Registry()
        self._active: Callable[[], Mapping[str, int]] = dict
        self._refused: Callable[[], Mapping[str, int]] = dict
        self._ended: dict[tuple[str, str], int] = {}
        r.add_collector(CallbackCollector(self._call_families))
        self.turn_latency = r.histogram(
            "trunkline_turn_latency_seconds",
            "Stages of a caller's turn: asr (end of speech to ASR final), brain (to the "
            "first brain output), tts (to the TTS provider's first audio), send (to the "
            "leg sending its first frame: queued behind earlier audio, the pacer's tick), "
            "total (end of speech to that frame). Observed when the call ends; a stage "
            "that overlapped the one before counts as 0.",
            ["stage"],
            buckets=LATENCY_BUCKETS,
        )
        self.barge_ins = r.counter(
            "trunkline_barge_ins_total", "Caller speech or DTMF that cut the agent off."
        )
        self.provider_requests = r.counter(
            "trunkline_provider_requests_total",
            "Provider attempts (retries included).",
            ["provider", "operation"],
        )
        self.provider_errors = r.counter(
            "trunkline_provider_errors_total",
            "Failed provider attempts, by whether the error was retryable.",
            ["provider", "operation", "retryable"],
        )
        self.provider_first_byte = r.histogram(
            "trunkline_provider_first_byte_seconds",
            "From a provider call to its first item (retries included).",
            ["provider", "operation"],
            buckets=PROVIDER_BUCKETS,
        )
        self.loop_lag = r.histogram(
            "trunkline_event_loop_lag_seconds",
            f"How late a {LOOP_LAG_INTERVAL_S:g} s sleep on the event loop woke up.",
            buckets=LOOP_LAG_BUCKETS,
        )
        self.loop_monitor = LoopLagMonitor(self.loop_lag.labels())
        r.add_collector(CallbackCollector(self._loop_max_family))
        self.health = ProviderHealth()
        r.add_collector(CallbackCollector(self._provider_up_family))
        self.providers = ProviderCollector(self)

    # --- pushed -------------------------------------------------------------------------

    def call_ended(self, transport: str, outcome: str) -> None:
        """An answered call ended (``outcome`` from :data:`OUTCOMES`, not ``refused``)."""
        key = (transport, outcome)
        self._ended[key] = self._ended.get(key, 0) + 1

    def observe_record(self, record: CallRecord) -> None:
        """Turn latencies and barge-ins of a finished agent call."""
        for timing in record.turns:
            self.observe_turn(timing)
        counters = record.extra.get("counters")
        if isinstance(counters, dict):
            barge_ins = counters.get("barge_ins", 0)
            if isinstance(barge_ins, int) and barge_ins > 0:
                self.barge_ins.inc(barge_ins)

    def observe_turn(self, timing: TurnTiming) -> None:
        """One turn's stages (see ``TURN_STAGES``); stages the turn lacks are skipped."""
        hist = self.turn_latency
        previous = timing.end_of_speech
        for stage, name in TURN_STAGES:
            stamp: float | None = getattr(timing, name)
            if stamp is None:
                continue
            if previous is not None:
                hist.labels(stage).observe(max(0.0, stamp - previous))
            previous = stamp
        if timing.end_of_speech is not None and timing.first_outbound_packet is not None:
            hist.labels("total").observe(
                max(0.0, timing.first_outbound_packet - timing.end_of_speech)
            )

    def record_sink(self, sink: RecordSink) -> MeteredRecords:
        """``sink`` with every record observed on its way in."""
        return MeteredRecords(sink, self)

    # --- read at scrape time ------------------------------------------------------------

    def watch_calls(
        self,
        active: Callable[[], Mapping[str, int]],
        refused: Callable[[], Mapping[str, int]],
    ) -> None:
        """Where live and refused calls per transport are counted (the server)."""
        self._active = active
        self._refused = refused

    def watch_pacer(self, lateness: LatenessHistogram, bucket_s: float) -> None:
        """Export the pacer's lateness histogram (fixed buckets of ``bucket_s``)."""
        self.registry.add_collector(
            CallbackCollector(lambda: [_pacer_family(lateness.counts, bucket_s)])
        )

    def watch_records(self, stats: Callable[[], WriterStats]) -> None:
        """Export a record writer's counters and its queue and spool sizes."""
        self.registry.add_collector(CallbackCollector(lambda: _writer_families(stats())))

    def render(self) -> str:
        """Everything, in the Prometheus text format 0.0.4."""
        return self.registry.render()

    def _call_families(self) -> Iterable[Family]:
        active = Family("trunkline_active_calls", "Calls in progress, by transport.", "gauge")
        live = self._active()
        for transport in sorted({"sip", "ws", *live}):
            active.samples.append(("", {"transport": transport}, live.get(transport, 0)))
        total = Family(
            "trunkline_calls_total",
            "Calls by transport and outcome: caller_hangup, local_hangup (the agent hung "
            "up or transferred), app_error, refused (never answered).",
            "counter",
        )
        for (transport, outcome), n in sorted(self._ended.items()):
            total.samples.append(("", {"transport": transport, "outcome": outcome}, n))
        for transport, n in sorted(self._refused().items()):
            total.samples.append(("", {"transport": transport, "outcome": "refused"}, n))
        return [active, total]

    def _provider_up_family(self) -> Iterable[Family]:
        family = Family(
            "trunkline_provider_up",
            "1 when the provider's last check or request worked, 0 when it failed.",
            "gauge",
        )
        for label, state in sorted(self.health.states().items()):
            family.samples.append(("", {"provider": label}, 1 if state.up else 0))
        return [family]

    def _loop_max_family(self) -> Iterable[Family]:
        return [
            Family(
                "trunkline_event_loop_lag_max_seconds",
                f"Largest event loop lag of the last {LOOP_LAG_WINDOW} samples.",
                "gauge",
                [("", {}, self.loop_monitor.max_lag)],
            )
        ]


class MeteredRecords:
    """A record sink that shows each record to the metrics, then passes it on."""

    def __init__(self, sink: RecordSink, metrics: RuntimeMetrics) -> None:
        self.sink = sink
        self._metrics = metrics

    def submit(self, record: CallRecord) -> None:
        try:
            self._metrics.observe_record(record)
        except Exception:  # a metrics bug must never cost a record
            log.exception("could not observe the record of %s", record.call_id)
        self.sink.submit(record)


class ProviderCollector(ProviderMetrics):
    """The providers' ``ProviderMetrics`` hook, feeding the Prometheus metrics."""

    def __init__(self, metrics: RuntimeMetrics) -> None:
        self._requests = metrics.provider_requests
        self._errors = metrics.provider_errors
        self._first_byte = metrics.provider_first_byte
        self._health = metrics.health

    def request_started(self, provider: str, operation: str, attempt: int) -> None:
        self._requests.labels(provider, operation).inc()

    def first_byte(self, provider: str, operation: str, latency: float) -> None:
        self._first_byte.labels(provider, operation).observe(latency)
        self._health.report(provider, up=True)

    def request_error(
        self, provider: str, operation: str, error: ProviderError, *, attempt: int, retrying: bool
    ) -> None:
        retryable = "true" if error.retryable else "false"
        self._errors.labels(provider, operation, retryable).inc()
        if not retrying:
            self._health.report(provider, up=False, detail=str(error))


class LoopLagMonitor:
    """Sleeps ``interval_s`` again and again and observes how late each wake-up was.

    A loop busy with a long callback (a blocking call, a burst of work) wakes the sleeper
    late by that long, which is what every call's media suffered meanwhile.

    Args:
        histogram: where each lag goes.
        interval_s: the sleep.
        window: how many recent lags ``max_lag`` covers.
        clock, sleep: the loop's clock and ``asyncio.sleep`` unless a test gives others.
    """

    def __init__(
        self,
        histogram: HistogramChild,
        *,
        interval_s: float = LOOP_LAG_INTERVAL_S,
        window: int = LOOP_LAG_WINDOW,
        clock: Callable[[], float] | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._histogram = histogram
        self._interval_s = interval_s
        self._recent: deque[float] = deque(maxlen=window)
        self._clock = clock
        self._sleep = sleep
        self._task: asyncio.Task[None] | None = None

    @property
    def max_lag(self) -> float:
        """The largest lag among the recent samples (0 before the first)."""
        return max(self._recent, default=0.0)

    def start(self) -> None:
        """Start sleeping and measuring (a second call does nothing)."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="loop lag monitor")

    async def aclose(self) -> None:
        """Stop the monitor."""
        task, self._task = self._task, None
        if task is not None:
            await cancel_and_wait(task)

    async def _run(self) -> None:
        clock = self._clock or asyncio.get_running_loop().time
        interval = self._interval_s
        while True:
            began = clock()
            await self._sleep(interval)
            lag = max(0.0, clock() - began - interval)
            self._histogram.observe(lag)
            self._recent.append(lag)


def _pacer_family(counts: list[int], bucket_s: float) -> Family:
    """The pacer's fine histogram re-cut into ``PACER_BUCKETS``.

    Bucket ``i`` of the pacer holds lateness in ``[i, i + 1) * bucket_s``, so every
    Prometheus bound (a whole number of buckets) gets an exact cumulative count. The pacer
    keeps no sum: ``_sum`` takes each bucket's midpoint, within ``bucket_s / 2`` per tick.
    """
    cumulative: list[float] = []
    for bound in PACER_BUCKETS:
        edge = min(len(counts), round(bound / bucket_s))
        cumulative.append(float(sum(counts[:edge])))
    total = float(sum(counts))
    estimate = sum(n * (i + 0.5) * bucket_s for i, n in enumerate(counts) if n)
    return Family(
        "trunkline_pacer_lateness_seconds",
        "How late the pacer sent each stream's frame after its 20 ms grid time (an upper "
        "bound per packet; _sum estimated from 0.1 ms buckets; reset by POST /stats/reset).",
        "histogram",
        histogram_samples({}, PACER_BUCKETS, cumulative, estimate, total),
    )


def _writer_families(stats: WriterStats) -> list[Family]:
    def one(name: str, help: str, kind: str, value: float) -> Family:
        return Family(name, help, "counter" if kind == "counter" else "gauge", [("", {}, value)])

    return [
        one("trunkline_records_written_total", "Call records the database stored.", "counter",
            stats.written),
        one("trunkline_records_spooled_total",
            "Call records that went to the local spool (database slow or down).", "counter",
            stats.spooled),
        one("trunkline_records_rejected_total",
            "Call records the database refused for good (kept aside).", "counter",
            stats.rejected),
        one("trunkline_records_queue_depth", "Call records waiting in memory.", "gauge",
            stats.queue_depth),
        one("trunkline_records_spool_bytes", "Size of the spool waiting for the database.",
            "gauge", stats.spool_bytes),
    ]  # fmt: skip

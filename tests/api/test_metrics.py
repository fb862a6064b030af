"""``RuntimeMetrics``: turn stages, barge-ins, provider errors, loop lag, pacer and writer."""

from __future__ import annotations

import asyncio
import logging

import pytest

from trunkline.api.metrics import LoopLagMonitor, RuntimeMetrics
from trunkline.net.pacer import HIST_BUCKET_S, LatenessHistogram
from trunkline.providers.errors import APIStatusError, ProviderError
from trunkline.providers.fakes import FailurePlan, FakeTTS
from trunkline.providers.retry import RetryPolicy
from trunkline.runtime.stores.records import CallRecord, TurnTiming
from trunkline.runtime.stores.writer import WriterStats

from .exposition import ParsedFamily, parse


def scrape(metrics: RuntimeMetrics) -> dict[str, ParsedFamily]:
    return parse(metrics.render())


def stage_counts(metrics: RuntimeMetrics) -> dict[str, float]:
    family = scrape(metrics)["trunkline_turn_latency_seconds"]
    return {ls["stage"]: v for n, ls, v in family.samples if n.endswith("_count")}


def test_a_turn_is_cut_into_stages() -> None:
    m = RuntimeMetrics()
    m.observe_turn(TurnTiming(1, 10.0, 10.2, 10.5, 10.9, 10.9))
    family = scrape(m)["trunkline_turn_latency_seconds"]
    sums = {ls["stage"]: v for n, ls, v in family.samples if n.endswith("_sum")}
    assert sums == pytest.approx({"asr": 0.2, "brain": 0.3, "tts": 0.4, "send": 0.0, "total": 0.9})
    # 0.9 s total: in the 1.0 bucket, not in 0.75.
    assert family.value("_bucket", stage="total", le="0.75") == 0
    assert family.value("_bucket", stage="total", le="1") == 1


def test_missing_stages_are_skipped_and_overlaps_count_zero() -> None:
    m = RuntimeMetrics()
    m.observe_turn(TurnTiming(0, None, None, 0.1, 0.3, 0.3))  # the greeting: no caller speech
    m.observe_turn(TurnTiming(2, 5.0, None, 5.2, None, None))  # DTMF, hung up before audio
    m.observe_turn(TurnTiming(3, 7.0, 6.9, 7.1, 7.4, 7.4))  # early endpointing: final first
    counts = stage_counts(m)
    assert counts == {"tts": 2, "send": 2, "brain": 2, "asr": 1, "total": 1}
    family = scrape(m)["trunkline_turn_latency_seconds"]
    assert family.value("_sum", stage="asr") == 0.0  # clamped, not negative
    assert family.value("_sum", stage="brain") == pytest.approx(0.2 + 0.2)  # DTMF: from eos


def test_a_record_feeds_turns_and_barge_ins() -> None:
    m = RuntimeMetrics()
    record = CallRecord(
        "c1", "acme", "default", 0.0,
        turns=[TurnTiming(1, 1.0, 1.1, 1.2, 1.3, 1.3)],
        extra={"counters": {"barge_ins": 2}},
    )  # fmt: skip
    kept: list[CallRecord] = []

    class Sink:
        def submit(self, record: CallRecord) -> None:
            kept.append(record)

    m.record_sink(Sink()).submit(record)
    assert kept == [record]
    families = scrape(m)
    assert families["trunkline_barge_ins_total"].value() == 2
    assert stage_counts(m)["total"] == 1


def test_a_record_the_metrics_choke_on_still_reaches_the_sink(
    caplog: pytest.LogCaptureFixture,
) -> None:
    m = RuntimeMetrics()
    bad = CallRecord("c2", "acme", "default", 0.0, turns=[TurnTiming(1, "x", 1.0)])  # type: ignore[arg-type]
    kept: list[CallRecord] = []

    class Sink:
        def submit(self, record: CallRecord) -> None:
            kept.append(record)

    with caplog.at_level(logging.ERROR):
        m.record_sink(Sink()).submit(bad)
    assert kept == [bad]
    assert "could not observe the record of c2" in caplog.text


async def test_provider_requests_errors_and_first_byte() -> None:
    m = RuntimeMetrics()
    error = APIStatusError("busy", provider="fake-tts", status=503)
    tts = FakeTTS(
        failure=FailurePlan(error, times=1),
        retry=RetryPolicy(attempts=2, initial_backoff=0.0),
        metrics=m.providers,
    )
    chunks = [c async for c in tts.synthesize("hello")]
    assert chunks  # the retry worked
    fatal = FakeTTS(
        failure=FailurePlan(ProviderError("no voice", provider="fake-tts"), times=1),
        metrics=m.providers,
    )
    with pytest.raises(ProviderError):
        async for _ in fatal.synthesize("hello"):
            pass
    families = scrape(m)
    requests = families["trunkline_provider_requests_total"]
    assert requests.value(provider="fake-tts", operation="tts") == 3
    errors = families["trunkline_provider_errors_total"]
    assert errors.value(provider="fake-tts", operation="tts", retryable="true") == 1
    assert errors.value(provider="fake-tts", operation="tts", retryable="false") == 1
    first = families["trunkline_provider_first_byte_seconds"]
    assert first.value("_count", provider="fake-tts", operation="tts") == 1


async def test_loop_lag_monitor_measures_overshoot() -> None:
    m = RuntimeMetrics()
    now = [100.0]
    late = [0.0, 0.030, 0.250]  # how late each scripted wake-up is
    done = asyncio.Event()
    forever = asyncio.Event()

    async def sleep(seconds: float) -> None:
        if not late:
            done.set()
            await forever.wait()  # parked until the monitor is closed
        now[0] += seconds + late.pop(0)

    monitor = LoopLagMonitor(
        m.loop_lag.labels(), interval_s=0.1, window=2, clock=lambda: now[0], sleep=sleep
    )
    monitor.start()
    async with asyncio.timeout(5):
        await done.wait()
    await monitor.aclose()
    family = scrape(m)["trunkline_event_loop_lag_seconds"]
    assert family.value("_count") == 3
    assert family.value("_bucket", le="0.001") == 1  # the on-time wake-up
    assert family.value("_bucket", le="0.05") == 2
    assert family.value("_sum") == pytest.approx(0.28)
    assert monitor.max_lag == pytest.approx(0.25)  # of the last two samples


def test_calls_pacer_and_writer_read_at_scrape_time() -> None:
    m = RuntimeMetrics()
    live = {"sip": 2, "ws": 1}
    m.watch_calls(lambda: live, lambda: {"sip": 4, "ws": 1})
    m.call_ended("sip", "caller_hangup")
    m.call_ended("ws", "local_hangup")
    m.call_ended("ws", "local_hangup")
    lateness = LatenessHistogram()
    lateness.add(0.00005, 10)  # first 0.1 ms bucket
    lateness.add(0.0015, 3)  # between 1 and 2 ms
    lateness.add(0.5, 1)  # off the scale: only in +Inf
    m.watch_pacer(lateness, HIST_BUCKET_S)
    stats = WriterStats(written=5, spooled=2, replayed=1, failed_attempts=1, rejected=0,
                        queue_depth=3, spool_bytes=120)  # fmt: skip
    m.watch_records(lambda: stats)

    families = scrape(m)
    active = families["trunkline_active_calls"]
    assert (active.value(transport="sip"), active.value(transport="ws")) == (2, 1)
    total = families["trunkline_calls_total"]
    assert total.value(transport="sip", outcome="caller_hangup") == 1
    assert total.value(transport="ws", outcome="local_hangup") == 2
    assert total.value(transport="sip", outcome="refused") == 4
    pacer = families["trunkline_pacer_lateness_seconds"]
    assert pacer.value("_bucket", le="0.0005") == 10
    assert pacer.value("_bucket", le="0.001") == 10
    assert pacer.value("_bucket", le="0.002") == 13
    assert pacer.value("_bucket", le="0.1") == 13
    assert pacer.value("_count") == 14
    assert families["trunkline_records_spooled_total"].value() == 2
    assert families["trunkline_records_queue_depth"].value() == 3
    assert families["trunkline_records_spool_bytes"].value() == 120

    live["ws"] = 0
    assert scrape(m)["trunkline_active_calls"].value(transport="ws") == 0  # read afresh


def test_provider_health_follows_the_requests() -> None:
    m = RuntimeMetrics()
    collector = m.providers
    m.health.report("llm:a", up=False, detail="unreachable at start")
    assert not m.health.all_up
    error = ProviderError("boom", provider="tts", retryable=True)
    collector.request_error("tts", "tts", error, attempt=1, retrying=True)
    assert "tts" not in m.health.states()  # a retry is coming: not down yet
    collector.request_error("tts", "tts", error, attempt=2, retrying=False)
    collector.first_byte("llm:a", "llm", 0.2)  # the model answered after all
    assert m.health.as_dict() == {
        "llm:a": {"up": True, "detail": ""},
        "tts": {"up": False, "detail": "boom"},
    }
    family = scrape(m)["trunkline_provider_up"]
    assert family.value(provider="llm:a") == 1 and family.value(provider="tts") == 0

"""The summary's figures on a hand-made run, and its conventions on a synthetic one."""

from __future__ import annotations

import math

from trunkline.lab.report.summary import WORST_CALLS, summarize
from trunkline.lab.results import FAILURE_CATEGORIES, CallResult, RunResult, TurnResult

from .synth import ALL_FAILURES


def test_counts_and_rates_leave_lab_errors_out(small_run: RunResult) -> None:
    s = summarize(small_run)
    assert (s.calls, s.measured_calls, s.lab_errors) == (6, 5, 1)
    assert (s.completed, s.failed, s.setup_failures) == (2, 3, 1)
    assert s.failures == {"no_reply": 1, "expectation": 1, "setup_486": 1, "lab_error": 1}
    assert s.completion_rate == 2 / 5 and s.failure_rate == 3 / 5
    assert s.setup_failure_rate == 1 / 5
    assert s.task_successes == 2 and s.task_success_rate == 2 / 5
    assert s.calls_per_s == 2.0 and s.peak_concurrency == 4  # the timeline's 4 beats 3


def test_distributions_pool_every_turn(small_run: RunResult) -> None:
    s = summarize(small_run)
    # Turns of measured calls: 400 600 800 1000 700 (the None and the lab error's are out).
    assert s.turn_latency_ms.n == 5
    assert (s.turn_latency_ms.p50, s.turn_latency_ms.p95) == (700, 1000)
    assert s.turn_latency_ms.max == 1000
    # TTFW 300 500 400 200: nearest rank 50% of 4 is rank 2 -> 300.
    assert (s.time_to_first_word_ms.n, s.time_to_first_word_ms.p50) == (4, 300)
    assert s.time_to_first_word_ms.p99 == 500
    assert (s.setup_ms.n, s.setup_ms.p50) == (4, 120)
    assert s.barge_in_reaction_ms.n == 0 and s.barge_in_reaction_ms.p95 is None


def test_media_transfer_dead_air_and_talk_over(small_run: RunResult) -> None:
    s = summarize(small_run)
    assert s.talk_over_total_ms == 250 and s.talk_over_calls == 1
    assert s.dead_air_count == 1 and s.dead_air_worst_ms == 2500
    assert (s.transfers_requested, s.transfers_expected, s.transfers_ok) == (1, 2, 1)
    assert s.transfer_success_rate == 0.5
    # Loss over all packets: (10 + 30 + 0) / 2500, not the mean of 1%, 3%, 0%.
    assert s.loss_pct == 100 * 40 / 2500
    assert (s.mos.n, s.mos.median, s.mos.p5) == (3, 4.3, 3.9)
    assert s.r_factor.median == 90.0
    assert s.jitter_ms.n == 3 and s.jitter_ms.p50 == 4.0


def test_wer_is_total_errors_over_total_words(small_run: RunResult) -> None:
    s = summarize(small_run)
    # One error in 2 words and none in 98: 1 / 100 = 1%, where the mean of per-call
    # WERs (50% and 0%) would say 25%.
    assert s.wer == 0.01 and s.wer_words == 100 and s.wer_calls == 2


def test_per_scenario_success(small_run: RunResult) -> None:
    s = summarize(small_run)
    book, transfer = s.scenarios
    assert (book.name, book.calls, book.successes, book.failed) == ("book", 3, 1, 2)
    assert book.success_rate == 1 / 3 and book.turn_latency_p95_ms == 800
    assert (transfer.name, transfer.calls, transfer.successes) == ("transfer", 2, 1)


def test_worst_calls_have_replay_commands(small_run: RunResult) -> None:
    worst = summarize(small_run).worst_calls
    failed = [w for w in worst if w.reason == "failed"]
    slow = [w for w in worst if w.reason == "slow"]
    assert {w.failure for w in failed} == {"no_reply", "expectation", "setup_486", "lab_error"}
    assert [w.index for w in slow] == [2, 0]  # 1000 ms, then 600 ms
    assert all(w.replay == f"replay {w.seed}" for w in worst)
    assert slow[0].worst_turn_ms == 1000


def test_synthetic_run_counts_every_category(run: RunResult) -> None:
    s = summarize(run)
    assert set(s.failures) == set(ALL_FAILURES)
    assert set(FAILURE_CATEGORIES) <= set(s.failures)
    assert sum(s.failures.values()) == s.calls - s.completed
    assert s.completed + s.failed + s.lab_errors == s.calls
    assert list(s.failures.values()) == sorted(s.failures.values(), reverse=True)
    p = s.turn_latency_ms
    assert p.p50 is not None and p.p95 is not None and p.p99 is not None and p.max is not None
    assert p.p50 <= p.p95 <= p.p99 <= p.max
    # Worst calls: one failure of each kind first (there are more kinds than slots).
    failed = [w for w in s.worst_calls if w.reason == "failed"]
    assert len(failed) == WORST_CALLS == len({w.failure for w in failed})
    slow = [w.worst_turn_ms for w in s.worst_calls if w.reason == "slow"]
    assert len(slow) == WORST_CALLS and slow == sorted(slow, reverse=True)  # type: ignore[type-var]


def test_empty_run_measures_nothing() -> None:
    s = summarize(RunResult("sip:t", "p", ["x"], "", 0.0, 1))
    assert s.calls == 0 and s.completion_rate is None and s.task_success_rate is None
    assert s.turn_latency_ms.p95 is None and s.wer is None and s.loss_pct is None
    assert s.calls_per_s is None and s.worst_calls == []
    assert s.scenarios[0].calls == 0 and s.scenarios[0].success_rate is None


def test_garbage_numbers_are_not_measurements() -> None:
    call = CallResult(
        0, "x", "sip:t", "sip", 1, time_to_first_word_ms=math.nan, talk_over_ms=math.inf,
        dead_air_ms=[math.nan, 3000.0], wer=math.nan, wer_words=10,
        turns=[TurnResult(0, "say", latency_ms=math.nan), TurnResult(1, "say", latency_ms=500)],
    )  # fmt: skip
    s = summarize(RunResult("sip:t", "p", ["x"], "", 1.0, 1, calls=[call]))
    assert s.time_to_first_word_ms.n == 0 and s.talk_over_total_ms == 0
    assert s.dead_air_count == 1 and s.wer is None
    assert s.turn_latency_ms.n == 1 and s.turn_latency_ms.p95 == 500
    assert s.worst_calls[0].worst_turn_ms == 500

"""Thresholds, their overrides and parse errors, and the three verdicts with their exit codes."""

from __future__ import annotations

import dataclasses
import math

import pytest

from trunkline.lab.report.summary import Distribution, RunSummary, summarize
from trunkline.lab.report.verdict import (
    CHECKS,
    EXIT_INCONCLUSIVE,
    EXIT_NOT_READY,
    EXIT_READY,
    ThresholdError,
    judge,
    parse_thresholds,
    thresholds_from_mapping,
)
from trunkline.lab.results import LabHealth, RunResult

from .synth import make_run

HEALTHY = LabHealth(1.0, 30.0)


def good_summary() -> RunSummary:
    """A run that meets every default threshold."""
    run = make_run(
        seed=3, calls=120, latency_median_ms=250, success=1.0, failure_rate=0.0, wer_scale=0.2
    )
    return summarize(run)


def with_(summary: RunSummary, **changes: object) -> RunSummary:
    return dataclasses.replace(summary, **changes)  # type: ignore[arg-type]


def test_defaults_are_the_documented_ones() -> None:
    assert {c.key: (c.op, c.default) for c in CHECKS} == {
        "ttfw_p95_ms": ("<", 400.0),
        "turn_latency_p95_ms": ("<", 800.0),
        "wer_pct": ("<", 5.0),
        "task_success_pct": (">", 85.0),
        "setup_failure_pct": ("<", 2.0),
        "mos_median": (">=", 4.0),
    }


def test_synthetic_failures_make_it_not_ready(run: RunResult) -> None:
    # The synthetic generator puts a failure of every kind in the first calls: setup
    # failures pass 2%, so the run cannot be ready.
    verdict = judge(summarize(run), HEALTHY)
    assert verdict.status == "not_ready" and verdict.exit_code == EXIT_NOT_READY == 1
    failed = {c.key for c in verdict.checks if c.status == "fail"}
    assert "setup_failure_pct" in failed
    assert "setup failures" in verdict.reason
    assert verdict.sentence().startswith("NOT READY: ")


def test_a_good_run_is_ready() -> None:
    summary = good_summary()
    # Setup failures: the generator's first calls fail on purpose; forgive them here.
    verdict = judge(summary, HEALTHY, {"setup_failure_pct": 20, "task_success_pct": 80})
    assert [c.status for c in verdict.checks] == ["pass"] * len(CHECKS), verdict.reason
    assert verdict.status == "ready" and verdict.exit_code == EXIT_READY == 0


def test_overrides_move_the_line() -> None:
    summary = with_(good_summary(), turn_latency_ms=Distribution(10, 500, 900, 950, 999))
    assert judge(summary, HEALTHY, {"setup_failure_pct": 50}).status == "not_ready"
    relaxed = parse_thresholds(["turn_latency_p95_ms=1000", "setup_failure_pct = 50%"])
    assert relaxed == {"turn_latency_p95_ms": 1000.0, "setup_failure_pct": 50.0}
    assert judge(summary, HEALTHY, {**relaxed, "task_success_pct": 0}).status == "ready"


def test_comparisons_at_the_boundary() -> None:
    summary = with_(good_summary(), time_to_first_word_ms=Distribution(5, 100, 400, 400, 400))
    ttfw = judge(summary, HEALTHY).checks[0]
    assert ttfw.status == "fail" and "misses < 400 ms" in ttfw.detail  # < is strict
    mos = with_(summary, mos=dataclasses.replace(summary.mos, median=4.0))
    assert judge(mos, HEALTHY).checks[-1].status == "pass"  # >= holds at 4.0


def test_not_measured_is_shown_and_does_not_fail() -> None:
    summary = with_(good_summary(), wer=None, mos=dataclasses.replace(good_summary().mos,
                                                                     median=None))  # fmt: skip
    overrides = {"setup_failure_pct": 20.0, "task_success_pct": 80.0}
    verdict = judge(summary, HEALTHY, overrides)
    by_key = {c.key: c for c in verdict.checks}
    assert by_key["wer_pct"].status == "not_measured" and by_key["wer_pct"].value is None
    assert by_key["mos_median"].status == "not_measured"
    assert verdict.status == "ready"
    assert "not measured: word error rate, MOS (median)" in verdict.reason
    strict = judge(summary, HEALTHY, overrides, require_all=True)
    assert strict.status == "not_ready" and strict.require_all
    assert {c.key for c in strict.checks if c.status == "fail"} == {"wer_pct", "mos_median"}


def test_an_overloaded_lab_is_inconclusive_not_not_ready(run: RunResult) -> None:
    lab = LabHealth(25.0, 190.0, overloaded=True, note="send lateness p99 25 ms > 10 ms")
    kept = [c for c in run.calls if c.failure != "lab_worker_lost"]  # no lab process lost
    verdict = judge(summarize(dataclasses.replace(run, calls=kept)), lab)
    assert verdict.status == "inconclusive" and verdict.exit_code == EXIT_INCONCLUSIVE == 3
    assert verdict.lab_overloaded and verdict.lab_note == lab.note
    assert verdict.sentence() == (
        "INCONCLUSIVE: the lab was overloaded, its timings are not trusted "
        "(send lateness p99 25 ms > 10 ms)"
    )
    assert any(c.status == "fail" for c in verdict.checks)  # the checks are still shown
    assert verdict.as_dict()["exit_code"] == 3


def test_nothing_measured_is_inconclusive() -> None:
    verdict = judge(summarize(RunResult("sip:t", "p", [], "", 0.0, 1)), HEALTHY)
    assert verdict.status == "inconclusive" and "nothing was measured" in verdict.reason
    assert all(c.status == "not_measured" for c in verdict.checks)


@pytest.mark.parametrize(
    ("item", "message"),
    [
        ("ttfw_p95_ms", "not KEY=VALUE"),
        ("ttfw_p95=500", "unknown threshold 'ttfw_p95'; known: ttfw_p95_ms"),
        ("ttfw_p95_ms=fast", "'fast' is not a number"),
        ("ttfw_p95_ms=", "'' is not a number"),
        ("wer_pct=nan", "not a finite number"),
        ("mos_median=inf", "not a finite number"),
        ("wer_pct=5ms", "'5ms' is not a number"),
    ],
)
def test_parse_errors_are_clear(item: str, message: str) -> None:
    with pytest.raises(ThresholdError, match=message.replace("(", r"\(")):
        parse_thresholds([item])


def test_thresholds_from_a_mapping() -> None:
    assert thresholds_from_mapping({"ttfw_p95_ms": 500, "wer_pct": "3%"}) == {
        "ttfw_p95_ms": 500.0,
        "wer_pct": 3.0,
    }
    for bad in ({"ttfw_p95_ms": True}, {"ttfw_p95_ms": [1]}, {"nope": 1}):
        with pytest.raises(ThresholdError):
            thresholds_from_mapping(bad)
    with pytest.raises(ThresholdError, match="unknown threshold"):
        judge(good_summary(), HEALTHY, {"latency": 1.0})
    assert math.isfinite(parse_thresholds(["ttfw_p95_ms=1e3"])["ttfw_p95_ms"])

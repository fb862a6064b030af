"""Fixtures for the report tests: a seeded synthetic run, and a small hand-made one."""

from __future__ import annotations

import pytest

from trunkline.lab.results import (
    CallResult,
    ExpectationResult,
    LabHealth,
    MediaQuality,
    RunResult,
    TimelinePoint,
    TurnResult,
)

from .synth import make_run


@pytest.fixture
def run() -> RunResult:
    """300 calls over about a minute, with every failure category."""
    return make_run(seed=7, calls=300)


def turns(*latencies: float | None) -> list[TurnResult]:
    return [TurnResult(index=i, kind="say", latency_ms=x) for i, x in enumerate(latencies)]


@pytest.fixture
def small_run() -> RunResult:
    """Six calls whose every figure can be worked out by hand (see test_summary)."""
    calls = [
        CallResult(
            0, "book", "sip:t", "sip", seed=10, setup_ms=100, setup_status=200,
            time_to_first_word_ms=300, turns=turns(400, 600), talk_over_ms=250,
            dead_air_ms=[2500.0], media=MediaQuality(1000, 990, 1.0, 4.0, 90.0, 4.3),
            wer=0.5, wer_words=2, task_success=True, replay="replay 10", concurrency=1,
        ),
        CallResult(
            1, "book", "sip:t", "sip", seed=11, setup_ms=200, setup_status=200,
            time_to_first_word_ms=500, turns=turns(800, None), media=MediaQuality(
                1000, 970, 3.0, 8.0, 80.0, 3.9
            ),
            wer=0.0, wer_words=98, task_success=False, failure="no_reply",
            failure_detail="turn 1 got no answer", replay="replay 11", concurrency=2,
        ),
        CallResult(
            2, "transfer", "sip:t", "sip", seed=12, setup_ms=150, setup_status=200,
            time_to_first_word_ms=400, turns=turns(1000), transfer_requested=True,
            expectations=[ExpectationResult("transfer", True)], task_success=True,
            media=MediaQuality(500, 500, 0.0, 2.0, 93.0, 4.4), replay="replay 12",
            concurrency=3,
        ),
        CallResult(
            3, "transfer", "ws://t", "ws", seed=13, setup_ms=120,
            time_to_first_word_ms=200, turns=turns(700),
            expectations=[ExpectationResult("transfer", False, "no transfer")],
            failure="expectation", failure_detail="no transfer", replay="replay 13",
        ),
        CallResult(
            4, "book", "sip:t", "sip", seed=14, failure="setup_486", setup_status=486,
            failure_detail="busy", replay="replay 14",
        ),
        CallResult(
            5, "book", "sip:t", "sip", seed=15, failure="lab_error",
            failure_detail="caller crashed", turns=turns(9999), replay="replay 15",
        ),
    ]  # fmt: skip
    return RunResult(
        target="sip:t",
        profile="steady 2",
        scenarios=["book", "transfer"],
        started_at="2025-01-01T00:00:00Z",
        duration_s=3.0,
        seed=1,
        calls=calls,
        timeline=[TimelinePoint(0.0, 1, 1, 0), TimelinePoint(1.0, 4, 4, 1, 400.0, 800.0)],
        lab=LabHealth(1.0, 20.0),
    )

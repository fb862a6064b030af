"""Live progress: the figures, the redraw rate (on a manual clock) and the plain-log mode."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from trunkline.lab.report.live import MAX_RENDERS_PER_S, LiveProgress
from trunkline.lab.results import CallResult, LabHealth, RunResult, TurnResult


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def console(terminal: bool) -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    return Console(file=out, force_terminal=terminal, width=160, color_system=None), out


def call(index: int, latency: float, failure: str | None = None) -> CallResult:
    turns = [TurnResult(0, "say", latency_ms=latency)]
    return CallResult(index, "s", "sip:t", "sip", index, failure=failure, turns=turns,
                      time_to_first_word_ms=latency / 2)  # fmt: skip


def test_figures_follow_the_calls() -> None:
    clock = Clock()
    term, _ = console(terminal=True)
    progress = LiveProgress(console=term, clock=clock, window=10)
    with progress:
        for _ in range(30):
            clock.now += 0.1
            progress.call_started()
        for i in range(20):
            failure = ["no_reply", "lab_error", None, None][i % 4]
            progress.call_finished(call(i, 100.0 * (i + 1), failure))
        snap = progress.snapshot()
    assert (snap.started, snap.active) == (30, 10)
    assert (snap.completed, snap.failed, snap.lab_errors) == (10, 5, 5)
    assert snap.failures == {"no_reply": 5, "lab_error": 5}
    assert snap.calls_per_s == pytest.approx(30 / 3.0)  # 30 starts in the last 3 s
    # The window holds the last 10 calls: latencies 1100..2000 ms.
    assert (snap.turn_p50_ms, snap.turn_p95_ms) == (1500.0, 2000.0)
    assert (snap.ttfw_p50_ms, snap.ttfw_p95_ms) == (750.0, 1000.0)


def test_rate_counts_only_the_last_seconds() -> None:
    clock = Clock()
    progress = LiveProgress(console=console(True)[0], clock=clock)
    progress.start()
    for _ in range(50):
        progress.call_started()  # 50 at once, then 10 s of quiet, then 5 in 1 s
    clock.now += 10
    for _ in range(5):
        clock.now += 0.2
        progress.call_started()
    assert progress.snapshot().calls_per_s == pytest.approx(1.0)  # 5 starts in the 5 s window
    progress.stop()


def test_redraws_at_most_four_times_a_second() -> None:
    clock = Clock()
    term, out = console(terminal=True)
    progress = LiveProgress(console=term, clock=clock)
    with progress:
        for i in range(2000):  # 1,000 calls a second for 2 s
            clock.now += 0.001
            progress.call_started()
            progress.call_finished(call(i, 300.0))
    # One draw at start and one at stop, and at most 4 per second in between.
    assert 2 < progress.renders <= 2 + 2 * MAX_RENDERS_PER_S + 1
    assert "started 2000" in out.getvalue() and "completed 2000" in out.getvalue()


def test_plain_lines_without_a_terminal(run: RunResult) -> None:
    clock = Clock()
    plain, out = console(terminal=False)
    progress = LiveProgress(console=plain, clock=clock, plain_interval_s=10.0)
    with progress:
        for c in run.calls[:100]:
            clock.now += 0.5  # 50 s in all: a line every 10 s
            progress.call_started()
            progress.call_finished(c)
        progress.lab_health(LabHealth(30.0, 190.0, True, "lateness [p99] 30 ms"))
    lines = out.getvalue().splitlines()
    assert 5 <= len(lines) <= 8
    assert all(line.startswith("pretest ") for line in lines)
    assert "\x1b" not in out.getvalue()  # no cursor movement or colour in a log
    assert lines[-1].startswith("pretest 50 s: started 100, active 0")
    assert "OVERLOADED: lateness [p99] 30 ms" in lines[-1]


def test_terminal_panel_shows_markup_literally() -> None:
    clock = Clock()
    term, out = console(terminal=True)
    with LiveProgress(console=term, clock=clock, title="run [bold]x") as progress:
        progress.lab_health(LabHealth(12.0, 150.0, True, "note [red]with brackets"))
    text = out.getvalue()
    assert "run [bold]x" in text and "OVERLOADED: note [red]with brackets" in text


def test_window_must_hold_a_call() -> None:
    with pytest.raises(ValueError, match="at least one call"):
        LiveProgress(window=0)

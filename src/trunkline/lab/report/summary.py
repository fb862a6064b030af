"""The run in figures: counts, rates and distributions that every report and the verdict read.

``summarize(run)`` reads a ``RunResult`` and nothing else, so the JSON, JUnit and HTML
reports and the verdict all agree on every number.

Conventions:

- A call that failed with ``lab_error`` was our fault, not the target's: it is counted
  and listed, but left out of every rate's denominator ("measured calls").
- Percentiles are nearest-rank (see ``stats``). Turn latency pools every turn of every
  call: a slow turn is just as slow for the caller whichever call it was in.
- A figure with no data is None ("not measured"), never zero.
- WER is total word errors over total reference words, not the mean of per-call WERs:
  a call with 2 words and 1 error would otherwise weigh as much as one with 200 words,
  and short calls would dominate a figure that is about words.
"""

from __future__ import annotations

import dataclasses
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

from ..results import LAB_FAILURES, CallResult, RunResult
from .stats import finite, percentile

#: A gap over this long with the caller waiting counts as dead air (the engine records
#: only these; the filter keeps a report honest if it ever records shorter ones).
DEAD_AIR_MS = 2000.0
#: Calls listed per kind in "worst calls": enough to see a pattern, few enough to read.
WORST_CALLS = 10
#: The expectation name whose outcome says whether a transfer that should happen did.
TRANSFER_EXPECTATION = "transfer"
#: The category of our own failures, never blamed on the target.
LAB_ERROR = "lab_error"


@dataclass(frozen=True, slots=True)
class Distribution:
    """Nearest-rank percentiles of one measure; all None when nothing was measured."""

    n: int
    p50: float | None
    p95: float | None
    p99: float | None
    max: float | None

    @classmethod
    def of(cls, values: list[float | None] | list[float]) -> Distribution:
        data = finite(values)
        return cls(
            n=len(data),
            p50=percentile(data, 50),
            p95=percentile(data, 95),
            p99=percentile(data, 99),
            max=max(data) if data else None,
        )


@dataclass(frozen=True, slots=True)
class Quality:
    """A score where low is bad (MOS, R-factor): the median and the worst 5% edge."""

    n: int
    median: float | None
    p5: float | None

    @classmethod
    def of(cls, values: list[float | None]) -> Quality:
        data = finite(values)
        return cls(len(data), percentile(data, 50), percentile(data, 5))


@dataclass(frozen=True, slots=True)
class ScenarioSummary:
    """Task success of one scenario."""

    name: str
    calls: int  # measured calls (lab errors left out)
    successes: int
    failed: int
    success_rate: float | None
    turn_latency_p95_ms: float | None


@dataclass(frozen=True, slots=True)
class WorstCall:
    """A call worth replaying: a failure, or one of the slowest."""

    index: int
    scenario: str
    seed: int
    reason: str  # "failed" or "slow"
    failure: str | None
    detail: str
    worst_turn_ms: float | None
    replay: str


@dataclass(frozen=True, slots=True)
class RunSummary:
    """Everything the reports print about a run; see the module docstring for conventions."""

    calls: int
    measured_calls: int
    completed: int
    failed: int  # failures blamed on the target
    lab_errors: int
    setup_failures: int
    failures: dict[str, int]  # category -> calls, most frequent first (lab_error included)
    completion_rate: float | None
    failure_rate: float | None
    setup_failure_rate: float | None
    calls_per_s: float | None
    peak_concurrency: int
    time_to_first_word_ms: Distribution
    turn_latency_ms: Distribution
    barge_in_reaction_ms: Distribution
    setup_ms: Distribution
    talk_over_total_ms: float
    talk_over_calls: int
    dead_air_count: int
    dead_air_worst_ms: float | None
    transfers_requested: int
    transfers_expected: int
    transfers_ok: int
    transfer_success_rate: float | None
    mos: Quality
    r_factor: Quality
    loss_pct: float | None  # all packets lost / all packets expected
    jitter_ms: Distribution
    wer: float | None
    wer_words: int
    wer_calls: int
    task_successes: int
    task_success_rate: float | None
    scenarios: list[ScenarioSummary] = field(default_factory=list)
    worst_calls: list[WorstCall] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def rate(part: int, whole: int) -> float | None:
    """``part / whole``, or None when there is nothing to divide by."""
    return part / whole if whole else None


def summarize(run: RunResult) -> RunSummary:
    """Aggregate every call of ``run``; see the module docstring."""
    calls = run.calls
    measured = [c for c in calls if not c.lab_fault]
    failures = Counter(c.failure for c in calls if c.failure is not None)
    completed = sum(1 for c in measured if c.failure is None)
    setup_failures = sum(1 for c in measured if c.setup_failed)
    dead_air = [d for c in measured for d in finite(c.dead_air_ms) if d > DEAD_AIR_MS]
    transfer_checks = [
        e for c in measured for e in c.expectations if e.name == TRANSFER_EXPECTATION
    ]
    transfers_ok = sum(1 for e in transfer_checks if e.ok)
    with_media = [c for c in measured if c.media.packets_expected > 0]
    expected = sum(c.media.packets_expected for c in with_media)
    received = sum(min(c.media.packets_received, c.media.packets_expected) for c in with_media)
    wer_calls = [c for c in measured if c.wer is not None and finite([c.wer]) and c.wer_words > 0]
    wer_words = sum(c.wer_words for c in wer_calls)
    wer_errors = sum((c.wer or 0.0) * c.wer_words for c in wer_calls)
    successes = sum(1 for c in measured if c.task_success)
    peak = max((c.concurrency for c in calls), default=0)
    peak = max(peak, max((p.active_calls for p in run.timeline), default=0))
    return RunSummary(
        calls=len(calls),
        measured_calls=len(measured),
        completed=completed,
        failed=len(measured) - completed,
        lab_errors=sum(failures.get(f, 0) for f in LAB_FAILURES),
        setup_failures=setup_failures,
        failures=dict(failures.most_common()),
        completion_rate=rate(completed, len(measured)),
        failure_rate=rate(len(measured) - completed, len(measured)),
        setup_failure_rate=rate(setup_failures, len(measured)),
        calls_per_s=len(calls) / run.duration_s if run.duration_s > 0 else None,
        peak_concurrency=peak,
        time_to_first_word_ms=Distribution.of([c.time_to_first_word_ms for c in measured]),
        turn_latency_ms=Distribution.of([t for c in measured for t in c.turn_latencies_ms]),
        barge_in_reaction_ms=Distribution.of([t for c in measured for t in c.barge_reactions_ms]),
        setup_ms=Distribution.of([c.setup_ms for c in measured]),
        talk_over_total_ms=sum(finite([c.talk_over_ms for c in measured])),
        talk_over_calls=sum(1 for c in measured if finite([c.talk_over_ms]) and c.talk_over_ms > 0),
        dead_air_count=len(dead_air),
        dead_air_worst_ms=max(dead_air, default=None),
        transfers_requested=sum(1 for c in measured if c.transfer_requested),
        transfers_expected=len(transfer_checks),
        transfers_ok=transfers_ok,
        transfer_success_rate=rate(transfers_ok, len(transfer_checks)),
        mos=Quality.of([c.media.mos for c in measured]),
        r_factor=Quality.of([c.media.r_factor for c in measured]),
        loss_pct=100 * (expected - received) / expected if expected else None,
        jitter_ms=Distribution.of([c.media.jitter_ms for c in with_media]),
        wer=wer_errors / wer_words if wer_words else None,
        wer_words=wer_words,
        wer_calls=len(wer_calls),
        task_successes=successes,
        task_success_rate=rate(successes, len(measured)),
        scenarios=summarize_scenarios(run.scenarios, measured),
        worst_calls=worst_calls(calls),
    )


def summarize_scenarios(names: list[str], measured: list[CallResult]) -> list[ScenarioSummary]:
    """Task success per scenario, in the run's order (then any scenario only the calls name)."""
    by_name: dict[str, list[CallResult]] = defaultdict(list)
    for call in measured:
        by_name[call.scenario].append(call)
    order = list(dict.fromkeys([*names, *by_name]))
    out = []
    for name in order:
        group = by_name.get(name, [])
        ok = sum(1 for c in group if c.task_success)
        latencies = [t for c in group for t in c.turn_latencies_ms]
        out.append(
            ScenarioSummary(
                name=name,
                calls=len(group),
                successes=ok,
                failed=sum(1 for c in group if c.failure is not None),
                success_rate=rate(ok, len(group)),
                turn_latency_p95_ms=percentile(latencies, 95),
            )
        )
    return out


def worst_turn(call: CallResult) -> float | None:
    """The call's slowest turn latency, or None if no turn was answered."""
    return max(finite(call.turn_latencies_ms), default=None)


def worst_calls(calls: list[CallResult]) -> list[WorstCall]:
    """Up to ``WORST_CALLS`` failures, taken in turn from each category so that every kind
    of failure has an example, then the ``WORST_CALLS`` calls with the slowest turn."""
    by_category: dict[str, list[CallResult]] = defaultdict(list)
    for call in calls:
        if call.failure is not None:
            by_category[call.failure].append(call)
    failed: list[CallResult] = []
    queues = [list(reversed(group)) for group in by_category.values()]
    while len(failed) < WORST_CALLS and any(queues):
        for queue in queues:
            if queue and len(failed) < WORST_CALLS:
                failed.append(queue.pop())
    slow = sorted(
        (c for c in calls if c.failure is None and worst_turn(c) is not None),
        key=lambda c: (-(worst_turn(c) or 0.0), c.index),
    )[:WORST_CALLS]
    return [worst_call(c, "failed") for c in failed] + [worst_call(c, "slow") for c in slow]


def worst_call(call: CallResult, reason: str) -> WorstCall:
    return WorstCall(
        index=call.index,
        scenario=call.scenario,
        seed=call.seed,
        reason=reason,
        failure=call.failure,
        detail=call.failure_detail,
        worst_turn_ms=worst_turn(call),
        replay=call.replay,
    )

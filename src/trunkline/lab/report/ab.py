"""A/B comparison of two runs on the same scenarios: is B's agent better, worse, or unknown?

``compare_runs(a, b)`` compares, on the scenarios both runs share and leaving out
``lab_error`` calls (ours, not the agents'):

- task success overall and per scenario, each with a pooled two-proportion z-test;
- turn latency and time to first word: medians and p95s, a Mann-Whitney U test of the
  whole distributions, and a seeded bootstrap CI for the difference of medians and of
  p95s (B minus A: negative is faster);
- how many calls per arm it takes to detect the observed success difference, and a
  5-point change from A's rate, at the chosen alpha and power.

Turns within one call are not independent (a slow agent is slow all call long), so the
turn-latency p-values are somewhat optimistic; the per-call TTFW comparison has no such
caveat. ``write_ab_report`` writes ``ab.json`` and ``ab.html``.
"""

from __future__ import annotations

import dataclasses
import pathlib
from dataclasses import dataclass, field
from typing import Any

from ..results import CallResult, RunResult
from .html_ab import render_ab_html
from .json_out import dump_json
from .stats import (
    BOOTSTRAP_RESAMPLES,
    BootstrapCI,
    ProportionTest,
    RankTest,
    bootstrap_diff_ci,
    mann_whitney_u,
    percentile,
    sample_size_two_proportions,
    two_proportion_z_test,
)

AB_JSON = "ab.json"
AB_HTML = "ab.html"
#: The planning example: the calls it takes to see a 5-point change from A's success rate,
#: a change a product team would want to catch.
PLANNING_DELTA = 0.05


@dataclass(frozen=True, slots=True)
class SuccessComparison:
    """Task success of A and B over one scope (``overall`` or a scenario's name)."""

    scope: str
    test: ProportionTest
    significant: bool  # p < alpha


@dataclass(frozen=True, slots=True)
class LatencyComparison:
    """One latency measure of A against B."""

    measure: str
    n_a: int
    n_b: int
    median_a: float | None
    median_b: float | None
    p95_a: float | None
    p95_b: float | None
    mann_whitney: RankTest
    median_diff: BootstrapCI | None
    p95_diff: BootstrapCI | None
    significant: bool


@dataclass(frozen=True, slots=True)
class SampleSize:
    """Calls per arm to detect ``p1`` vs ``p2``, and the sentence the report prints."""

    purpose: str
    p1: float
    p2: float
    alpha: float
    power: float
    per_arm: int | None
    sentence: str


@dataclass(frozen=True, slots=True)
class AbReport:
    """Everything ``compare_runs`` found; ``as_dict`` is the ``ab.json`` document."""

    label_a: str
    label_b: str
    alpha: float
    power: float
    seed: int
    scenarios: list[str]
    only_a: list[str]
    only_b: list[str]
    calls_a: int
    calls_b: int
    overall: SuccessComparison
    per_scenario: list[SuccessComparison] = field(default_factory=list)
    latencies: list[LatencyComparison] = field(default_factory=list)
    sample_sizes: list[SampleSize] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def success(
    scope: str, a: list[CallResult], b: list[CallResult], alpha: float
) -> SuccessComparison:
    test = two_proportion_z_test(
        sum(1 for c in a if c.task_success), len(a), sum(1 for c in b if c.task_success), len(b)
    )
    return SuccessComparison(scope, test, test.p_value is not None and test.p_value < alpha)


def latency(
    measure: str, xs: list[float], ys: list[float], *, alpha: float, seed: int, resamples: int
) -> LatencyComparison:
    rank = mann_whitney_u(xs, ys)
    return LatencyComparison(
        measure=measure,
        n_a=rank.n_a,
        n_b=rank.n_b,
        median_a=percentile(xs, 50),
        median_b=percentile(ys, 50),
        p95_a=percentile(xs, 95),
        p95_b=percentile(ys, 95),
        mann_whitney=rank,
        median_diff=bootstrap_diff_ci(xs, ys, 50, seed=seed, resamples=resamples),
        p95_diff=bootstrap_diff_ci(xs, ys, 95, seed=seed + 1, resamples=resamples),
        significant=rank.p_value is not None and rank.p_value < alpha,
    )


def sample_size(purpose: str, p1: float, p2: float, alpha: float, power: float) -> SampleSize:
    n = sample_size_two_proportions(p1, p2, alpha=alpha, power=power)
    goal = f"to detect {100 * p1:.1f}% vs {100 * p2:.1f}% at alpha {alpha:g}, power {power:g}"
    sentence = (
        f"{goal} you need {n:,} calls per arm"
        if n is not None
        else f"{goal}: the rates are equal, no number of calls detects a zero difference"
    )
    return SampleSize(purpose, p1, p2, alpha, power, n, sentence)


def compare_runs(
    a: RunResult,
    b: RunResult,
    *,
    alpha: float = 0.05,
    power: float = 0.8,
    seed: int = 0,
    resamples: int = BOOTSTRAP_RESAMPLES,
) -> AbReport:
    """Compare run ``a`` with run ``b``; see the module docstring.

    Raises:
        ValueError: the runs share no scenario, or alpha / power is outside (0, 1).
    """
    for name, value in (("alpha", alpha), ("power", power)):
        if not 0 < value < 1:
            raise ValueError(f"{name}={value} is outside (0, 1)")
    names_a = list(dict.fromkeys([*a.scenarios, *(c.scenario for c in a.calls)]))
    names_b = set(b.scenarios) | {c.scenario for c in b.calls}
    common = [n for n in names_a if n in names_b]
    if not common:
        raise ValueError("the two runs share no scenario: an A/B needs the same scenarios")
    calls_a = [c for c in a.calls if c.scenario in common and not c.lab_fault]
    calls_b = [c for c in b.calls if c.scenario in common and not c.lab_fault]
    label_a, label_b = a.label or "A", b.label or "B"
    overall = success("overall", calls_a, calls_b, alpha)
    per_scenario = [
        success(
            name,
            [c for c in calls_a if c.scenario == name],
            [c for c in calls_b if c.scenario == name],
            alpha,
        )
        for name in common
    ]
    latencies = [
        latency(
            "turn latency (ms)",
            [t for c in calls_a for t in c.turn_latencies_ms],
            [t for c in calls_b for t in c.turn_latencies_ms],
            alpha=alpha,
            seed=seed,
            resamples=resamples,
        ),
        latency(
            "time to first word (ms)",
            [c.time_to_first_word_ms for c in calls_a if c.time_to_first_word_ms is not None],
            [c.time_to_first_word_ms for c in calls_b if c.time_to_first_word_ms is not None],
            alpha=alpha,
            seed=seed + 2,
            resamples=resamples,
        ),
    ]
    sizes = []
    rate_a, rate_b = overall.test.rate_a, overall.test.rate_b
    if rate_a is not None and rate_b is not None:
        sizes.append(sample_size("the observed difference", rate_a, rate_b, alpha, power))
    if rate_a is not None:
        other = rate_a - PLANNING_DELTA if rate_a >= PLANNING_DELTA else rate_a + PLANNING_DELTA
        sizes.append(sample_size("a 5-point change from A", rate_a, other, alpha, power))
    notes = ab_notes(a, b, common, calls_a, calls_b, overall)
    return AbReport(
        label_a=label_a,
        label_b=label_b,
        alpha=alpha,
        power=power,
        seed=seed,
        scenarios=common,
        only_a=[n for n in names_a if n not in common],
        only_b=sorted(names_b - set(common)),
        calls_a=len(calls_a),
        calls_b=len(calls_b),
        overall=overall,
        per_scenario=per_scenario,
        latencies=latencies,
        sample_sizes=sizes,
        notes=notes,
    )


def ab_notes(
    a: RunResult,
    b: RunResult,
    common: list[str],
    calls_a: list[CallResult],
    calls_b: list[CallResult],
    overall: SuccessComparison,
) -> list[str]:
    """Caveats a reader must see beside the figures."""
    notes = []
    for run, label in ((a, a.label or "A"), (b, b.label or "B")):
        if run.lab.overloaded:
            notes.append(f"{label}: the lab was overloaded, its latencies are not trusted")
        extra = sorted(({c.scenario for c in run.calls} | set(run.scenarios)) - set(common))
        if extra:
            notes.append(f"{label}: scenarios left out (not in both runs): {', '.join(extra)}")
    if overall.test.note:
        notes.append(f"task success: {overall.test.note}")
    if a.profile != b.profile:
        notes.append("the runs used different load profiles: latency differences may be load")
    if not calls_a or not calls_b:
        notes.append("a side has no measured calls")
    return notes


def write_ab_report(
    a: RunResult,
    b: RunResult,
    out_dir: pathlib.Path,
    *,
    alpha: float = 0.05,
    power: float = 0.8,
    seed: int = 0,
    resamples: int = BOOTSTRAP_RESAMPLES,
) -> AbReport:
    """Compare as ``compare_runs`` does and write ``ab.json`` and ``ab.html`` in ``out_dir``.

    Raises:
        ValueError: as ``compare_runs``.
        OSError: ``out_dir`` cannot be created or written.
    """
    report = compare_runs(a, b, alpha=alpha, power=power, seed=seed, resamples=resamples)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / AB_JSON).write_text(dump_json(report.as_dict()) + "\n", encoding="utf-8")
    (out_dir / AB_HTML).write_text(render_ab_html(report, a, b), encoding="utf-8")
    return report

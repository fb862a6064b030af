"""A/B of two synthetic runs: a real difference is found, no difference is not, and reports."""

from __future__ import annotations

import json
import pathlib

import pytest

from trunkline.lab.report.ab import compare_runs, write_ab_report
from trunkline.lab.results import RunResult

from .synth import make_run

RESAMPLES = 300  # enough for a stable CI on these samples, and quick


def test_b_slower_and_worse_is_detected() -> None:
    a = make_run(seed=1, calls=400, label="v1")
    b = make_run(seed=2, calls=400, latency_median_ms=600, success=0.75, label="v2")
    report = compare_runs(a, b, seed=9, resamples=RESAMPLES)
    assert (report.label_a, report.label_b) == ("v1", "v2")
    assert report.scenarios == a.scenarios and report.only_a == report.only_b == []
    assert report.calls_a == sum(1 for c in a.calls if not c.lab_fault)
    overall = report.overall.test
    assert overall.n_a == report.calls_a
    assert overall.rate_b is not None and overall.rate_a is not None
    assert overall.rate_b < overall.rate_a and report.overall.significant
    assert [s.scope for s in report.per_scenario] == a.scenarios
    assert sum(s.test.n_a for s in report.per_scenario) == overall.n_a
    turn, ttfw = report.latencies
    assert turn.significant and ttfw.significant
    assert turn.median_diff is not None and turn.median_diff.low > 0  # B is slower, surely
    assert turn.mann_whitney.z is not None and turn.mann_whitney.z < 0  # A's values smaller
    assert turn.median_a is not None and turn.median_b is not None
    assert turn.median_diff.diff == pytest.approx(turn.median_b - turn.median_a)


def test_identical_runs_show_no_difference() -> None:
    a = make_run(seed=4, calls=150)
    report = compare_runs(a, a, resamples=RESAMPLES)
    assert report.overall.test.diff == 0 and report.overall.test.p_value == pytest.approx(1.0)
    assert not report.overall.significant
    for lat in report.latencies:
        assert not lat.significant and lat.mann_whitney.p_value == pytest.approx(1.0)
        assert lat.median_diff is not None and lat.median_diff.diff == 0
    (observed, planning) = report.sample_sizes
    assert observed.per_arm is None and "no number of calls" in observed.sentence
    assert planning.per_arm is not None and planning.p2 == pytest.approx(planning.p1 - 0.05)


def test_the_same_seed_gives_the_same_report() -> None:
    a, b = make_run(seed=1, calls=120), make_run(seed=2, calls=120, latency_median_ms=500)
    first = compare_runs(a, b, seed=5, resamples=RESAMPLES).as_dict()
    assert compare_runs(a, b, seed=5, resamples=RESAMPLES).as_dict() == first
    assert compare_runs(a, b, seed=6, resamples=RESAMPLES).as_dict() != first


def test_sample_size_sentence() -> None:
    a = make_run(seed=1, calls=60)
    for c in a.calls:  # 90% success on A, exactly
        c.task_success = c.index % 10 != 0
    b = make_run(seed=1, calls=60)
    for c in b.calls:  # 85% on B
        c.task_success = c.index % 20 not in (0, 1, 2)
    for run in (a, b):
        for c in run.calls:
            c.failure = None
    report = compare_runs(a, b, resamples=RESAMPLES)
    observed = report.sample_sizes[0]
    assert observed.sentence == (
        "to detect 90.0% vs 85.0% at alpha 0.05, power 0.8 you need 686 calls per arm"
    )


def test_scenarios_must_overlap() -> None:
    a = make_run(seed=1, calls=30)
    b = make_run(seed=2, calls=30)
    for c in b.calls:
        c.scenario = "other"
    b.scenarios = ["other"]
    with pytest.raises(ValueError, match="share no scenario"):
        compare_runs(a, b)
    b.calls[0].scenario = a.scenarios[0]
    b.scenarios.append(a.scenarios[0])
    report = compare_runs(a, b, resamples=RESAMPLES)
    assert report.scenarios == [a.scenarios[0]] and report.only_b == ["other"]
    assert any("left out" in n and "other" in n for n in report.notes)
    with pytest.raises(ValueError, match="alpha"):
        compare_runs(a, a, alpha=1.5)


def test_overloaded_side_and_profiles_are_caveats() -> None:
    a = make_run(seed=1, calls=40)
    b = make_run(seed=2, calls=40, overloaded=True, label="B<1>")
    b.profile = "burst 50"
    notes = compare_runs(a, b, resamples=RESAMPLES).notes
    assert any(n.startswith("B<1>: the lab was overloaded") for n in notes)
    assert any("different load profiles" in n for n in notes)


def test_write_ab_report(tmp_path: pathlib.Path) -> None:
    a = make_run(seed=1, calls=200, label="<old>")
    b = make_run(seed=2, calls=200, latency_median_ms=380, label="new & fast")
    report = write_ab_report(a, b, tmp_path / "ab", resamples=RESAMPLES)
    document = json.loads((tmp_path / "ab" / "ab.json").read_text("utf-8"))
    assert document == json.loads(json.dumps(report.as_dict()))
    assert document["overall"]["test"]["n_a"] == report.calls_a
    html = (tmp_path / "ab" / "ab.html").read_text("utf-8")
    assert "A/B: &lt;old&gt; vs new &amp; fast" in html and "<old>" not in html
    assert html.count("<svg ") == 1 and "Turn latency, cumulative" in html
    for size in report.sample_sizes:
        assert size.sentence in html
    for section in ("ab-success", "ab-latency", "ab-sample-size", "ab-notes"):
        assert f"id='{section}'" in html


def test_runs_without_latencies(run: RunResult) -> None:
    for c in run.calls:
        c.turns = []
        c.time_to_first_word_ms = None
    report = compare_runs(run, run, resamples=RESAMPLES)
    for lat in report.latencies:
        assert lat.n_a == 0 and lat.median_diff is None and lat.mann_whitney.p_value is None
        assert not lat.significant

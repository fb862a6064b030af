"""A seeded generator of plausible ``RunResult``s for the report tests.

Every failure category (and two ``setup_<code>`` ones) occurs at least once, calls
overlap in time, latencies are log-normal with a slow tail, and the timeline is derived
from the calls themselves, as the engine would record it. The same seed gives the same
run, so the reports built from it can be compared.
"""

from __future__ import annotations

import random

from trunkline.lab.report.stats import percentile
from trunkline.lab.results import (
    FAILURE_CATEGORIES,
    CallResult,
    ExpectationResult,
    LabHealth,
    MediaQuality,
    RunResult,
    TimelinePoint,
    Transport,
    TurnResult,
)

SCENARIOS = ("book_appointment", "cancel_order", "transfer_to_human")
#: Every failure the lab can report, including SIP statuses: each occurs at least once.
ALL_FAILURES = (*FAILURE_CATEGORIES, "setup_486", "setup_503")
TARGET = "sip:127.0.0.1:5060"


def make_turns(rng: random.Random, latency_median_ms: float) -> list[TurnResult]:
    turns: list[TurnResult] = []
    t = 0.0
    for i in range(rng.randint(2, 6)):
        t += rng.uniform(1500, 4000)
        latency = rng.lognormvariate(0, 0.35) * latency_median_ms
        if rng.random() < 0.02:
            latency *= 4  # the slow tail: a tool call, a cold model
        kind = "barge_in" if i > 0 and rng.random() < 0.15 else "say"
        turns.append(
            TurnResult(
                index=i,
                kind=kind,
                text=f"caller line {i}",
                caller_end_ms=t,
                agent_start_ms=t + latency,
                latency_ms=latency,
                barge_reaction_ms=rng.uniform(80, 400) if kind == "barge_in" else None,
                heard=f"agent reply {i}",
                expect_ok=True,
            )
        )
        t += latency
    return turns


def make_call(
    rng: random.Random,
    index: int,
    failure: str | None,
    latency_median_ms: float,
    success: float,
    wer_scale: float,
) -> CallResult:
    scenario = SCENARIOS[index % len(SCENARIOS)]
    transport: Transport = "ws" if index % 5 == 0 else "sip"
    seed = rng.randrange(2**31)
    call = CallResult(
        index=index,
        scenario=scenario,
        target=TARGET if transport == "sip" else "ws://127.0.0.1:8080/media",
        transport=transport,
        seed=seed,
        replay=f"trunkline pretest scenarios.yaml --target {TARGET} --replay {seed}",
        agent_call_id=f"call-{index}",
    )
    if failure is not None and failure.startswith("setup"):
        call.failure = failure
        call.setup_status = int(failure[6:]) if failure[6:].isdigit() else None
        call.failure_detail = f"INVITE answered {failure[6:]}" if call.setup_status else failure
        call.duration_ms = rng.uniform(50, 5000)
        return call
    call.setup_ms = rng.lognormvariate(0, 0.3) * 60
    call.setup_status = 200 if transport == "sip" else None
    call.time_to_first_word_ms = rng.lognormvariate(0, 0.3) * latency_median_ms * 0.5
    call.turns = make_turns(rng, latency_median_ms)
    call.duration_ms = (call.turns[-1].agent_start_ms or 0.0) + rng.uniform(1000, 3000)
    call.talk_over_ms = rng.choice([0.0, 0.0, rng.uniform(100, 900)])
    if rng.random() < 0.1:
        call.dead_air_ms = [rng.uniform(2100, 6000)]
    frames = int(call.duration_ms / 20)
    lost = int(frames * rng.uniform(0, 0.03))
    if transport == "sip":
        call.media = MediaQuality(
            packets_expected=frames,
            packets_received=frames - lost,
            loss_pct=100 * lost / frames,
            jitter_ms=rng.uniform(1, 15),
            r_factor=93 - 2.5 * (100 * lost / frames),
            mos=round(4.4 - 0.1 * (100 * lost / frames) - rng.uniform(0, 0.3), 2),
        )
        call.wer = wer_scale * rng.choice([0.0, 0.0, 0.05, 0.1, 0.25])
        call.wer_words = rng.randint(4, 40)
    if scenario == "transfer_to_human":
        call.transfer_requested = rng.random() < 0.9
        call.transfer_target = "sip:human@127.0.0.1" if call.transfer_requested else ""
        detail = "" if call.transfer_requested else "no REFER before hangup"
        call.expectations.append(ExpectationResult("transfer", call.transfer_requested, detail))
    call.hangup_by = "caller"
    call.failure = failure
    if failure is not None:
        call.failure_detail = f"synthetic {failure} <in turn {len(call.turns)}> & more"
    call.task_success = failure is None and all(e.ok for e in call.expectations)
    if call.task_success and rng.random() > success:
        call.task_success = False
        call.turns[-1].expect_ok = False
        call.turns[-1].expect_detail = "heard 'sorry?' where 'booked' was expected"
    return call


def timeline(calls: list[CallResult], duration_s: float) -> list[TimelinePoint]:
    points = []
    for second in range(int(duration_s) + 1):
        t = float(second)
        active = [c for c in calls if c.offset_s <= t < c.offset_s + (c.duration_ms or 0.0) / 1000]
        window = [c for c in calls if t - 5 <= c.offset_s <= t]
        latencies = [x for c in window for x in c.turn_latencies_ms]
        points.append(
            TimelinePoint(
                t_s=t,
                active_calls=len(active),
                started=sum(1 for c in calls if c.offset_s <= t),
                failed=sum(1 for c in calls if c.failure and c.offset_s <= t),
                turn_latency_p50_ms=percentile(latencies, 50),
                turn_latency_p95_ms=percentile(latencies, 95),
            )
        )
    return points


def make_run(
    seed: int = 7,
    calls: int = 300,
    *,
    latency_median_ms: float = 450.0,
    success: float = 0.95,
    failure_rate: float = 0.08,
    wer_scale: float = 1.0,
    label: str = "",
    overloaded: bool = False,
) -> RunResult:
    """A run of ``calls`` calls over about ``calls / 5`` seconds; see the module docstring."""
    rng = random.Random(seed)
    results = []
    rate_per_s = 5.0
    for i in range(calls):
        if i < len(ALL_FAILURES):
            failure: str | None = ALL_FAILURES[i]
        elif rng.random() < failure_rate:
            failure = rng.choice(ALL_FAILURES)
        else:
            failure = None
        call = make_call(rng, i, failure, latency_median_ms, success, wer_scale)
        call.offset_s = i / rate_per_s + rng.uniform(0, 0.2)
        results.append(call)
    for call in results:
        call.concurrency = sum(
            1
            for c in results
            if c.offset_s <= call.offset_s < c.offset_s + (c.duration_ms or 0.0) / 1000
        )
    duration = max(c.offset_s + (c.duration_ms or 0.0) / 1000 for c in results) if results else 0
    return RunResult(
        target=TARGET,
        profile="ramp 5/s",
        scenarios=list(SCENARIOS),
        started_at="2025-01-02T03:04:05Z",
        duration_s=duration,
        seed=seed,
        calls=results,
        timeline=timeline(results, duration),
        lab=LabHealth(
            send_lateness_p99_ms=25.0 if overloaded else 1.2,
            cpu_pct=190.0 if overloaded else 35.0,
            overloaded=overloaded,
            note="send lateness p99 25 ms > 10 ms" if overloaded else "",
        ),
        label=label,
    )

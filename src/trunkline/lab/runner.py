"""A pretest run in one process: start calls on the load profile, watch, collect.

Theory of operation
-------------------
The run's seed gives call ``i`` its own seed and scenario
(:func:`~trunkline.lab.scenario_plan.script_for`), so any call can be replayed alone.
Calls are tasks of one :class:`~trunkline.lab.engine.Lab`:

- **open model** (arrival rate): call ``i`` starts at the profile's ``i``-th arrival
  time, however many are still running (as real callers do);
- **closed model** (concurrency): whenever fewer calls run than the profile asks for
  at that moment, more start.

A runner may drive one :class:`Share` of a run (``--workers``, :mod:`trunkline.lab.fanout`):
part ``k`` of ``n`` makes the calls whose index is ``k`` mod ``n``, an open profile's at
their planned times (so the processes together make the planned arrivals), a closed
profile's at ``k``'s share of the concurrency. Its clock starts at a shared ``start_at``.

Once a second a :class:`~trunkline.lab.results.TimelinePoint` records active calls and
the turn latency of calls that ended in the last ``WINDOW_S``. The lab watches itself:
its pacer's send lateness and its CPU. When those pass ``LATE_P99_MS`` or
``CPU_LIMIT_PCT`` the run is marked overloaded, and the verdict says "inconclusive"
rather than blaming the target.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from time import monotonic
from typing import Protocol

from trunkline.lab.breakpoint import BreakpointSearch
from trunkline.lab.engine import Lab
from trunkline.lab.legs import sleep_until
from trunkline.lab.profiles import BreakpointProfile, LoadModel, LoadProfile, Profile
from trunkline.lab.report.stats import percentile
from trunkline.lab.results import CallResult, LabHealth, RunResult, TimelinePoint
from trunkline.lab.scenario import Scenario
from trunkline.lab.scenario_plan import script_for
from trunkline.lab.script import CallScript

log = logging.getLogger(__name__)

#: The lab's own send lateness (p99) past which its timing is not trusted: 5 ms is a
#: quarter of a frame, and the same bound the runtime's pacer is held to.
LATE_P99_MS = 5.0
#: Lab CPU (100 = one core) past which it is saturated and its figures may be its own.
CPU_LIMIT_PCT = 90.0
#: Calls that ended within this many seconds feed a timeline point's percentiles.
WINDOW_S = 10.0
#: How often the closed model tops concurrency up.
CLOSED_TICK_S = 0.05
#: After the profile's last start, how long running calls may take to finish.
DRAIN_LIMIT_S = 180.0
#: A share that starts this much after the shared start time ran its first calls late
#: (it was still preparing): its timing does not match the plan, so it is overloaded.
LATE_START_S = 1.0


@dataclass(frozen=True, slots=True)
class Share:
    """The calls one lab process makes: those whose index is ``part`` mod ``parts``."""

    part: int = 0
    parts: int = 1

    def __post_init__(self) -> None:
        if not 0 <= self.part < self.parts:
            raise ValueError(f"share {self.part} of {self.parts} does not exist")

    def owns(self, index: int) -> bool:
        return index % self.parts == self.part

    def of(self, level: int) -> int:
        """This part's share of ``level`` calls in progress (the parts' shares add up to
        ``level``; the first parts take the remainder)."""
        return (level + self.parts - 1 - self.part) // self.parts


@dataclass
class RunPlan:
    """Everything a run needs besides the lab."""

    scenarios: Sequence[Scenario]
    profile: Profile
    seed: int
    label: str = ""
    replay: int | None = None  # run only call number ``replay`` of this seed
    variables: dict[str, str] | None = None  # override the scenarios' ``vars``


class Progress(Protocol):
    """What the runner reports as it goes (``report.live.LiveProgress`` implements it)."""

    def call_started(self) -> None:
        """A call began."""

    def call_finished(self, result: CallResult) -> None:
        """A call ended."""

    def lab_health(self, health: LabHealth) -> None:
        """The lab's own load, once a second."""


class _Quiet:
    def call_started(self) -> None:
        pass

    def call_finished(self, result: CallResult) -> None:
        pass

    def lab_health(self, health: LabHealth) -> None:
        pass


class Runner:
    """Drives one run (see the module docstring)."""

    def __init__(
        self,
        lab: Lab,
        plan: RunPlan,
        progress: Progress | None = None,
        *,
        share: Share = Share(),
        start_at: float | None = None,
        on_start: Callable[[int], None] | None = None,
    ) -> None:
        """Args:
        share: the part of the run's calls this runner makes (all of them by default).
        start_at: the run's start on the ``monotonic()`` clock, shared with the other
            parts; None starts when the lab is prepared.
        on_start: called with a call's index as it starts.
        """
        if share.parts > 1 and isinstance(plan.profile, BreakpointProfile):
            raise ValueError("a breakpoint search runs in one process")
        self.lab = lab
        self.plan = plan
        self.share = share
        self.start_at = start_at
        self.on_start = on_start
        self.progress: Progress = progress or _Quiet()
        self.results: list[CallResult] = []
        self.timeline: list[TimelinePoint] = []
        self._tasks: set[asyncio.Task[CallResult]] = set()
        self._started = 0
        self._t0 = 0.0
        self._late_max_p99 = 0.0
        self.breakpoint: dict[str, object] | None = None

    def script(self, index: int) -> CallScript:
        return script_for(self.plan.scenarios, self.plan.seed, index, variables=self.plan.variables)

    async def run(self) -> RunResult:
        """Run the profile to its end and return every call's result."""
        plan = self.plan
        started_at = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
        await self.lab.prepare(self.prewarm_scripts())
        late_start = 0.0
        if self.start_at is not None:
            late_start = max(0.0, monotonic() - self.start_at)
            await sleep_until(self.start_at)
        cpu0 = _cpu_seconds()
        self._t0 = t0 = monotonic() if self.start_at is None else self.start_at
        watcher = asyncio.create_task(self._watch())
        try:
            profile = plan.profile
            if plan.replay is not None:
                self._start(plan.replay, 0.0)
            elif isinstance(profile, BreakpointProfile):
                await self._breakpoint(profile)
            else:
                await self._hold(profile, 0)
            await self._drain()
        finally:
            watcher.cancel()
            for task in self._tasks:
                task.cancel()
            await asyncio.gather(watcher, *self._tasks, return_exceptions=True)
        wall = monotonic() - t0
        health = self._health(cpu0, wall, late_start)
        self.results.sort(key=lambda r: r.index)
        return RunResult(
            target=self.lab.target.text,
            profile=plan.profile.text,
            scenarios=[s.name for s in plan.scenarios],
            started_at=started_at,
            duration_s=round(wall, 3),
            seed=plan.seed,
            calls=self.results,
            timeline=self.timeline,
            lab=health,
            label=plan.label,
            breakpoint=self.breakpoint,
        )

    # --- load models -------------------------------------------------------------------

    async def _hold(self, profile: LoadProfile, first: int) -> int:
        """Run one shaped profile from now on; returns the next call index."""
        t0 = monotonic()
        index = first
        share = self.share
        if profile.model is LoadModel.OPEN:
            for at in profile.arrivals(derive(self.plan.seed, first)):
                if share.owns(index):
                    await sleep_until(t0 + at)
                    self._start(index, monotonic() - self._t0)
                index += 1
            return index
        started = 0  # calls of this share; its n-th has index first + part + n * parts
        while (now := monotonic() - t0) < profile.duration_s:
            want = share.of(profile.concurrency_at(now)) - self.lab.active
            for _ in range(max(0, want)):
                offset = share.part + started * share.parts
                if offset >= profile.max_calls:
                    break
                self._start(first + offset, monotonic() - self._t0)
                started += 1
            await asyncio.sleep(CLOSED_TICK_S)
        return first + started * share.parts

    async def _breakpoint(self, profile: BreakpointProfile) -> None:
        """Hold level after level until one fails ``passes``; record the knee."""
        search = BreakpointSearch(profile)
        index = 0
        level = search.next_level()
        while level is not None:
            before = len(self.results)
            first = index
            index = await self._hold(profile.hold_profile(level), index)
            await self._drain()
            held = [r for r in self.results[before:] if r.index >= first]
            passed, figures = level_passes(held)
            level = search.report(level, passed, figures)
        result = search.result
        self.breakpoint = {
            "knee": result.knee,
            "first_failure": result.first_failure,
            "reached_max": result.reached_max,
            "steps": [
                {"level": s.level, "passed": s.passed, **dict(s.figures)} for s in result.steps
            ],
        }

    def _start(self, index: int, offset_s: float) -> None:
        task = asyncio.create_task(self.lab.call(self.script(index), index, offset_s))
        self._tasks.add(task)
        task.add_done_callback(self._done)
        self._started += 1
        if self.on_start is not None:
            self.on_start(index)
        self.progress.call_started()

    def _done(self, task: asyncio.Task[CallResult]) -> None:
        self._tasks.discard(task)
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:  # Lab.call never raises; a bug here must not hide the rest
            log.error("a call task failed: %r", exc)
            return
        result = task.result()
        result.replay = f"--seed {self.plan.seed} --replay {result.index}"
        self.results.append(result)
        self.progress.call_finished(result)

    async def _drain(self) -> None:
        deadline = monotonic() + DRAIN_LIMIT_S
        while self._tasks and monotonic() < deadline:
            await asyncio.wait(set(self._tasks), timeout=max(0.0, deadline - monotonic()))

    def prewarm_scripts(self) -> list[CallScript]:
        """Enough planned calls to render every line the scenarios can say."""
        count = 1 if self.plan.replay is not None else min(200, self.plan.profile.max_calls)
        count = max(1, count)
        first = self.plan.replay or 0
        return [self.script(first + i) for i in range(count)]

    # --- watching ----------------------------------------------------------------------

    async def _watch(self) -> None:
        cpu_prev, t_prev = _cpu_seconds(), monotonic()
        while True:
            await asyncio.sleep(1.0)
            now = monotonic()
            cutoff = now - self._t0 - WINDOW_S
            recent = [
                lat
                for r in self.results
                if r.offset_s + (r.duration_ms or 0) / 1000 >= cutoff
                for lat in r.turn_latencies_ms
            ]
            self.timeline.append(
                TimelinePoint(
                    t_s=round(now - self._t0, 2),
                    active_calls=self.lab.active,
                    started=self._started,
                    failed=sum(1 for r in self.results if r.failure is not None),
                    turn_latency_p50_ms=percentile(recent, 50),
                    turn_latency_p95_ms=percentile(recent, 95),
                )
            )
            cpu = _cpu_seconds()
            late = self.lab.pacer.lateness.percentile(99) * 1000
            self._late_max_p99 = max(self._late_max_p99, late)
            self.lab.pacer.lateness.reset()
            self.progress.lab_health(
                LabHealth(
                    send_lateness_p99_ms=round(late, 2),
                    cpu_pct=round(100 * (cpu - cpu_prev) / max(1e-6, now - t_prev), 1),
                )
            )
            cpu_prev, t_prev = cpu, now

    def _health(self, cpu0: float, wall: float, late_start: float = 0.0) -> LabHealth:
        cpu_pct = 100 * (_cpu_seconds() - cpu0) / max(wall, 1e-6)
        late = max(self._late_max_p99, self.lab.pacer.lateness.percentile(99) * 1000)
        notes = []
        if late_start > LATE_START_S:
            notes.append(f"the lab was ready {late_start:.1f} s after the run's shared start")
        if late > LATE_P99_MS:
            notes.append(f"the lab sent its audio up to {late:.1f} ms late (p99 in some second)")
        if cpu_pct > CPU_LIMIT_PCT:
            notes.append(f"the lab used {cpu_pct:.0f}% of a core")
        return LabHealth(
            send_lateness_p99_ms=round(late, 2),
            cpu_pct=round(cpu_pct, 1),
            overloaded=bool(notes),
            note="; ".join(notes) + ("; its timing figures are not trusted" if notes else ""),
        )


#: A breakpoint level passes when its calls meet these (the readiness defaults for the
#: figures that load moves: turn latency, setup failures, and calls that failed at all).
LEVEL_TURN_P95_MS = 800.0
LEVEL_MAX_FAILED = 0.15


def level_passes(calls: Sequence[CallResult]) -> tuple[bool, dict[str, float]]:
    """Whether one breakpoint level held, and the figures it was judged on."""
    if not calls:
        return False, {}
    latencies = [lat for c in calls for lat in c.turn_latencies_ms]
    p95 = percentile(latencies, 95)
    failed = sum(1 for c in calls if c.failure is not None) / len(calls)
    figures = {"calls": float(len(calls)), "failed_share": round(failed, 4)}
    if p95 is not None:
        figures["turn_latency_p95_ms"] = p95
    ok = failed <= LEVEL_MAX_FAILED and (p95 is None or p95 <= LEVEL_TURN_P95_MS)
    return ok, figures


def derive(seed: int, n: int) -> int:
    """A sub-seed for the arrivals of the profile held from call ``n`` on."""
    return seed * 1_000_003 + n


def _cpu_seconds() -> float:
    times = os.times()
    return times.user + times.system

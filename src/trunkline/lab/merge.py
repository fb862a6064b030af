"""Fan-in: the messages of a run's workers, merged into one :class:`RunResult`.

Each share of the run (a local process or a Redis worker, see
:mod:`trunkline.lab.job`) reports its call starts, results, a tick a second and its own
lab health at the end. :class:`RunMerge` turns those into what one process would have
recorded: every call once, a timeline sampled once a second (calls in progress summed
over the shares, turn latency over the calls that ended in the last ``WINDOW_S``), live
progress, and the lab's health.

A share that is *lost* (its process died, or it went silent) leaves calls without a
result: every call it started, and for an open profile every call it was planned to
make, becomes a ``lab_worker_lost`` failure, and its health is marked overloaded, so
the verdict is "inconclusive" and names the share, never blaming the target.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from time import monotonic
from typing import Any

from trunkline.lab.profiles import LoadModel, LoadProfile
from trunkline.lab.report.stats import percentile
from trunkline.lab.results import WORKER_LOST, CallResult, LabHealth, RunResult, TimelinePoint
from trunkline.lab.runner import WINDOW_S, Progress, RunPlan, Share, derive
from trunkline.lab.scenario_plan import script_for

log = logging.getLogger(__name__)


@dataclass
class PartState:
    """What the coordinator knows of one share."""

    part: int
    name: str
    ready: bool = False
    ended: bool = False
    lost: str | None = None
    active: int = 0
    cpu_pct: float = 0.0
    late_p99_ms: float = 0.0
    health: LabHealth | None = None
    started: dict[int, float] = field(default_factory=dict)  # index -> offset_s
    last_heard: float = field(default_factory=monotonic)

    @property
    def finished(self) -> bool:
        return self.ended or self.lost is not None


class RunMerge:
    """Merges the shares' messages (see the module docstring).

    Args:
        plan: the run's plan (as every share has it).
        target: the target's text (lost calls carry it).
        parts: how many shares.
        progress: fed as one process's runner would feed it.
    """

    def __init__(self, plan: RunPlan, target: str, parts: int, progress: Progress) -> None:
        self.plan = plan
        self.target = target
        self.progress = progress
        self.parts = [PartState(k, f"worker {k}") for k in range(parts)]
        self.results: dict[int, CallResult] = {}
        self.duplicates = 0
        self.timeline: list[TimelinePoint] = []
        self.t0: float | None = None  # the run's start on this process's monotonic clock
        self._failed = 0
        self._started = 0
        self._recent: list[CallResult] = []
        profile = plan.profile
        self.planned: dict[int, float] = {}
        if isinstance(profile, LoadProfile) and profile.model is LoadModel.OPEN:
            arrivals = profile.arrivals(derive(plan.seed, 0))
            self.planned = {i: at for i, at in enumerate(arrivals)}

    @property
    def done(self) -> bool:
        return all(p.finished for p in self.parts)

    def feed(self, part: int, message: dict[str, Any]) -> None:
        """One message from share ``part``; unknown kinds are logged and dropped."""
        state = self.parts[part]
        state.last_heard = monotonic()
        if state.lost is not None:
            return  # declared lost: its late words would count calls twice
        kind = message.get("t")
        if kind == "start":
            index = int(message["i"])
            state.started[index] = round(monotonic() - (self.t0 or monotonic()), 3)
            self._started += 1
            self.progress.call_started()
        elif kind == "result":
            self._add(CallResult.from_dict(message["call"]))
        elif kind == "tick":
            state.active = int(message["active"])
            state.cpu_pct = float(message["cpu_pct"])
            state.late_p99_ms = float(message["late_p99_ms"])
            self.progress.lab_health(self.live_health())
        elif kind in ("ready", "claimed"):
            state.ready = state.ready or kind == "ready"
            if message.get("worker"):
                state.name = str(message["worker"])
        elif kind == "end":
            state.health = LabHealth(**message["lab"])
            state.health.worker = state.name
            state.ended = True
            state.active = 0
        elif kind == "error":
            self.lose(part, f"it refused the job: {message.get('error')}")
        else:
            log.warning("%s sent an unknown message %r", state.name, kind)

    def lose(self, part: int, reason: str) -> None:
        """Share ``part`` is gone: its unfinished calls become lab failures."""
        state = self.parts[part]
        if state.finished:
            return
        state.lost = reason
        state.active = 0
        log.error("%s was lost: %s", state.name, reason)
        share = Share(part, len(self.parts))
        owed = {i: at for i, at in self.planned.items() if share.owns(i)}
        owed.update(state.started)
        for index in sorted(owed):
            if index not in self.results:
                self._add(self._lost_call(index, owed[index], f"{state.name} was lost: {reason}"))

    def lose_unfinished(self, reason: str) -> None:
        for state in self.parts:
            self.lose(state.part, reason)

    def sample(self) -> None:
        """One timeline point, as the one-process runner takes once a second."""
        now = monotonic() - (self.t0 or monotonic())
        cutoff = now - WINDOW_S
        self._recent = [
            r for r in self._recent if r.offset_s + (r.duration_ms or 0) / 1000 >= cutoff
        ]
        recent = [lat for r in self._recent for lat in r.turn_latencies_ms]
        self.timeline.append(
            TimelinePoint(
                t_s=round(now, 2),
                active_calls=sum(p.active for p in self.parts),
                started=self._started,
                failed=self._failed,
                turn_latency_p50_ms=percentile(recent, 50),
                turn_latency_p95_ms=percentile(recent, 95),
            )
        )

    def live_health(self) -> LabHealth:
        """The lab right now: the latest send lateness of its worst share, CPU summed."""
        return LabHealth(
            send_lateness_p99_ms=max((p.late_p99_ms for p in self.parts), default=0.0),
            cpu_pct=round(sum(p.cpu_pct for p in self.parts), 1),
        )

    def health(self) -> tuple[LabHealth, list[LabHealth]]:
        """The run's lab health and each share's: overloaded if any share was (or was lost)."""
        shares = []
        for state in self.parts:
            if state.health is not None:
                shares.append(state.health)
            else:
                note = f"lost: {state.lost}" if state.lost else "it never reported its health"
                shares.append(LabHealth(overloaded=True, note=note, worker=state.name))
        bad = [h for h in shares if h.overloaded]
        merged = LabHealth(
            send_lateness_p99_ms=max((h.send_lateness_p99_ms for h in shares), default=0.0),
            cpu_pct=round(sum(h.cpu_pct for h in shares), 1),
            overloaded=bool(bad),
            note="; ".join(f"{h.worker}: {h.note}" for h in bad),
        )
        return merged, shares

    def result(self, started_at: str, duration_s: float) -> RunResult:
        """The merged run (call it once every share is finished)."""
        lab, shares = self.health()
        plan = self.plan
        if self.duplicates:
            log.warning("%d call results arrived twice; each was counted once", self.duplicates)
        return RunResult(
            target=self.target,
            profile=plan.profile.text,
            scenarios=[s.name for s in plan.scenarios],
            started_at=started_at,
            duration_s=round(duration_s, 3),
            seed=plan.seed,
            calls=[self.results[i] for i in sorted(self.results)],
            timeline=self.timeline,
            lab=lab,
            label=plan.label,
            lab_workers=shares,
        )

    def _add(self, result: CallResult) -> None:
        if result.index in self.results:
            self.duplicates += 1
            return
        self.results[result.index] = result
        self._recent.append(result)
        if result.failure is not None:
            self._failed += 1
        self.progress.call_finished(result)

    def _lost_call(self, index: int, offset_s: float, detail: str) -> CallResult:
        plan = self.plan
        script = script_for(plan.scenarios, plan.seed, index, variables=plan.variables)
        return CallResult(
            index=index,
            scenario=script.scenario,
            target=self.target,
            transport="ws" if self.target.startswith("ws") else "sip",
            seed=script.seed,
            offset_s=round(offset_s, 3),
            failure=WORKER_LOST,
            failure_detail=detail,
            replay=f"--seed {plan.seed} --replay {index}",
        )

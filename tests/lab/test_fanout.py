# ruff: noqa: SIM117  (the lab needs the server it calls: nested on purpose, for reading)
"""``pretest --workers N``: a run over local lab processes against a real target.

The target is ``trunkline serve --app delay`` in its own process. Each test is a short
open profile of a few one-line calls, so a run takes a few seconds.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import pathlib
import re
import subprocess
import sys
from collections.abc import Iterator

import psutil  # type: ignore[import-untyped, unused-ignore]
import pytest

from trunkline.cli import main
from trunkline.lab.engine import Lab, Target
from trunkline.lab.fanout import run_local
from trunkline.lab.job import JobError, RunJob, split_ports
from trunkline.lab.profile_parse import parse_profile
from trunkline.lab.report import summarize, write_reports
from trunkline.lab.results import CallResult, LabHealth, RunResult
from trunkline.lab.runner import Runner, RunPlan, Share, derive
from trunkline.lab.scenario_build import load_scenarios
from trunkline.lab.scenario_plan import script_for

from .report.synth import make_run

SCENARIOS = """\
- name: greet
  persona: {gap_ms: [100, 300]}
  turns:
    - say: {variants: ["hello there", "hi there", "good morning"]}
    - hangup: {}
- name: bye
  turns:
    - say: "bye now"
    - hangup: {}
"""
PROFILE = "constant:rate=4,duration=1,arrivals=even"
RTP = (44000, 44999)


@pytest.fixture(scope="module")
def delay_target() -> Iterator[str]:
    """``trunkline serve --app delay 200 500`` in its own process, shared by a module's
    tests (it keeps no state between calls); yields its SIP target."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "trunkline.cli", "serve", "--app", "delay", "200", "500",
         "--sip", "127.0.0.1:0", "--http", "127.0.0.1:0", "--rtp-ports", "43000-43999"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()  # the server prints its address once listening
        found = re.search(rb"sip:([0-9.]+):(\d+)", line)
        assert found, line
        yield f"sip:agent@{found.group(1).decode()}:{int(found.group(2))}"
    finally:
        proc.terminate()
        proc.wait(10)
        if proc.stdout is not None:
            proc.stdout.close()


def plan_for(tmp_path: pathlib.Path, profile: str = PROFILE, seed: int = 5) -> RunPlan:
    path = tmp_path / "scenarios.yaml"
    path.write_text(SCENARIOS)
    return RunPlan(load_scenarios([path]), parse_profile(profile), seed)


class Starts:
    """A progress that counts, and runs ``on_first_start`` once."""

    def __init__(self, on_first_start: object = None) -> None:
        self.started = 0
        self.finished: list[CallResult] = []
        self.health: list[LabHealth] = []
        self.on_first_start = on_first_start

    def call_started(self) -> None:
        self.started += 1
        if self.started == 1 and callable(self.on_first_start):
            self.on_first_start()

    def call_finished(self, result: CallResult) -> None:
        self.finished.append(result)

    def lab_health(self, health: LabHealth) -> None:
        self.health.append(health)


def planned_calls(plan: RunPlan) -> int:
    profile = plan.profile
    assert not isinstance(profile, type(None))
    return len(list(profile.arrivals(derive(plan.seed, 0))))  # type: ignore[union-attr]


async def test_two_workers_make_each_planned_call_once_as_one_process_does(
    tmp_path: pathlib.Path, delay_target: str
) -> None:
    plan = plan_for(tmp_path)
    async with Lab(Target.parse(delay_target), rtp_ports=RTP) as lab:
        one = await Runner(lab, plan).run()
    progress = Starts()
    two = await run_local(plan, delay_target, 2, rtp_ports=RTP, progress=progress)
    n = planned_calls(plan)
    assert n == 4
    assert [c.index for c in two.calls] == list(range(n))
    assert [(c.index, c.scenario, c.seed) for c in two.calls] == [
        (c.index, c.scenario, c.seed) for c in one.calls
    ]
    for call in two.calls:
        script = script_for(plan.scenarios, plan.seed, call.index)
        assert (call.scenario, call.seed) == (script.scenario, script.seed)
        assert call.failure is None, call.failure_detail
        assert call.replay == f"--seed {plan.seed} --replay {call.index}"
    # Both shares started on one clock: each call at its planned (even) arrival time.
    for a, b in zip(one.calls, two.calls, strict=True):
        assert abs(a.offset_s - b.offset_s) < 0.5, (a.offset_s, b.offset_s)
    assert [w.worker for w in two.lab_workers] == ["worker 0", "worker 1"]
    assert two.lab.overloaded == any(w.overloaded for w in two.lab_workers)
    assert progress.started == n and len(progress.finished) == n
    assert two.timeline and max(p.started for p in two.timeline) <= n


def _kill_one_worker() -> None:
    me = psutil.Process()
    workers = [p for p in me.children() if "trunkline.lab.worker" in " ".join(p.cmdline())]
    assert workers, "no worker process to kill"
    workers[0].kill()


async def test_a_killed_worker_leaves_lab_failures_and_an_inconclusive_verdict(
    tmp_path: pathlib.Path, delay_target: str
) -> None:
    plan = plan_for(tmp_path, "constant:rate=3,duration=2,arrivals=even")
    run = await asyncio.wait_for(
        run_local(plan, delay_target, 2, rtp_ports=RTP, progress=Starts(_kill_one_worker)),
        60,
    )
    n = planned_calls(plan)
    assert [c.index for c in run.calls] == list(range(n))
    lost = [c for c in run.calls if c.failure == "lab_worker_lost"]
    assert lost and all(c.lab_fault and "was lost" in c.failure_detail for c in lost)
    lost_worker = {c.index % 2 for c in lost}
    assert len(lost_worker) == 1  # one share died; the other made all of its calls
    (k,) = lost_worker
    assert all(c.failure is None for c in run.calls if c.index % 2 != k)
    assert run.lab.overloaded and f"worker {k}: lost" in run.lab.note
    summary = summarize(run)
    assert summary.lab_errors == len(lost)
    assert summary.measured_calls == n - len(lost)
    verdict = write_reports(run, tmp_path / "out")
    assert verdict.status == "inconclusive" and verdict.exit_code == 3
    assert f"worker {k}" in verdict.reason
    assert verdict.reason.startswith(f"{len(lost)} calls were lost with a lab process")


async def test_a_worker_refuses_a_malformed_job_and_says_why() -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "trunkline.lab.worker",
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    out, _ = await asyncio.wait_for(proc.communicate(b'{"version": 1, "run_id": "x"}\n'), 30)
    message = json.loads(out.splitlines()[0])
    assert message["t"] == "error" and "scenario_files" in message["error"]
    assert proc.returncode == 2


def test_jobs_read_back_and_refuse_what_is_wrong(tmp_path: pathlib.Path) -> None:
    plan = plan_for(tmp_path)
    job = RunJob(
        run_id="r1", scenario_files=(("a.yaml", SCENARIOS),), scenario_names=("greet", "bye"),
        profile=PROFILE, seed=5, target="sip:127.0.0.1:5060", part=1, parts=2,
    )  # fmt: skip
    back = RunJob.from_json(job.to_json())
    assert back == job and back.share == Share(1, 2)
    scenarios, profile = back.build()
    assert [s.name for s in scenarios] == [s.name for s in plan.scenarios]
    assert profile.text == plan.profile.text
    good = json.loads(job.to_json())
    for broken in (
        "not json",
        "[1, 2]",
        json.dumps({**good, "version": 99}),
        json.dumps({**good, "seed": "five"}),
        json.dumps({**good, "part": 2}),
        json.dumps({**good, "rtp_ports": [5, 1]}),
        json.dumps({k: v for k, v in good.items() if k != "target"}),
        json.dumps({**good, "mos_codec": "g729"}),
    ):
        with pytest.raises(JobError):
            RunJob.from_json(broken)
    plc = dataclasses.replace(job, mos_codec="g711-plc")
    assert RunJob.from_json(plc.to_json()).mos_codec == "g711-plc"
    old = {k: v for k, v in good.items() if k != "mos_codec"}  # a job from before the field
    assert RunJob.from_json(json.dumps(old)).mos_codec == "g711"
    with pytest.raises(JobError, match="not the run's"):
        dataclasses.replace(job, scenario_names=("other",)).build()
    with pytest.raises(JobError, match="does not parse"):
        dataclasses.replace(job, profile="constant:rate=-1").build()


def test_shares_split_concurrency_and_ports_without_overlap() -> None:
    for level in range(0, 12):
        for parts in (1, 2, 3, 5):
            shares = [Share(k, parts).of(level) for k in range(parts)]
            assert sum(shares) == level and max(shares) - min(shares) <= 1
    assert split_ports((40000, 40999), 4) == [
        (40000, 40249), (40250, 40499), (40500, 40749), (40750, 40999),
    ]  # fmt: skip
    with pytest.raises(ValueError, match="too few"):
        split_ports((40000, 40002), 2)
    with pytest.raises(ValueError):
        Share(2, 2)


def test_breakpoint_search_with_workers_is_refused(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(SCENARIOS)
    code = main([
        "pretest", str(path), "--target", "sip:127.0.0.1:9", "--workers", "2",
        "--profile", "breakpoint:start=1,step=1,max=3,hold=1", "--out", str(tmp_path / "o"),
    ])  # fmt: skip
    assert code == 2
    assert "breakpoint search runs in one process" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_run_as_dict_is_what_dataclasses_asdict_wrote() -> None:
    run = make_run(seed=3, calls=60)
    run.lab_workers = [LabHealth(cpu_pct=40.0, worker="worker 0")]
    run.breakpoint = {"knee": 4, "steps": [{"level": 2, "passed": True}]}
    doc = run.as_dict()
    assert doc == dataclasses.asdict(run)
    assert list(doc) == list(dataclasses.asdict(run))
    assert json.dumps(doc) == json.dumps(dataclasses.asdict(run))
    assert RunResult.from_dict(json.loads(json.dumps(doc))) == run


@pytest.mark.parametrize(("flag", "status"), [([], "not_measured"), (["--require-all"], "fail")])
def test_require_all_fails_a_figure_the_lab_could_not_measure(
    tmp_path: pathlib.Path, delay_target: str, flag: list[str], status: str
) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(SCENARIOS)
    out = tmp_path / "o"
    code = main([
        "pretest", str(path), "--target", delay_target, "--quiet", "--out", str(out),
        "--profile", "constant:rate=1,duration=1,arrivals=even", *flag,
    ])  # fmt: skip
    verdict = json.loads((out / "report.json").read_text())["verdict"]
    wer = next(c for c in verdict["checks"] if c["key"] == "wer_pct")
    assert wer["status"] == status  # no transcript URL: WER was not measured
    if flag:
        assert code != 0 and verdict["require_all"]

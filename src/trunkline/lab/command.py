"""``trunkline pretest``: call a voice agent with synthetic callers and judge its readiness.

    trunkline pretest SCENARIOS... --target sip:HOST:PORT | ws://HOST:PORT/media
        [--profile SPEC] [--out DIR] [--seed N] [--replay I] [--threshold KEY=VALUE]
        [--transcript-url URL] [--target-b TARGET]
        [--workers N | --redis URL --remote-workers K]

It writes ``DIR/report.json``, ``DIR/report.html`` and ``DIR/junit.xml`` and exits with
the verdict: 0 ready, 1 not ready, 3 inconclusive (the lab itself was overloaded), 2 for
a bad command line, scenario or profile. With ``--target-b`` the same calls (same seed)
go to a second target too, and ``DIR/ab.html`` / ``ab.json`` compare the two.

Fan-out: ``--workers N`` splits the run's calls over N lab processes on this machine
(call i goes to process i mod N; the same seed makes the same calls as one process).
``--redis URL --remote-workers K`` publishes the run as K jobs on a Redis stream for
``trunkline pretest-worker --redis URL`` processes on other machines, and waits for K of
them to claim them. Either way the results are merged into one report; a worker that
dies turns its unfinished calls into ``lab_worker_lost`` and the verdict inconclusive.
A breakpoint search runs in one process (fan-out refuses it, exit 2); ``--replay`` runs
its one call here, whatever ``--workers`` says.
"""

from __future__ import annotations

import argparse
import logging
import pathlib
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from trunkline.lab.engine import Target
    from trunkline.lab.results import RunResult
    from trunkline.lab.scenario import Scenario

log = logging.getLogger(__name__)

DEFAULT_PROFILE = "constant:rate=1,duration=20"


def add_pretest_parser(sub: Any) -> None:
    """Add ``pretest`` to the ``trunkline`` command's subcommands."""
    p = sub.add_parser(
        "pretest",
        help="call a voice agent with synthetic callers and judge its readiness",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("scenarios", nargs="+", metavar="SCENARIO", help="YAML files or directories")
    p.add_argument(
        "--target",
        required=True,
        help="sip:[USER@]HOST:PORT[;transport=tcp] or ws://HOST:PORT/PATH",
    )
    p.add_argument("--target-b", help="a second target for an A/B comparison")
    p.add_argument(
        "--profile",
        default=DEFAULT_PROFILE,
        help="load profile, e.g. constant:rate=5,duration=60 | "
        "closed:concurrency=50,duration=120 | ramp:from=1,to=20,duration=60 | "
        "spike:base=2,factor=8,at=20,for=10,duration=60 | "
        f"breakpoint:... (default {DEFAULT_PROFILE})",
    )
    p.add_argument("--out", default="pretest-report", metavar="DIR", help="where the reports go")
    p.add_argument(
        "--seed", type=int, default=1, help="the run's seed (every call derives from it)"
    )
    p.add_argument("--replay", type=int, metavar="I", help="run only call number I of --seed")
    p.add_argument(
        "--threshold",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a readiness threshold, e.g. ttfw_p95_ms=500 (repeatable)",
    )
    p.add_argument(
        "--transcript-url",
        metavar="URL",
        help="the agent's record of a call, with {call_id} (trunkline: "
        "http://HOST:PORT/calls/{call_id}); enables reply checks and WER",
    )
    p.add_argument(
        "--var", action="append", default=[], metavar="NAME=VALUE", help="scenario variable"
    )
    p.add_argument(
        "--rtp-ports", default="40000-49999", metavar="LO-HI", help="the lab's RTP ports"
    )
    p.add_argument(
        "--mos-codec",
        default="g711",
        choices=("g711", "g711-plc"),
        help="what the E-model assumes of the receiver: G.711 without packet loss "
        "concealment (default; trunkline's legs and most gateways' raw path) or with it",
    )
    p.add_argument(
        "--require-all",
        action="store_true",
        help="a threshold whose figure was not measured (WER without a transcript, MOS "
        "over WebSocket) fails the verdict instead of being skipped",
    )
    p.add_argument("--quiet", action="store_true", help="no live progress")
    p.add_argument(
        "--workers",
        type=int,
        default=1,
        metavar="N",
        help="lab processes on this machine; call i goes to process i mod N (default 1)",
    )
    p.add_argument(
        "--redis",
        metavar="URL",
        help="with --remote-workers: publish the run to pretest-workers through this Redis",
    )
    p.add_argument(
        "--remote-workers",
        type=int,
        metavar="K",
        help="split the run over K `trunkline pretest-worker` processes (needs --redis)",
    )
    p.add_argument(
        "--claim-timeout",
        type=float,
        default=30.0,
        metavar="S",
        help="with --remote-workers: how long to wait for the workers to claim the run",
    )


def add_worker_parser(sub: Any) -> None:
    """Add ``pretest-worker`` (a Redis-fed lab worker) to the ``trunkline`` subcommands."""
    p = sub.add_parser(
        "pretest-worker",
        help="run pretest jobs from a Redis stream (for pretest --remote-workers)",
        description="Take shares of pretest runs from the Redis stream that "
        "`trunkline pretest --redis URL --remote-workers K` publishes, make their calls "
        "and stream the results back; runs until SIGINT or SIGTERM.",
    )
    p.add_argument("--redis", required=True, metavar="URL", help="redis://HOST:PORT[/DB]")
    p.add_argument("--name", help="this worker's name in reports (default HOST-RANDOM)")


async def run_pretest(args: argparse.Namespace) -> int:
    """The ``pretest`` command; returns the exit code."""
    # Imported here, not at the top: ``trunkline serve`` should not load the lab.
    from trunkline.lab.engine import Target, TargetError
    from trunkline.lab.fanout import FanoutError
    from trunkline.lab.profile_parse import parse_profile
    from trunkline.lab.profiles import ProfileError
    from trunkline.lab.report import write_reports
    from trunkline.lab.report.ab import write_ab_report
    from trunkline.lab.report.verdict import ThresholdError, parse_thresholds
    from trunkline.lab.scenario import ScenarioError
    from trunkline.lab.scenario_build import load_scenarios

    try:
        scenarios = load_scenarios(args.scenarios)
        profile = parse_profile(args.profile)
        target = Target.parse(args.target)
        target_b = Target.parse(args.target_b) if args.target_b else None
        thresholds = parse_thresholds(args.threshold)
        variables = _pairs(args.var)
        lo, _, hi = args.rtp_ports.partition("-")
        rtp_ports = (int(lo), int(hi))
        _check_fanout_args(args, profile)
    except (ScenarioError, ProfileError, TargetError, ThresholdError, ValueError) as exc:
        print(f"trunkline pretest: {exc}", file=sys.stderr)
        return 2
    out = pathlib.Path(args.out)
    try:
        run_a = await _run(
            args, scenarios, profile, target, variables, rtp_ports, "A" if target_b else ""
        )
    except FanoutError as exc:
        print(f"trunkline pretest: {exc}", file=sys.stderr)
        return 2
    verdict = write_reports(run_a, out, thresholds, require_all=args.require_all)
    print(f"pretest: {verdict.sentence()}")
    print(f"pretest: report {out / 'report.html'}")
    if target_b is not None:
        try:
            run_b = await _run(args, scenarios, profile, target_b, variables, rtp_ports, "B")
        except FanoutError as exc:
            print(f"trunkline pretest: side B: {exc}", file=sys.stderr)
            return 2
        write_reports(run_b, out / "b", thresholds, require_all=args.require_all)
        write_ab_report(run_a, run_b, out, seed=args.seed)
        print(f"pretest: A/B comparison {out / 'ab.html'}")
    return verdict.exit_code


async def _run(
    args: argparse.Namespace,
    scenarios: list[Scenario],
    profile: Any,
    target: Target,
    variables: dict[str, str],
    rtp_ports: tuple[int, int],
    label: str,
) -> RunResult:
    from trunkline.lab.engine import Lab
    from trunkline.lab.report.live import LiveProgress
    from trunkline.lab.runner import Runner, RunPlan

    plan = RunPlan(
        scenarios, profile, args.seed, label=label, replay=args.replay, variables=variables
    )
    if args.replay is None and (args.workers > 1 or args.remote_workers):
        return await _fan_out(args, plan, target, rtp_ports)
    from trunkline.lab.emodel import codec_profile

    codec = codec_profile(args.mos_codec)
    lab = Lab(target, transcript_url=args.transcript_url, rtp_ports=rtp_ports, mos_codec=codec)
    async with lab:
        if args.quiet:
            return await Runner(lab, plan).run()
        with LiveProgress(title=f"pretest {target.text}") as progress:
            return await Runner(lab, plan, progress).run()


async def _fan_out(
    args: argparse.Namespace, plan: Any, target: Target, rtp_ports: tuple[int, int]
) -> RunResult:
    from trunkline.lab.fanout import run_local
    from trunkline.lab.report.live import LiveProgress
    from trunkline.lab.workers_redis import run_remote

    async def go(progress: Any) -> RunResult:
        if args.remote_workers:
            return await run_remote(
                plan, target.text, args.remote_workers, redis_url=args.redis,
                rtp_ports=rtp_ports, transcript_url=args.transcript_url,
                mos_codec=args.mos_codec, progress=progress,
                claim_timeout_s=args.claim_timeout,
            )  # fmt: skip
        return await run_local(
            plan, target.text, args.workers, rtp_ports=rtp_ports,
            transcript_url=args.transcript_url, mos_codec=args.mos_codec, progress=progress,
        )  # fmt: skip

    if args.quiet:
        return await go(None)
    with LiveProgress(title=f"pretest {target.text}") as progress:
        return await go(progress)


def _check_fanout_args(args: argparse.Namespace, profile: Any) -> None:
    """Usage errors of the fan-out options (exit 2 before anything starts)."""
    from trunkline.lab.profiles import BreakpointProfile

    if args.workers < 1:
        raise ValueError(f"--workers must be at least 1, not {args.workers}")
    if args.remote_workers is not None:
        if args.remote_workers < 1:
            raise ValueError(f"--remote-workers must be at least 1, not {args.remote_workers}")
        if not args.redis:
            raise ValueError("--remote-workers needs --redis URL")
        if args.workers > 1:
            raise ValueError("--workers (local) and --remote-workers cannot be combined")
    elif args.redis:
        raise ValueError("--redis needs --remote-workers K")
    fanned = args.workers > 1 or args.remote_workers is not None
    if fanned and args.replay is None and isinstance(profile, BreakpointProfile):
        raise ValueError(
            "a breakpoint search runs in one process (each level depends on the last); "
            "drop --workers / --remote-workers"
        )


def _pairs(items: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise ValueError(f"expected NAME=VALUE, got {item!r}")
        out[name] = value
    return out

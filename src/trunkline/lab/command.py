"""``trunkline pretest``: call a voice agent with synthetic callers and judge its readiness.

    trunkline pretest SCENARIOS... --target sip:HOST:PORT | ws://HOST:PORT/media
        [--profile SPEC] [--out DIR] [--seed N] [--replay I] [--threshold KEY=VALUE]
        [--transcript-url URL] [--target-b TARGET]

It writes ``DIR/report.json``, ``DIR/report.html`` and ``DIR/junit.xml`` and exits with
the verdict: 0 ready, 1 not ready, 3 inconclusive (the lab itself was overloaded), 2 for
a bad command line, scenario or profile. With ``--target-b`` the same calls (same seed)
go to a second target too, and ``DIR/ab.html`` / ``ab.json`` compare the two.
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
    p.add_argument("--quiet", action="store_true", help="no live progress")


async def run_pretest(args: argparse.Namespace) -> int:
    """The ``pretest`` command; returns the exit code."""
    # Imported here, not at the top: ``trunkline serve`` should not load the lab.
    from trunkline.lab.engine import Target, TargetError
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
    except (ScenarioError, ProfileError, TargetError, ThresholdError, ValueError) as exc:
        print(f"trunkline pretest: {exc}", file=sys.stderr)
        return 2
    out = pathlib.Path(args.out)
    run_a = await _run(
        args, scenarios, profile, target, variables, rtp_ports, "A" if target_b else ""
    )
    verdict = write_reports(run_a, out, thresholds)
    print(f"pretest: {verdict.sentence()}")
    print(f"pretest: report {out / 'report.html'}")
    if target_b is not None:
        run_b = await _run(args, scenarios, profile, target_b, variables, rtp_ports, "B")
        write_reports(run_b, out / "b", thresholds)
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
    async with Lab(target, transcript_url=args.transcript_url, rtp_ports=rtp_ports) as lab:
        if args.quiet:
            return await Runner(lab, plan).run()
        with LiveProgress(title=f"pretest {target.text}") as progress:
            return await Runner(lab, plan, progress).run()


def _pairs(items: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise ValueError(f"expected NAME=VALUE, got {item!r}")
        out[name] = value
    return out

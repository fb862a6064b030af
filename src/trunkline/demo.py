"""``trunkline demo``: the main job, on the embedded defaults.

1. It starts the Acme support agent (``examples/acme/agent.yaml``: pocketsphinx ASR,
   espeak-ng TTS, the demo CRM) in a child ``trunkline serve`` process.
2. It runs a short pretest against that agent with the Acme scenarios: about 50 calls
   on a ramp, over SIP, with the agent's transcripts fetched from its records API.
3. It prints the readiness verdict and where the HTML report is.
4. It leaves the agent up, with its browser phone page, until Ctrl+C (``--once`` stops
   instead).

The agent runs in its own process so that the lab (this process) and the agent do not
share an event loop: the lab's figures are taken at the caller, as a real caller's
would be, and the lab's own lateness is not the agent's. The agent runs at a lower CPU
priority (``nice``), so that on a small machine the lab keeps its clock. The verdict is informative
here, not the demo's exit status: on a small machine the embedded agent may well be
"not ready", and the report says why. The exit status is 0 when the pretest ran and
wrote its reports, 2 when something kept it from running.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import pathlib
import re
import signal
import sys
from collections.abc import AsyncIterator
from typing import Any

#: The default load: a ramp from one call every 5 s to 1.5 calls/s over a minute, which
#: places about 50 calls (capped at 50); each Acme call lasts 15-40 s.
DEFAULT_PROFILE = "ramp:from=0.2,to=1.5,duration=60,max_calls=50,arrivals=even"
#: How long the agent may take to start: the ASR worker pool loads its model per worker.
AGENT_START_TIMEOUT_S = 120.0
#: The agent (and its ASR workers) run this much nicer than the lab: on one small machine
#: the lab must keep its 20 ms clock to measure honestly, and the agent is measured with
#: the CPU that is left, as it would be on a machine of its own that size.
AGENT_NICENESS = 5
#: How long the agent may take to stop on SIGTERM before it is killed.
AGENT_STOP_TIMEOUT_S = 15.0

_SERVING = re.compile(r"trunkline: serving .* on sip:")
_CRM = re.compile(r"demo CRM at (http://\S+)")


class DemoError(Exception):
    """Something kept the demo from running; the message says what."""


def add_demo_parser(sub: Any) -> None:
    """Add ``demo`` to the ``trunkline`` command's subcommands."""
    from trunkline.cli import _host_port

    p = sub.add_parser(
        "demo",
        help="start the Acme agent, pretest it with ~50 synthetic calls, leave it up",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--sip", type=_host_port, default=("127.0.0.1", 5060), metavar="HOST:PORT")
    p.add_argument("--http", type=_host_port, default=("127.0.0.1", 8080), metavar="HOST:PORT")
    p.add_argument(
        "--transport",
        choices=("sip", "ws"),
        default="sip",
        help="how the lab calls the agent: SIP/RTP or a Media Streams WebSocket",
    )
    p.add_argument(
        "--profile", default=DEFAULT_PROFILE, help=f"the pretest's load (default {DEFAULT_PROFILE})"
    )
    p.add_argument("--out", default="demo-report", metavar="DIR", help="where the reports go")
    p.add_argument("--seed", type=int, default=1, help="the pretest's seed")
    p.add_argument("--agent", metavar="SPEC.yaml", help="another agent (default: the Acme one)")
    p.add_argument(
        "--scenarios", metavar="DIR", help="other scenarios (default: the Acme set)"
    )
    p.add_argument("--quiet", action="store_true", help="no live progress during the pretest")
    p.add_argument(
        "--once", action="store_true", help="stop after the pretest instead of staying up"
    )


def find_example(name: str) -> pathlib.Path:
    """The path of ``examples/acme/NAME`` in this checkout, or in the current directory."""
    here = pathlib.Path(__file__).resolve().parents[2] / "examples" / "acme" / name
    for candidate in (here, pathlib.Path("examples") / "acme" / name):
        if candidate.exists():
            return candidate
    raise DemoError(
        f"cannot find examples/acme/{name}; run the demo from a trunkline checkout "
        "or pass --agent and --scenarios"
    )


async def run_demo(args: argparse.Namespace) -> int:
    """The ``demo`` command; returns the exit status."""
    try:
        spec, scenarios, out = _paths(args)
        async with _agent(args, spec, out) as crm_url:
            status = await _pretest(args, scenarios, out, crm_url)
            if status == 2:
                return 2
            _print_next_steps(args, out)
            if not args.once:
                from trunkline.cli import _wait_for_signal

                await _wait_for_signal()
        return 0
    except DemoError as exc:
        print(f"trunkline demo: {exc}", file=sys.stderr)
        return 2


def _paths(args: argparse.Namespace) -> tuple[pathlib.Path, pathlib.Path, pathlib.Path]:
    """The agent spec, the scenarios and the (created) output directory."""
    spec = pathlib.Path(args.agent) if args.agent else find_example("agent.yaml")
    scenarios = pathlib.Path(args.scenarios) if args.scenarios else find_example("scenarios")
    for path in (spec, scenarios):
        if not path.exists():
            raise DemoError(f"{path} does not exist")
    out = pathlib.Path(args.out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DemoError(f"cannot create {out}: {exc}") from None
    return spec, scenarios, out


@contextlib.asynccontextmanager
async def _agent(
    args: argparse.Namespace, spec: pathlib.Path, out: pathlib.Path
) -> AsyncIterator[str]:
    """Run ``trunkline serve --agent SPEC --demo-crm`` in a child process; yields the
    demo CRM's URL once the agent serves. Its output goes to ``OUT/agent.log``."""
    (sip_host, sip_port), (http_host, http_port) = args.sip, args.http
    log_path = out / "agent.log"
    agent_dir = out / "agent"
    command = [
        "nice", "-n", str(AGENT_NICENESS), sys.executable, "-m", "trunkline", "serve",
        "--agent", str(spec), "--demo-crm",
        "--sip", f"{sip_host}:{sip_port}", "--http", f"{http_host}:{http_port}",
        "--records", str(agent_dir / "records.sqlite3"),
        "--spool-dir", str(agent_dir / "spool"),
    ]  # fmt: skip
    agent_dir.mkdir(exist_ok=True)
    print(f"demo: starting the agent {spec} (log: {log_path}) ...", flush=True)
    with log_path.open("wb") as log_file:
        child = await asyncio.create_subprocess_exec(
            *command, stdin=asyncio.subprocess.DEVNULL, stdout=log_file, stderr=log_file
        )
        try:
            crm_url = await _wait_until_serving(child, log_path)
            print(
                f"demo: agent up on sip:{sip_host}:{sip_port} and http://{http_host}:{http_port}",
                flush=True,
            )
            yield crm_url
        finally:
            await _stop(child)


async def _wait_until_serving(child: asyncio.subprocess.Process, log_path: pathlib.Path) -> str:
    """Poll the agent's log for its 'serving' line; the demo CRM's URL comes before it."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + AGENT_START_TIMEOUT_S
    while loop.time() < deadline:
        text = await asyncio.to_thread(log_path.read_text, errors="replace")
        crm = _CRM.search(text)
        if _SERVING.search(text) and crm:
            return crm.group(1)
        if child.returncode is not None:
            tail = "\n".join(text.strip().splitlines()[-5:])
            raise DemoError(f"the agent exited ({child.returncode}) before serving:\n{tail}")
        await asyncio.sleep(0.1)
    raise DemoError(f"the agent did not start within {AGENT_START_TIMEOUT_S:.0f} s; see {log_path}")


async def _stop(child: asyncio.subprocess.Process) -> None:
    if child.returncode is None:
        child.send_signal(signal.SIGTERM)
        try:
            async with asyncio.timeout(AGENT_STOP_TIMEOUT_S):
                await child.wait()
        except TimeoutError:
            child.kill()
            await child.wait()


async def _pretest(
    args: argparse.Namespace, scenarios: pathlib.Path, out: pathlib.Path, crm_url: str
) -> int:
    """Run ``trunkline pretest`` against the agent, in this process."""
    from trunkline.cli import build_parser
    from trunkline.lab.command import run_pretest

    (sip_host, sip_port), (http_host, http_port) = args.sip, args.http
    target = (
        f"sip:{sip_host}:{sip_port}"
        if args.transport == "sip"
        else f"ws://{http_host}:{http_port}/media"
    )
    argv = [
        "pretest", str(scenarios), "--target", target, "--profile", args.profile,
        "--out", str(out), "--seed", str(args.seed),
        "--transcript-url", f"http://{http_host}:{http_port}/calls/{{call_id}}",
        "--var", f"crm={crm_url}",
    ]  # fmt: skip
    if args.quiet:
        argv.append("--quiet")
    print(f"demo: trunkline {' '.join(argv)}", flush=True)
    return await run_pretest(build_parser().parse_args(argv))


def _print_next_steps(args: argparse.Namespace, out: pathlib.Path) -> None:
    (sip_host, sip_port), (http_host, http_port) = args.sip, args.http
    report = (out / "report.html").resolve()
    lines = [
        "",
        f"The report: {report}",
        f"  (file://{report} in a browser; report.json and junit.xml beside it)",
    ]
    if not args.once:
        lines += [
            "",
            "The Acme agent stays up. Try it:",
            f"  browser phone: http://{http_host}:{http_port}/phone",
            f"  SIP:           sip:acme@{sip_host}:{sip_port} (e.g. a softphone, or SIPp)",
            f"  records:       http://{http_host}:{http_port}/calls",
            "Press Ctrl+C to stop.",
        ]
    print("\n".join(lines), flush=True)


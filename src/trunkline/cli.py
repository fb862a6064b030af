"""The ``trunkline`` command: ``serve``, ``call`` and ``demo``."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from collections.abc import Callable, Coroutine
from contextlib import AsyncExitStack
from typing import TYPE_CHECKING, Any

from trunkline.net.leg import CallHandler

if TYPE_CHECKING:
    from trunkline.providers.asr import ASR
    from trunkline.providers.retry import ProviderMetrics
    from trunkline.providers.tts import TTS
    from trunkline.runtime.server import ServeConfig, Server

#: How long the start-up test sentence may take before the TTS is reported as not working.
TTS_PROBE_TIMEOUT_S = 10.0


def _host_port(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not host:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {text!r}")
    value = int(port)
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"port out of range in {text!r}")
    return host.strip("[]"), value


def _port_range(text: str) -> tuple[int, int]:
    low, sep, high = text.partition("-")
    if not sep or not low.isdigit() or not high.isdigit():
        raise argparse.ArgumentTypeError(f"expected LO-HI, got {text!r}")
    lo, hi = int(low), int(high)
    if not 1024 <= lo < hi <= 65535:
        raise argparse.ArgumentTypeError(f"RTP range {text!r} must be within 1024-65535, LO < HI")
    return lo, hi


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="trunkline", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="answer calls on SIP and WebSocket and run an app")
    serve.add_argument(
        "--app",
        nargs="+",
        default=["echo"],
        metavar="APP",
        help="'echo', 'playback FILE.wav' (plays the file, then hangs up), or "
        "'delay [FIRST_WORD_MS [REPLY_MS]]' (the lab's reference: greets and answers "
        "each utterance with a tone after exactly those delays)",
    )
    serve.add_argument("--sip", type=_host_port, default=("127.0.0.1", 5060), metavar="HOST:PORT")
    serve.add_argument("--http", type=_host_port, default=("127.0.0.1", 8080), metavar="HOST:PORT")
    serve.add_argument("--rtp-ports", type=_port_range, default=(20000, 29999), metavar="LO-HI")
    serve.add_argument(
        "--ring-ms", type=int, default=0, metavar="N", help="ring N ms before answer"
    )
    serve.add_argument("--max-calls", type=int, default=10_000, help="refuse beyond this (503)")
    serve.add_argument(
        "--agent",
        action="append",
        metavar="[MATCH=]SPEC.yaml",
        help="run this voice agent (a flow or llm spec) instead of --app. Repeat it to route by "
        "number: MATCH is the dialled number or name (SIP: Request-URI or To user part; "
        "WebSocket: /media/MATCH or the 'to' parameter); the agent given without MATCH "
        "takes the other calls, and without one they are refused",
    )
    serve.add_argument(
        "--demo-crm",
        action="store_true",
        help="with --agent: start the demo CRM and pass its address as vars.crm",
    )
    serve.add_argument(
        "--records",
        default="trunkline-records.sqlite3",
        metavar="PATH",
        help="with --agent: the SQLite file of call records",
    )
    serve.add_argument(
        "--spool-dir",
        default="trunkline-spool",
        metavar="DIR",
        help="with --agent: where call records wait while the database is unavailable",
    )

    from trunkline.lab.command import add_pretest_parser, add_worker_parser

    add_pretest_parser(sub)
    add_worker_parser(sub)

    from trunkline.demo import add_demo_parser

    add_demo_parser(sub)
    return parser


def make_app(spec: list[str]) -> CallHandler:
    """Resolve ``--app`` words into an app; raises SystemExit with a clear message."""
    name, args = spec[0], spec[1:]
    if name == "echo" and not args:
        from trunkline.apps.echo import echo

        return echo
    if name == "playback" and len(args) == 1:
        from trunkline.apps.playback import playback_app
        from trunkline.media.errors import WavError

        try:
            return playback_app(args[0])
        except (OSError, WavError) as exc:
            raise SystemExit(f"trunkline: cannot play {args[0]!r}: {exc}") from None
    if name == "delay" and len(args) <= 2 and all(a.isdigit() for a in args):
        from trunkline.apps.delay import DelayApp

        try:
            return DelayApp(*(int(a) for a in args))
        except ValueError as exc:
            raise SystemExit(f"trunkline: bad delay app: {exc}") from None
    raise SystemExit(
        f"trunkline: unknown app {' '.join(spec)!r}; use 'echo', 'playback FILE' or "
        "'delay [FIRST_WORD_MS [REPLY_MS]]'"
    )


async def _serve(args: argparse.Namespace) -> int:
    from trunkline.runtime.server import ServeConfig

    config = ServeConfig(
        sip_host=args.sip[0],
        sip_port=args.sip[1],
        http_host=args.http[0],
        http_port=args.http[1],
        rtp_low=args.rtp_ports[0],
        rtp_high=args.rtp_ports[1],
        ring_ms=max(0, args.ring_ms),
        max_calls=args.max_calls,
    )
    if args.agent:
        return await _serve_agent(args, config)
    from trunkline.runtime.server import Server

    return await _run_server(Server(config, make_app(args.app)), " ".join(args.app))


ProviderFactory = Callable[["ProviderMetrics"], tuple["ASR", "TTS"]]


def _embedded_providers(metrics: ProviderMetrics) -> tuple[ASR, TTS]:
    from trunkline.providers.embedded_asr import PocketsphinxASR
    from trunkline.providers.embedded_tts import EspeakTTS

    return PocketsphinxASR(metrics=metrics), EspeakTTS(metrics=metrics)


async def _serve_agent(
    args: argparse.Namespace,
    config: ServeConfig,
    providers: ProviderFactory = _embedded_providers,
) -> int:
    """``serve --agent [MATCH=]SPEC ...``: the providers, the stores and the agents' apps.

    The options are checked (syntax, MATCH given twice, two agents without MATCH) and
    every spec loaded before anything starts; any problem is one message and exit 2.
    Providers and stores that cannot start are reported the same way; a TTS that starts
    but cannot speak, and a ``brain: llm`` agent's chat model (built from its spec's
    ``llm:`` block, :mod:`trunkline.runtime.llm_setup`) that has no key or does not
    answer, are reported (stderr, ``/health``) and the server runs anyway.
    """
    from trunkline.agent import AgentError, AgentSpec, load_agent_spec
    from trunkline.api.metrics import RuntimeMetrics
    from trunkline.apps.agent import agents_runtime
    from trunkline.providers.errors import ProviderError
    from trunkline.runtime.llm_setup import build_llms, probe_llms
    from trunkline.runtime.routing import Route, Router, RoutingError, parse_agent_option
    from trunkline.runtime.server import Server
    from trunkline.runtime.stores import RecordStoreError

    try:
        routes = [Route(*parse_agent_option(text), label=text) for text in args.agent]
        Router(routes)
    except RoutingError as exc:
        print(f"trunkline: {exc}", file=sys.stderr)
        return 2
    specs: list[AgentSpec] = []
    for route in routes:
        try:
            specs.append(load_agent_spec(route.target))
        except (OSError, AgentError) as exc:
            print(f"trunkline: cannot load agent {route.target!r}: {exc}", file=sys.stderr)
            return 2
    names = ", ".join(
        spec.name if route.match is None else f"{spec.name} ({route.match})"
        for spec, route in zip(specs, routes, strict=True)
    )
    metrics = RuntimeMetrics()
    asr, tts = providers(metrics.providers)
    llms = build_llms(specs, metrics.providers, os.environ)
    async with AsyncExitStack() as stack:
        try:
            runtime = await stack.enter_async_context(
                agents_runtime(
                    specs,
                    asr=asr,
                    tts=tts,
                    records_db=args.records,
                    spool_dir=args.spool_dir,
                    demo_crm=args.demo_crm,
                    metrics=metrics,
                    llms=[setup.llm if setup is not None else None for setup in llms],
                )
            )
        except ProviderError as exc:
            print(f"trunkline: cannot start {names}: {exc.provider}: {exc}", file=sys.stderr)
            return 2
        except (AgentError, RecordStoreError) as exc:
            print(f"trunkline: cannot start {names}: {exc}", file=sys.stderr)
            return 2
        await _probe_tts(tts)
        await probe_llms(llms, metrics.health)  # logs a warning for each one that is down
        apps: list[Route[CallHandler]] = [
            Route(route.match, app, route.label)
            for route, app in zip(routes, runtime.apps, strict=True)
        ]
        server = Server(
            config,
            router=Router(apps),
            metrics=metrics,
            records=runtime.writer.backend,
            live_view=runtime.live_view,
        )
        return await _run_server(server, f"agents {names}" if len(specs) > 1 else names)


async def _probe_tts(tts: TTS) -> bool:
    """Render one word; a TTS that cannot is reported, not fatal (a remote one may come
    back; meanwhile calls skip the sentences it fails). True when it spoke."""
    from trunkline.providers.errors import ProviderError

    stream = tts.synthesize("ready")
    try:
        async with asyncio.timeout(TTS_PROBE_TIMEOUT_S):
            await anext(stream)
        return True
    except (ProviderError, TimeoutError, StopAsyncIteration) as exc:
        detail = str(exc) or type(exc).__name__
        print(
            f"trunkline: warning: text-to-speech {tts.label!r} does not work at start "
            f"({detail}); serving anyway, agents stay silent until it does",
            file=sys.stderr,
        )
        return False
    finally:
        aclose = getattr(stream, "aclose", None)
        if aclose is not None:
            await aclose()


async def _run_server(server: Server, what: str) -> int:
    try:
        await server.start()
    except OSError as exc:
        print(f"trunkline: cannot listen: {exc}", file=sys.stderr)
        return 2
    print(
        f"trunkline: serving {what} on sip:{server.sip_address[0]}:"
        f"{server.sip_address[1]} (udp+tcp), http://{server.http_address[0]}:"
        f"{server.http_address[1]} (ws /media)",
        flush=True,
    )
    await _wait_for_signal()
    await server.stop()
    return 0


async def _wait_for_signal() -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()


def run(coro: Coroutine[Any, Any, int]) -> int:
    """Run on uvloop: its UDP path is what makes a thousand calls per core possible."""
    import uvloop

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(coro)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if args.command == "serve":
        return run(_serve(args))
    if args.command == "pretest":
        from trunkline.lab.command import run_pretest

        return run(run_pretest(args))
    if args.command == "pretest-worker":
        from trunkline.lab.workers_redis import run_worker_command

        return run(run_worker_command(args))
    if args.command == "demo":
        from trunkline.demo import run_demo

        return run(run_demo(args))
    return 2


if __name__ == "__main__":
    sys.exit(main())

"""The ``trunkline`` command: ``serve``, ``call`` and ``demo``."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any

from trunkline.net.leg import CallHandler

if TYPE_CHECKING:
    from trunkline.runtime.server import ServeConfig


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
        help="'echo', or 'playback FILE.wav' (plays the file, then hangs up)",
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
        metavar="SPEC.yaml",
        help="run this voice agent (a flow spec) on every call, instead of --app",
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

    demo = sub.add_parser("demo", help="start the echo server, call it over SIP and WS, stay up")
    demo.add_argument("--sip", type=_host_port, default=("127.0.0.1", 5060), metavar="HOST:PORT")
    demo.add_argument("--http", type=_host_port, default=("127.0.0.1", 8080), metavar="HOST:PORT")
    demo.add_argument("--calls", type=int, default=5, help="calls to place over each transport")
    demo.add_argument(
        "--once", action="store_true", help="exit after the calls instead of staying up"
    )
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
    raise SystemExit(f"trunkline: unknown app {' '.join(spec)!r}; use 'echo' or 'playback FILE'")


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
    return await _run_server(config, make_app(args.app), " ".join(args.app))


async def _serve_agent(args: argparse.Namespace, config: ServeConfig) -> int:
    """``serve --agent``: the embedded providers, the stores and the agent app."""
    from trunkline.agent import AgentError, load_agent_spec
    from trunkline.apps.agent import agent_runtime
    from trunkline.providers.embedded_asr import PocketsphinxASR
    from trunkline.providers.embedded_tts import EspeakTTS
    from trunkline.providers.errors import ProviderError
    from trunkline.runtime.stores import RecordStoreError

    try:
        spec = load_agent_spec(args.agent)
    except (OSError, AgentError) as exc:
        print(f"trunkline: cannot load agent {args.agent!r}: {exc}", file=sys.stderr)
        return 2
    try:
        async with agent_runtime(
            spec,
            asr=PocketsphinxASR(),
            tts=EspeakTTS(),
            records_db=args.records,
            spool_dir=args.spool_dir,
            demo_crm=args.demo_crm,
        ) as app:
            return await _run_server(config, app, f"agent {spec.name}")
    except (AgentError, ProviderError, RecordStoreError) as exc:
        print(f"trunkline: cannot start agent {spec.name!r}: {exc}", file=sys.stderr)
        return 2


async def _run_server(config: ServeConfig, handler: CallHandler, what: str) -> int:
    from trunkline.runtime.server import Server

    server = Server(config, handler)
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
    if args.command == "demo":
        from trunkline.demo import run_demo

        return run(run_demo(args))
    return 2


if __name__ == "__main__":
    sys.exit(main())

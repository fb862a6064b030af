"""trunkline's side of ``agent_density.py``: ``trunkline serve --agent`` on fake providers.

Run by the benchmark (not by hand): ``python bench/agent_server.py --http HOST:PORT``.

This is ``trunkline serve --agent examples/acme/agent.yaml`` exactly as the command line
builds it (``cli._serve_agent``: the agent runtime, the SQLite record writer, the
session store, routing, the HTTP API, the WebSocket media route, the pacer, uvloop),
with the speech providers swapped for the fakes of ``trunkline.providers.fakes``:

- ASR: hears what ``agent_script.recognised_text`` says for the grammar it is given,
  ``--asr-final-ms`` after the pipeline's flush (the end of the turn), with no partial
  results (so no early endpointing: every turn ends on the endpoint silence);
- TTS: a 440 Hz tone, 65 ms per character, first chunk ``--tts-first-byte-ms`` after
  the request.

With ``--embedded`` the providers are the command line's own (``cli._embedded_providers``:
the PocketsphinxASR worker pool, one child process per CPU, and EspeakTTS), so the
server is ``trunkline serve --agent`` unchanged. The VAD is on (webrtcvad, as in
production). Event-loop lag is sampled in the process (``loop_lag``: SIGUSR1 resets,
SIGUSR2 prints a JSON line).
"""

from __future__ import annotations

import argparse
import cProfile
import logging
import sys

import agent_script
from loop_lag import LoopLag
from trunkline import cli
from trunkline.providers.asr import ASR
from trunkline.providers.fakes import FakeASR, FakeTTS
from trunkline.providers.retry import ProviderMetrics
from trunkline.providers.tts import TTS
from trunkline.runtime.server import ServeConfig

#: Audio offset of the fake recognizer's only script entry: never reached, so it never
#: emits a partial, and its text is the Final's.
NO_PARTIAL_MS = 10**9


def providers(args: argparse.Namespace) -> cli.ProviderFactory:
    """The fake ASR and TTS, built the way ``serve`` builds the embedded ones."""
    heard = agent_script.recognised_text(agent_script.load_spec())

    def script(_utterance: int, grammar: str | None) -> list[tuple[int, str]]:
        return [(NO_PARTIAL_MS, heard.get(grammar or "", ""))]

    def factory(metrics: ProviderMetrics) -> tuple[ASR, TTS]:
        asr = FakeASR(script, final_latency=args.asr_final_ms / 1000, metrics=metrics)
        tts = FakeTTS(first_byte_latency=args.tts_first_byte_ms / 1000, metrics=metrics)
        return asr, tts

    return factory


async def serve(args: argparse.Namespace) -> int:
    LoopLag().install()
    workdir = args.workdir
    argv = [
        "serve", "--agent", str(agent_script.ACME),
        "--http", args.http, "--sip", args.sip, "--rtp-ports", "40000-40999",
        "--max-calls", str(args.max_calls),
        "--records", f"{workdir}/records.sqlite3", "--spool-dir", f"{workdir}/spool",
    ]  # fmt: skip
    parsed = cli.build_parser().parse_args(argv)
    config = ServeConfig(
        sip_host=parsed.sip[0], sip_port=parsed.sip[1],
        http_host=parsed.http[0], http_port=parsed.http[1],
        rtp_low=parsed.rtp_ports[0], rtp_high=parsed.rtp_ports[1],
        max_calls=parsed.max_calls,
    )  # fmt: skip
    if args.embedded:
        return await cli._serve_agent(parsed, config)  # the embedded providers, as served
    return await cli._serve_agent(parsed, config, providers(args))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--http", required=True, metavar="HOST:PORT")
    parser.add_argument("--workdir", required=True, help="for the call records and spool")
    parser.add_argument("--sip", default="127.0.0.1:0", metavar="HOST:PORT")
    parser.add_argument("--max-calls", type=int, default=10_000)
    parser.add_argument("--asr-final-ms", type=float, default=150.0)
    parser.add_argument("--tts-first-byte-ms", type=float, default=100.0)
    parser.add_argument(
        "--embedded", action="store_true", help="the real embedded ASR and TTS, not the fakes"
    )
    parser.add_argument("--profile", metavar="PATH", help="write cProfile stats here on exit")
    args = parser.parse_args()
    # Per-call INFO lines would cost the server CPU that production would not spend on a
    # quiet log level; warnings and errors still show.
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if not args.profile:
        sys.exit(cli.run(serve(args)))
    profile = cProfile.Profile()  # costs the server about as much CPU again: not for figures
    profile.enable()
    try:
        code = cli.run(serve(args))
    finally:
        profile.disable()
        profile.dump_stats(args.profile)
    sys.exit(code)


if __name__ == "__main__":
    main()

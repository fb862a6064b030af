"""The lab's caller engine: one process, many calls, one pacer, one SIP stack.

:class:`Lab` owns what every call in the process shares: the pacer that sends every
caller's audio on the 20 ms grid, one SIP user agent (with a port pool for RTP) or one
HTTP session for WebSocket streams, and the voice book. ``Lab.call(script)`` runs one
synthetic call to the end and returns its :class:`~trunkline.lab.results.CallResult`;
it never raises for anything the target does: refusals, silence, garbage and dropped
streams become failure categories. A bug of ours becomes ``lab_error``, counted apart.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from time import monotonic
from typing import Any, cast
from urllib.parse import urlsplit

import aiohttp
import numpy as np

from trunkline.lab import emodel, expect, kws
from trunkline.lab.caller import CallTrace, ScriptRunner, hang_up_quietly
from trunkline.lab.impair import Impairments
from trunkline.lab.legs import LabRtpLeg, LabWsCaller
from trunkline.lab.measure import fill_timing
from trunkline.lab.quality import fill_media, fill_wer
from trunkline.lab.results import CallResult
from trunkline.lab.script import BargeIn, CallScript, Say
from trunkline.lab.voices import Utterance, VoiceBook
from trunkline.net.calls import CallFailedError, SipCalls
from trunkline.net.leg import LegEvent, MediaLeg
from trunkline.net.pacer import Pacer
from trunkline.net.rtp_leg import SipRtpLeg
from trunkline.net.rtp_pool import PortPoolExhausted, RtpPortPool
from trunkline.net.ws_client import TransferRequested
from trunkline.sip.events import Peer

log = logging.getLogger(__name__)

#: How long the lab waits for a call to be answered (INVITE to 200, or the WebSocket).
SETUP_TIMEOUT_S = 10.0
#: The transcript is written when the agent's call ends, a moment after ours; it is
#: asked for a few times over this long before the lab gives up on it.
TRANSCRIPT_WAIT_S = 3.0


class TargetError(ValueError):
    """The ``--target`` is not ``sip:HOST:PORT[;transport=tcp]`` or ``ws(s)://HOST:PORT/PATH``."""


@dataclass(frozen=True, slots=True)
class Target:
    """What the lab calls."""

    text: str
    kind: str  # "sip" | "ws"
    host: str
    port: int
    user: str = "agent"
    transport: str = "udp"

    @classmethod
    def parse(cls, text: str) -> Target:
        if text.startswith(("ws://", "wss://")):
            parts = urlsplit(text)
            if not parts.hostname:
                raise TargetError(f"no host in {text!r}")
            port = parts.port or (443 if parts.scheme == "wss" else 80)
            return cls(text, "ws", parts.hostname, port)
        if not text.startswith("sip:"):
            raise TargetError(f"target {text!r} must start with sip: or ws://")
        rest, _, params = text[4:].partition(";")
        transport = "udp"
        for param in filter(None, params.split(";")):
            key, _, value = param.partition("=")
            if key.lower() == "transport" and value.lower() in ("udp", "tcp"):
                transport = value.lower()
            else:
                raise TargetError(f"unknown SIP target parameter {param!r} in {text!r}")
        user, _, hostport = rest.rpartition("@")
        host, sep, digits = hostport.rpartition(":")
        if not sep or not digits.isdigit() or not host or not 0 < int(digits) < 65536:
            raise TargetError(f"expected sip:[USER@]HOST:PORT, got {text!r}")
        return cls(text, "sip", host.strip("[]"), int(digits), user or "agent", transport)

    @property
    def uri(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"sip:{self.user}@{host}:{self.port}"


class SetupFailed(Exception):
    def __init__(self, category: str, detail: str, status: int | None = None) -> None:
        super().__init__(detail)
        self.category = category
        self.detail = detail
        self.status = status


async def _refuse_incoming(leg: MediaLeg) -> None:
    """The lab only calls out; a call to it is hung up at once."""
    await leg.hangup("the lab does not take calls")


class Lab:
    """Everything one lab process shares between its calls (an async context manager).

    Args:
        target: what to call.
        transcript_url: a URL with ``{call_id}`` serving the agent's record of the call
            (trunkline: ``http://HOST:PORT/calls/{call_id}``); None when the target has none.
        rtp_ports: the lab's own RTP port range (SIP targets).
        local_host: the address the lab's SIP and RTP bind to (default: loopback of the
            target's family).
        mos_codec: the receiver the E-model scores (its ``Ie``/``Bpl``): G.711 without
            packet loss concealment by default, as trunkline's legs and the lab's ear
            hear it; ``emodel.G711_PLC`` for a phone or gateway that conceals losses.
        keyword_spotting: check ``contains`` reply expectations by keyword spotting on
            the received audio when there is no ``transcript_url`` (:mod:`.kws`).
        spotter_workers: processes of the keyword spotter's pool (default: half the
            cores); started only when a call needs it.
    """

    def __init__(
        self,
        target: Target,
        *,
        transcript_url: str | None = None,
        rtp_ports: tuple[int, int] = (40000, 49999),
        local_host: str | None = None,
        voices: VoiceBook | None = None,
        setup_timeout_s: float = SETUP_TIMEOUT_S,
        mos_codec: emodel.CodecProfile = emodel.G711_NO_PLC,
        keyword_spotting: bool = True,
        spotter_workers: int | None = None,
    ) -> None:
        self.target = target
        self.transcript_url = transcript_url
        self.rtp_ports = rtp_ports
        self.local_host = local_host or ("::1" if ":" in target.host else "127.0.0.1")
        self.voices = voices or VoiceBook()
        self.setup_timeout_s = setup_timeout_s
        self.mos_codec = mos_codec
        self.keyword_spotting = keyword_spotting
        self.spotter_workers = spotter_workers
        self._spotter: kws.Spotter | None = None
        self.pacer = Pacer()
        self.sip: SipCalls | None = None
        self.session: aiohttp.ClientSession | None = None
        self.active = 0

    async def __aenter__(self) -> Lab:
        self.pacer.start()
        self.session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))
        if self.target.kind == "sip":
            lo, hi = self.rtp_ports
            self.sip = SipCalls(
                host=self.local_host,
                port=0,
                pool=RtpPortPool(self.local_host, lo, hi),
                pacer=self.pacer,
                handler=_refuse_incoming,
                leg_class=LabRtpLeg,
                on_refer=_accept_refer,
            )
            await self.sip.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self.sip is not None:
            await self.sip.close()
        if self.session is not None:
            await self.session.close()
        await self.voices.aclose()
        if self._spotter is not None:
            self._spotter.close()
        self.pacer.stop()

    async def prepare(self, scripts: list[CallScript]) -> None:
        """Render every line the scripts say (so no call waits on the synthesiser)."""
        lines: set[Any] = set()
        for script in scripts:
            lines |= script.lines()
        await self.voices.prewarm(lines)

    # --- one call -------------------------------------------------------------------------

    async def call(self, script: CallScript, index: int = 0, offset_s: float = 0.0) -> CallResult:
        """Run one call to the end. Never raises for what the target does."""
        self.active += 1
        result = CallResult(
            index=index,
            scenario=script.scenario,
            target=self.target.text,
            transport="sip" if self.target.kind == "sip" else "ws",
            seed=script.seed,
            offset_s=round(offset_s, 3),
            concurrency=self.active,
        )
        try:
            await self._call(script, result)
        except Exception as exc:  # a bug of ours: counted apart, never blamed on the target
            log.exception("call %d: lab error", index)
            result.failure, result.failure_detail = "lab_error", f"{type(exc).__name__}: {exc}"
        finally:
            self.active -= 1
        result.task_success = (
            result.failure is None
            and all(e.ok for e in result.expectations)
            and all(t.expect_ok is not False for t in result.turns)
        )
        if result.failure is None and not result.task_success:
            result.failure = "expectation"
            result.failure_detail = _first_failed(result)
        return result

    async def _call(self, script: CallScript, result: CallResult) -> None:
        impairments = self._impairments(script)
        lines = await self._lines(script, impairments)
        dialled = monotonic()
        try:
            leg = await self._connect(script, impairments)
        except SetupFailed as failed:
            result.failure, result.failure_detail = failed.category, failed.detail
            result.setup_status = failed.status
            return
        # Over SIP, the moment the 200 OK arrived, not when this task got to run again.
        trace = CallTrace(answered_at=leg.answered_at or monotonic())
        result.setup_ms = round((trace.answered_at - dialled) * 1000, 2)
        result.setup_status = 200 if isinstance(leg, LabRtpLeg) else None
        result.agent_call_id = leg.call_id
        tap = self._tap(leg, script)
        runner = ScriptRunner(leg, script, lines, trace)
        if isinstance(leg, LabWsCaller):
            runner.sink.on_transfer = lambda target: leg.answer_transfer(target, True, 200)
        try:
            async with asyncio.timeout(script.max_duration_s):
                await runner.run()
        except TimeoutError:
            trace.timed_out = True
        finally:
            if not leg.closed.done():
                trace.hangup_by = trace.hangup_by or "caller"
            await hang_up_quietly(leg)
        trace.ended_at = trace.ended_at or monotonic()
        timeline = fill_timing(result, trace, leg.ear, script)
        fill_media(result, leg, self.mos_codec)
        result.hangup_by = cast(Any, trace.hangup_by)
        result.transfer_requested = trace.transfer_target is not None
        result.transfer_target = trace.transfer_target or ""
        transcript = await self._transcript(leg.call_id)
        expect.check_turns(result, script, timeline, transcript)
        if transcript is None and tap is not None:
            if self._spotter is None:
                self._spotter = kws.Spotter(self.spotter_workers)
            await kws.check_turns(result, script, timeline, tap, self._spotter)
        fill_wer(result, script, transcript)
        expect.check_call(result, script)
        for check in script.expect.checks:
            result.expectations.append(await self._check_url(check, leg.call_id))
        _categorize(result, script, trace, leg)

    def _tap(self, leg: LabRtpLeg | LabWsCaller, script: CallScript) -> kws.TapEar | None:
        """Keep the agent's audio of this call when keyword spotting will need it."""
        if not self.keyword_spotting or self.transcript_url or not kws.needs_spotting(script):
            return None
        # Swapped in right after the answer: frames heard before it (early media) are
        # in the ear's segments but not in the tap, which only matters for a greeting.
        tap = kws.TapEar.replacing(leg.ear)
        leg.ear = tap
        return tap

    def _impairments(self, script: CallScript) -> Impairments | None:
        spec = script.impairment
        if spec is None or spec.is_clean:
            return None
        babble = (
            [np.frombuffer(line.pcm, dtype="<i2") for line in self.voices.rendered()]
            if spec.noise is not None and spec.noise.kind == "babble"
            else []
        )
        return Impairments(
            script.seed,
            noise=spec.noise,
            loss=spec.loss,
            jitter=spec.jitter,
            drift_ppm=spec.drift_ppm,
            level_db=spec.level_db,
            codec=spec.codec.value if spec.codec is not None else None,
            babble=babble,
        )

    async def _lines(
        self, script: CallScript, impairments: Impairments | None
    ) -> dict[str, Utterance]:
        """The call's lines: the shared renderings, or this call's impaired copies."""
        lines: dict[str, Utterance] = {}
        for n, step in enumerate(script.steps):
            if not isinstance(step, Say | BargeIn):
                continue
            line = await self.voices.say(script.persona, step.text)
            if impairments is not None:
                samples = np.frombuffer(line.pcm, dtype="<i2")
                impaired = impairments.audio(samples, utterance=n).samples
                # The speech span stays the clean line's: noise must not move "the
                # caller's last speech sample" (drift moves it by ppm, well under 1 ms).
                line = Utterance(
                    Utterance.from_pcm(impaired.astype("<i2").tobytes()).pcm,
                    line.speech_start_s,
                    line.speech_end_s,
                )
            lines[step.text] = line
        return lines

    async def _connect(
        self, script: CallScript, impairments: Impairments | None
    ) -> LabRtpLeg | LabWsCaller:
        target = self.target
        if target.kind == "ws":
            return await self._connect_ws(script)
        assert self.sip is not None
        peer = Peer(target.transport, target.host, target.port)
        try:
            leg = await self.sip.dial(target.uri, peer, answer_timeout_s=self.setup_timeout_s)
        except CallFailedError as exc:
            if exc.status == 408:
                raise SetupFailed("setup_timeout", f"no answer: {exc}", 408) from None
            raise SetupFailed(f"setup_{exc.status}", str(exc), exc.status) from None
        except PortPoolExhausted as exc:
            raise SetupFailed("lab_error", f"the lab ran out of RTP ports: {exc}") from None
        except OSError as exc:
            raise SetupFailed("setup_refused", str(exc)) from None
        assert isinstance(leg, LabRtpLeg)
        if impairments is not None and (impairments.loss or impairments.jitter):
            leg.netem = impairments.scheduler()
        return leg

    async def _connect_ws(self, script: CallScript) -> LabWsCaller:
        assert self.session is not None
        try:
            async with asyncio.timeout(self.setup_timeout_s):
                caller = await LabWsCaller.connect(
                    self.target.text,
                    self.pacer,
                    session=self.session,
                    custom_parameters={"scenario": script.scenario},
                )
        except TimeoutError:
            raise SetupFailed("setup_timeout", "no WebSocket in time") from None
        except aiohttp.WSServerHandshakeError as exc:
            raise SetupFailed(
                f"setup_{exc.status}", f"handshake refused: {exc.message}", exc.status
            ) from None
        except (aiohttp.ClientError, OSError) as exc:
            raise SetupFailed("setup_refused", f"{type(exc).__name__}: {exc}") from None
        assert isinstance(caller, LabWsCaller)
        return caller

    async def _transcript(self, call_id: str) -> list[dict[str, Any]] | None:
        if not self.transcript_url or self.session is None:
            return None
        url = self.transcript_url.format(call_id=call_id)
        deadline = monotonic() + TRANSCRIPT_WAIT_S
        while True:
            try:
                async with self.session.get(url) as response:
                    if response.status == 200:
                        doc = await response.json()
                        record = doc.get("record", doc) if isinstance(doc, dict) else {}
                        transcript = record.get("transcript") if isinstance(record, dict) else None
                        if isinstance(transcript, list) and record.get("ended_at") is not None:
                            return [e for e in transcript if isinstance(e, dict)]
            except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
                log.debug("transcript of %s: %s", call_id, exc)
            if monotonic() >= deadline:
                return None
            await asyncio.sleep(0.2)

    async def _check_url(self, check: Any, call_id: str) -> Any:
        assert self.session is not None
        url = check.url.format(call_id=call_id)
        try:
            async with self.session.get(url) as response:
                body: object = None
                with contextlib.suppress(ValueError, aiohttp.ContentTypeError):
                    body = await response.json()
                return expect.check_url_result(check, response.status, body, "")
        except (aiohttp.ClientError, TimeoutError) as exc:
            return expect.check_url_result(check, None, None, f"{type(exc).__name__}: {exc}")


def _accept_refer(leg: SipRtpLeg, target: str) -> tuple[int, str]:
    """A lab caller takes any transfer: it records it and reports success (NOTIFY 200)."""
    leg._emit(cast(LegEvent, TransferRequested(target)))
    return 200, "OK"


def _categorize(result: CallResult, script: CallScript, trace: CallTrace, leg: Any) -> None:
    """The failure category of a call that got through setup."""
    if result.failure is not None:
        return
    ear = leg.ear
    if (
        trace.hangup_by == "agent"
        and trace.steps_done < len(script.steps)
        and script.expect.hangup_by != "agent"
    ):
        result.failure = "stream_closed"
        result.failure_detail = (
            f"the target ended the call after {trace.steps_done} of {len(script.steps)} "
            f"steps ({trace.remote_hangup_reason})"
        )
        return
    if not ear.frames:
        garbage = leg.stats.bad_packets if isinstance(leg, LabRtpLeg) else leg.garbage.total
        if garbage:
            result.failure = "garbage_media"
            result.failure_detail = f"{garbage} undecodable packets or messages, no audio"
        else:
            result.failure, result.failure_detail = "no_media", "answered, but no audio arrived"
        return
    if trace.timed_out:
        result.failure = "max_duration"
        result.failure_detail = f"still going after {script.max_duration_s:.0f} s"
        return
    if not ear.segments:
        result.failure, result.failure_detail = "no_reply", "audio arrived, but never speech"


def _first_failed(result: CallResult) -> str:
    for turn in result.turns:
        if turn.expect_ok is False:
            return f"turn {turn.index}: {turn.expect_detail}"
    for check in result.expectations:
        if not check.ok:
            return f"{check.name}: {check.detail}"
    return ""

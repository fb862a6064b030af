"""Keyword spotting on the agent's audio, for agents that expose no transcript.

An agent without a transcript can still be checked for what it *said*: a turn's
``contains`` phrases are looked for in the agent audio the lab received in that turn's
reply window (:mod:`trunkline.lab.measure`). What this can and cannot do:

- ``contains`` phrases made of dictionary words (numbers are spelled out first) are
  spotted, each with its own decode (:mod:`trunkline.lab.kws_worker` says how and why
  that way). A turn whose phrases were all found passes; one with a phrase not found
  fails. Both are marked ``checked_by = "kws"``, so a report tells them from transcript
  checks: a spotter misses some phrases and finds some that were not said (the rates
  measured on espeak-ng speech through G.711 are in ``bench/README.md``).
- A regex (``matches``) cannot be checked on audio: such a turn stays not checked,
  with that reason (after its phrases, if it has some, were spotted), never passed.
- A phrase with a word the recogniser does not know leaves the turn not checked.

Cost and memory: the lab keeps the received audio only for calls that need it (no
transcript URL and some ``contains`` expectation), and only while the agent speaks
(:class:`TapEar`: 8 kB per second of agent speech, capped at ``MAX_KEPT_S``). Decoding
runs in a small process pool, never on the event loop, with at most
``MAX_PENDING_PER_WORKER`` decodes queued per worker; a decode costs about 50 ms of CPU
per second of reply audio per phrase (``bench/kws_accuracy.py``, provisional).
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
from collections.abc import Mapping
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from trunkline.lab import kws_worker
from trunkline.lab.ear import ALAW_LOUD, ULAW_LOUD, Ear
from trunkline.lab.measure import Timeline
from trunkline.lab.results import CallResult, TurnResult
from trunkline.lab.script import CallScript, Expect
from trunkline.rtp.g711 import alaw_decode, ulaw_decode

log = logging.getLogger(__name__)

#: Agent speech kept per call: past this (15 minutes of talk) the rest is not spotted.
MAX_KEPT_S = 900.0
#: Silence put between two stretches of kept audio (they were apart in time), so the
#: spotter does not read the end of one and the start of the next as one word.
GAP_S = 0.2
#: Decodes waiting per worker before more calls wait their turn in the lab's loop.
MAX_PENDING_PER_WORKER = 2
#: A decode that takes longer than this is abandoned (the turn is left not checked).
DECODE_TIMEOUT_S = 60.0

NOT_REGEX = "a regex cannot be checked by keyword spotting"


def needs_spotting(script: CallScript) -> bool:
    """Whether any step of ``script`` expects phrases that spotting could check."""
    return any(
        getattr(step, "expect", None) is not None and step.expect.contains  # type: ignore[union-attr]
        for step in script.steps
    )


class TapEar(Ear):
    """An :class:`Ear` that also keeps the audio heard while the agent speaks.

    A frame is kept when it belongs to a stretch of speech or its hangover, with the time
    it was heard; silence between stretches is not kept.
    """

    __slots__ = ("_budget", "heard")

    def __init__(self, table: bytes, hangover_s: float) -> None:
        super().__init__(table, hangover_s)
        #: ``(time heard, G.711 payload)`` of every frame kept.
        self.heard: list[tuple[float, bytes]] = []
        self._budget = int(MAX_KEPT_S * 8000)

    @classmethod
    def replacing(cls, ear: Ear) -> TapEar:
        """A tap that carries on from ``ear`` (its codec, segments, frames, hooks)."""
        tap = cls(ULAW_LOUD, ear.hangover_s)  # the codec table is copied below
        for name in Ear.__slots__:
            setattr(tap, name, getattr(ear, name))
        return tap

    def hear(self, t: float, payload: bytes) -> None:
        Ear.hear(self, t, payload)
        if self.speaking(t) and self._budget > 0:
            self.heard.append((t, payload))
            self._budget -= len(payload)

    def pcm_between(self, start: float, end: float, alaw: bool = False) -> bytes:
        """The kept audio heard in ``[start, end)``, decoded to 8 kHz s16le."""
        decode = alaw_decode if alaw else ulaw_decode
        gap = bytes(int(GAP_S * 8000) * 2)
        out: list[bytes] = []
        last_end: float | None = None
        for t, payload in self.heard:
            if not start <= t < end:
                continue
            if last_end is not None and t - last_end > 0.03:
                out.append(gap)
            out.append(decode(payload))
            last_end = t + len(payload) / 8000
        return b"".join(out)

    @property
    def is_alaw(self) -> bool:
        return self._table == ALAW_LOUD


class Spotter:
    """A bounded process pool that spots phrases in audio (started on first use).

    Args:
        workers: processes (default: half the cores, at least one): the lab's own
            pacer must keep its core.
    """

    def __init__(self, workers: int | None = None) -> None:
        self.workers = workers or max(1, (os.cpu_count() or 2) // 2)
        self._pool: ProcessPoolExecutor | None = None
        self._slots = asyncio.Semaphore(self.workers * MAX_PENDING_PER_WORKER)

    def _executor(self) -> ProcessPoolExecutor:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(
                self.workers,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=kws_worker.init,
            )
        return self._pool

    async def spot(self, pcm: bytes, phrases: tuple[str, ...]) -> dict[str, bool | None]:
        """Which ``phrases`` are said in ``pcm`` (see :func:`kws_worker.spot`).

        Raises:
            SpotterError: the worker died, timed out or failed.
        """
        async with self._slots:
            loop = asyncio.get_running_loop()
            try:
                future = loop.run_in_executor(self._executor(), kws_worker.spot, pcm, phrases)
                return await asyncio.wait_for(future, DECODE_TIMEOUT_S)
            except (BrokenProcessPool, TimeoutError, RuntimeError, OSError) as exc:
                if isinstance(exc, BrokenProcessPool):
                    self._pool = None  # the next call starts a fresh pool
                raise SpotterError(f"{type(exc).__name__}: {exc}") from exc

    def close(self) -> None:
        """Stop the workers (waiting for none of the queued decodes)."""
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None


class SpotterError(Exception):
    """The spotter could not decode (a dead or stuck worker)."""


def judge(expect: Expect, found: Mapping[str, bool | None]) -> tuple[bool | None, str, str]:
    """``(expect_ok, detail, heard)`` of a turn from the phrases spotted in its reply."""
    heard = ", ".join(p for p in expect.contains if found.get(p))
    unknown = [p for p in expect.contains if found.get(p) is None]
    missing = [p for p in expect.contains if found.get(p) is False]
    if missing:
        names = ", ".join(repr(m) for m in missing)
        return False, f"keyword spotting did not hear {names} in the reply", heard
    if unknown:
        names = ", ".join(repr(u) for u in unknown)
        return None, f"not checked: {names} has words the keyword spotter does not know", heard
    if expect.matches is not None:
        detail = f"not checked: /{expect.matches}/: {NOT_REGEX}"
        if expect.contains:
            detail += " (its phrases were heard)"
        return None, detail, heard
    return True, "", heard


async def check_turns(
    result: CallResult,
    script: CallScript,
    timeline: Timeline,
    tap: TapEar,
    spotter: Spotter,
) -> None:
    """Check the turns' reply expectations by spotting their phrases in the reply audio.

    Only turns with an expectation and no verdict yet are looked at; a regex-only
    expectation is marked not checked without decoding anything.
    """
    jobs: list[tuple[TurnResult, Expect, Any]] = []
    for position, turn in enumerate(result.turns):
        expect = getattr(script.steps[turn.index], "expect", None)
        if expect is None or turn.expect_ok is not None:
            continue
        if not expect.contains:
            turn.expect_detail = f"not checked: /{expect.matches}/: {NOT_REGEX}"
            continue
        window = timeline.window_of_turn(position)
        if window is None:
            continue
        lo, hi = timeline.bounds(window)
        pcm = tap.pcm_between(lo, hi, tap.is_alaw)
        jobs.append((turn, expect, spotter.spot(pcm, expect.contains)))
    outcomes = await asyncio.gather(*(job for _, _, job in jobs), return_exceptions=True)
    for (turn, expect, _), outcome in zip(jobs, outcomes, strict=True):
        if isinstance(outcome, BaseException):
            if not isinstance(outcome, SpotterError):
                raise outcome
            log.warning("keyword spotting failed: %s", outcome)
            turn.expect_detail = f"not checked: keyword spotting failed ({outcome})"
            continue
        turn.expect_ok, turn.expect_detail, turn.heard = judge(expect, outcome)
        turn.checked_by = "kws" if turn.expect_ok is not None else ""

"""Embedded ASR: pocketsphinx in a pool of worker processes, off the event loop.

Theory of operation
-------------------
Decoding is CPU-bound, so it runs in ``workers`` child processes, each a fresh
``python -m trunkline.providers.asr_worker`` (forking a process that runs an event loop
and threads is unsafe, and ``multiprocessing``'s spawn would re-import the caller's
``__main__``). Each worker talks over one socket pair, framed and pickled by
``multiprocessing.connection.Connection``, and has two threads in this process: a
writer that sends queued messages (a blocking ``send`` must never stall the loop) and a
reader that receives results and hands them to the loop with ``call_soon_threadsafe``.

Every stream of a call goes to the same worker (crc32 of the call id), so the grammars
of a call's flow stay compiled there; calls without an id are spread round-robin. A
stream buffers pushed frames and sends them in batches of ``batch_ms`` (100 ms: five
times fewer pickles and socket writes than per frame), and the rest on ``flush``.

Bounds: a worker's outbound queue holds at most ``max_backlog_ms`` of audio beyond the
socket's small kernel buffer (``SOCKET_BUFFER``, about 2 s more). A push
that would exceed it fails its stream with a retryable ``ProviderError`` ("overloaded")
instead of queueing: audio dropped silently would come back as a wrong transcript that
looks right, while an error lets the pipeline reprompt or fall back.

Worker crash: the reader sees the pipe close, and on the loop every stream of that
worker fails at once with a retryable ``APIConnectionError``; the slot restarts its
worker (at once the first time, then with a doubling delay while it keeps dying before
it is ready). Until the new worker is up, calls pinned to a dead slot go to a live one.

Measured on a 2-core dev VM with espeak-ng speech (3 voices, 140 and 175 wpm) cut to
8 kHz and sent through G.711 u-law, 60 utterances of a 10-phrase grammar with digit
loops (whole-sentence exact matches):

- 8 kHz decoded natively (the model's filterbank moved under 4 kHz in a copy of its
  feat.params): 0-6/60, unusable; upsampled to 16 kHz: 31/60 with pocketsphinx's
  defaults, 51/60 with ``asr_worker.GRAMMAR_OPTIONS``; 49/60 through this pool. The
  misses are "oh" inserted into digit strings; the literal phrases of the tests are
  recognised 44/45 across voices and rates. Band extension tricks (spectral folding,
  shifted or shaped noise in 4-8 kHz) did not help.
- Decode CPU: about 12 ms per second of audio with a grammar (~20 ms per utterance;
  twice that since grammar utterances are decoded in two passes, see ``asr_worker``),
  about 360 ms per second with the general model (~0.9 s per utterance): a core keeps
  up with ~80 grammar streams but fewer than 3 open-vocabulary ones.
- The general model on the same telephone audio is poor (roughly 4 words in 5 wrong);
  it is a fallback, not a way to run a flow.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import socket
import subprocess
import sys
import threading
import zlib
from collections import deque
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from trunkline.media.audio import SAMPLE_RATE
from trunkline.providers import asr_worker as w
from trunkline.providers.asr import ASR, ASRCapabilities, ASRStream, Final, Partial, WordTiming
from trunkline.providers.errors import APIConnectionError, ProviderError, ProviderUsageError
from trunkline.providers.retry import ProviderMetrics

__all__ = ["ASRStats", "PocketsphinxASR", "PocketsphinxStream"]

log = logging.getLogger(__name__)

#: Longest wait for the workers to load their models in ``start()``.
START_TIMEOUT = 60.0
#: Restart delays for a worker that dies before it is ready (a broken model dir would
#: otherwise respawn in a hot loop): doubling from the first to the last.
RESTART_DELAY_FIRST, RESTART_DELAY_MAX = 0.5, 10.0
#: Longest wait for a worker to exit after STOP before it is killed.
STOP_TIMEOUT = 2.0

#: Kernel send buffer towards a worker (bytes; Linux doubles it): about 2 s of audio.
SOCKET_BUFFER = 16 * 1024
#: Default bound on audio queued for one worker beyond the socket. Pushes may come in
#: bursts faster than real time (a replay, a test), and the writer thread only drains
#: between them, so a burst of up to 10 s is taken at once; a worker that falls further
#: behind than that is failing its callers anyway (every Final it owes is 10 s late).
MAX_BACKLOG_MS = 10_000

_BYTES_PER_MS = SAMPLE_RATE * 2 // 1000


@dataclass
class ASRStats:
    """Counters over the pool's life: finals, their audio and decode CPU seconds."""

    utterances: int = 0
    audio_seconds: float = 0.0
    cpu_seconds: float = 0.0
    overloaded_streams: int = 0
    worker_restarts: int = 0


class _Worker:
    """One worker process and its pipe threads (parent side)."""

    def __init__(self, pool: PocketsphinxASR, slot: int) -> None:
        self.pool = pool
        self.slot = slot
        self.ready = False
        self.dead = False
        self.streams: dict[int, PocketsphinxStream] = {}
        self.backlog = 0  # audio bytes queued, not yet written to the pipe
        self._outbox: deque[tuple[Any, ...]] = deque()
        self._cond = threading.Condition()
        self._stopping = False
        parent_sock, child_sock = socket.socketpair()
        # A small kernel buffer keeps the bound on queued audio meaningful: Linux's
        # default (~208 KB) alone would hide 13 s of audio behind a stalled worker.
        parent_sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SOCKET_BUFFER)
        self.conn = Connection(parent_sock.detach())
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-m", w.__name__, str(child_sock.fileno())],
                pass_fds=(child_sock.fileno(),),
                stdin=subprocess.DEVNULL,
                env=_child_env(),
            )
        finally:
            child_sock.close()  # else the reader never sees EOF when the child dies
        self.conn.send(pool.settings)
        loop = pool._loop
        self._reader = threading.Thread(
            target=self._read, args=(loop,), name=f"asr-read-{slot}", daemon=True
        )
        self._writer = threading.Thread(target=self._write, name=f"asr-write-{slot}", daemon=True)
        self._reader.start()
        self._writer.start()

    @property
    def pid(self) -> int:
        """The worker process id."""
        return self.process.pid

    def send(self, msg: tuple[Any, ...], audio_bytes: int = 0) -> None:
        """Queue ``msg`` for the worker (loop thread; never blocks)."""
        with self._cond:
            self._outbox.append(msg)
            self.backlog += audio_bytes
            self._cond.notify()

    def _write(self) -> None:
        while True:
            with self._cond:
                while not self._outbox and not self._stopping:
                    self._cond.wait()
                if not self._outbox:
                    return
                msg = self._outbox.popleft()
            try:
                self.conn.send(msg)
            except (OSError, ValueError):
                return  # the worker is gone; the reader reports it
            if msg[0] == w.AUDIO:
                with self._cond:
                    self.backlog -= len(msg[2])

    def _read(self, loop: asyncio.AbstractEventLoop) -> None:
        while True:
            try:
                msg = self.conn.recv()
            except (EOFError, OSError):
                break
            try:
                loop.call_soon_threadsafe(self.pool._on_message, self, msg)
            except RuntimeError:
                return  # the loop is closed
        try:
            self.process.wait(timeout=1.0)  # for the exit code in the error
        except subprocess.TimeoutExpired:
            pass
        try:
            loop.call_soon_threadsafe(self.pool._on_death, self)
        except RuntimeError:
            pass

    def stop(self) -> None:
        """Ask the worker to exit and let the writer thread end (loop thread)."""
        with self._cond:
            self._outbox.append((w.STOP, 0))
            self._stopping = True
            self._cond.notify()

    def join(self) -> None:
        """Wait for the process and threads to end (blocking: run in an executor)."""
        try:
            self.process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        with self._cond:
            self._stopping = True
            self._cond.notify()
        self._writer.join()
        self._reader.join()
        self.conn.close()


def _child_env() -> dict[str, str]:
    """Our environment, with this copy of trunkline first on the child's import path."""
    env = dict(os.environ)
    package_root = str(Path(w.__file__).resolve().parents[2])  # .../src (or site-packages)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_root, env.get("PYTHONPATH")]))
    return env


class PocketsphinxASR(ASR):
    """pocketsphinx recognition in a pool of worker processes (see the module docstring).

    Use ``async with PocketsphinxASR() as asr:`` or ``await asr.start()`` before
    ``stream()``, and ``aclose()`` after.

    Args:
        workers: worker processes (default: the CPU count).
        settings: decoder settings (model paths, search options).
        batch_ms: audio sent to a worker per message.
        max_backlog_ms: audio a worker may have queued before streams fail "overloaded".
        metrics: the metrics collector.
    """

    def __init__(
        self,
        workers: int | None = None,
        *,
        settings: w.DecoderSettings | None = None,
        batch_ms: int = 100,
        max_backlog_ms: int = MAX_BACKLOG_MS,
        metrics: ProviderMetrics | None = None,
    ) -> None:
        super().__init__(
            label="pocketsphinx",
            capabilities=ASRCapabilities(
                streaming=True, partial_results=True, grammar=True, sample_rates=(SAMPLE_RATE,)
            ),
            metrics=metrics,
        )
        self.size = workers or os.cpu_count() or 1
        if self.size < 1 or batch_ms < 20 or max_backlog_ms < batch_ms:
            raise ProviderUsageError("need workers >= 1, batch_ms >= 20, backlog >= batch")
        self.settings = settings or w.DecoderSettings()
        self.batch_bytes = batch_ms * _BYTES_PER_MS
        self.max_backlog = max_backlog_ms * _BYTES_PER_MS
        self.stats = ASRStats()
        self._workers: list[_Worker | None] = []
        self._restart_delay = [RESTART_DELAY_FIRST] * self.size
        self._restart_timers: dict[int, asyncio.TimerHandle] = {}
        self._ids = itertools.count(1)
        self._round_robin = itertools.count()
        self._ready: asyncio.Future[None] | None = None
        self._closed = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._reaping: set[asyncio.Future[None]] = set()  # joins of dead workers

    @property
    def worker_pids(self) -> list[int | None]:
        """Process ids of the workers by slot (None for a slot that is restarting)."""
        return [wk.pid if wk is not None and not wk.dead else None for wk in self._workers]

    @property
    def backlog_ms(self) -> list[int]:
        """Audio queued for each worker and not yet written to it, in ms (0 when down)."""
        return [
            wk.backlog // _BYTES_PER_MS if wk is not None and not wk.dead else 0
            for wk in self._workers
        ]

    async def start(self) -> None:
        """Start the workers and wait until each has loaded its model.

        Raises:
            ProviderError: a worker did not become ready within ``START_TIMEOUT``.
        """
        if self._workers:
            return
        self._loop = asyncio.get_running_loop()
        self._ready = self._loop.create_future()
        self._workers = [_Worker(self, slot) for slot in range(self.size)]
        try:
            async with asyncio.timeout(START_TIMEOUT):
                await self._ready
        except TimeoutError:
            await self.aclose()
            raise ProviderError(
                f"ASR workers not ready in {START_TIMEOUT:g} s",
                provider=self.label,
                retryable=False,
            ) from None
        except ProviderError:
            await self.aclose()
            raise

    async def aclose(self) -> None:
        """Stop the workers; open streams end with an error."""
        if self._closed:
            return
        self._closed = True
        for timer in self._restart_timers.values():
            timer.cancel()
        workers = [wk for wk in self._workers if wk is not None]
        for wk in workers:
            for stream in list(wk.streams.values()):
                stream._fail(ProviderError("ASR closed", provider=self.label, retryable=False))
            wk.streams.clear()
            wk.dead = True
            wk.stop()
        loop = asyncio.get_running_loop()
        joins = [loop.run_in_executor(None, wk.join) for wk in workers]
        await asyncio.gather(*joins, *self._reaping)

    def _pick(self, call_id: str) -> _Worker | None:
        live = [wk for wk in self._workers if wk is not None and not wk.dead]
        if not live:
            return None
        if call_id:
            slot = zlib.crc32(call_id.encode()) % self.size
            wk = self._workers[slot]
            if wk is not None and not wk.dead:
                return wk
            return live[slot % len(live)]
        return live[next(self._round_robin) % len(live)]

    def _stream_impl(self, *, grammar: str | None, call_id: str) -> ASRStream:
        if self._closed or not self._workers:
            raise ProviderUsageError("PocketsphinxASR.stream() before start() or after aclose()")
        worker = self._pick(call_id)
        stream = PocketsphinxStream(self, worker, next(self._ids), call_id)
        if worker is None:
            stream._fail(APIConnectionError("no ASR worker is running", provider=self.label))
        else:
            worker.streams[stream.sid] = stream
            worker.send((w.OPEN, stream.sid, grammar))
        return stream

    # -- messages from the workers (loop thread) -------------------------------------------

    def _on_message(self, worker: _Worker, msg: tuple[Any, ...]) -> None:
        op = msg[0]
        if op == w.READY:
            worker.ready = True
            self._restart_delay[worker.slot] = RESTART_DELAY_FIRST
            ready = self._ready
            if (
                ready is not None
                and not ready.done()
                and all(wk is not None and wk.ready for wk in self._workers)
            ):
                ready.set_result(None)
            return
        stream = worker.streams.get(msg[1])
        if stream is None:
            return  # closed meanwhile
        if op == w.PARTIAL:
            stream._emit(Partial(msg[2]))
        elif op == w.FINAL:
            _, _, text, confidence, words, audio_s, cpu_s = msg
            self.stats.utterances += 1
            self.stats.audio_seconds += audio_s
            self.stats.cpu_seconds += cpu_s
            timings = tuple(WordTiming(*word) for word in words)
            stream._on_final(Final(text, confidence, timings))
        elif op == w.ERROR:
            worker.streams.pop(stream.sid, None)
            stream._fail(ProviderError(msg[2], provider=self.label, retryable=False))

    def _on_death(self, worker: _Worker) -> None:
        if self._closed or worker.dead:
            return
        worker.dead = True
        code = worker.process.returncode
        log.error("ASR worker %d (pid %s) died with exit code %s", worker.slot, worker.pid, code)
        ready = self._ready
        if ready is not None and not ready.done():
            ready.set_exception(
                ProviderError(
                    f"ASR worker exited with {code} while loading",
                    provider=self.label,
                    retryable=False,
                )
            )
        error = APIConnectionError(f"ASR worker died (exit code {code})", provider=self.label)
        for stream in list(worker.streams.values()):
            stream._fail(error)
        worker.streams.clear()
        worker.stop()
        assert self._loop is not None
        self._reaping.add(self._loop.run_in_executor(None, worker.join))
        self._workers[worker.slot] = None
        delay = 0.0 if worker.ready else self._restart_delay[worker.slot]
        if not worker.ready:
            self._restart_delay[worker.slot] = min(RESTART_DELAY_MAX, 2 * delay)
        self._restart_timers[worker.slot] = self._loop.call_later(delay, self._restart, worker.slot)

    def _restart(self, slot: int) -> None:
        self._restart_timers.pop(slot, None)
        if self._closed:
            return
        self.stats.worker_restarts += 1
        self._workers[slot] = _Worker(self, slot)


class PocketsphinxStream(ASRStream):
    """A stream on one worker: batches audio, asks for a Final per flush."""

    def __init__(
        self, pool: PocketsphinxASR, worker: _Worker | None, sid: int, call_id: str
    ) -> None:
        super().__init__(provider=pool.label, call_id=call_id, metrics=pool._metrics)
        self.sid = sid
        self._pool = pool
        self._worker = worker
        self._buffer = bytearray()
        self._in_utterance = False  # audio went out since the last flush
        self._finals_due = 0

    def _push_impl(self, pcm: bytes) -> None:
        self._buffer += pcm
        if len(self._buffer) >= self._pool.batch_bytes:
            self._send_audio()

    def _send_audio(self) -> None:
        worker = self._worker
        if not self._buffer or worker is None:
            return
        if worker.backlog + len(self._buffer) > self._pool.max_backlog:
            self._pool.stats.overloaded_streams += 1
            worker.streams.pop(self.sid, None)
            worker.send((w.CLOSE, self.sid))
            self._fail(
                ProviderError("ASR worker overloaded", provider=self.provider, retryable=True)
            )
            return
        data = bytes(self._buffer)
        self._buffer.clear()
        self._in_utterance = True
        worker.send((w.AUDIO, self.sid, data), len(data))

    def _flush_impl(self) -> None:
        self._send_audio()
        if self._worker is None or self.failed:
            return
        self._finals_due += 1
        self._in_utterance = False
        self._worker.send((w.FLUSH, self.sid))

    def _end_input_impl(self) -> None:
        if self._buffer or self._in_utterance:
            self._flush_impl()
        if self._finals_due == 0:
            self._done()

    def _on_final(self, final: Final) -> None:
        self._finals_due -= 1
        self._emit(final)
        if self._input_ended and self._finals_due == 0:
            self._done()

    def _done(self) -> None:
        if self._worker is not None and self._worker.streams.pop(self.sid, None) is not None:
            self._worker.send((w.CLOSE, self.sid))
        self._finish()

    async def _aclose_impl(self) -> None:
        self._buffer.clear()
        worker = self._worker
        if worker is not None and worker.streams.pop(self.sid, None) is not None:
            worker.send((w.CLOSE, self.sid))

"""The processor contract and the chain that a leg pushes its frames into.

A processor is two methods: ``process_frame(frame)`` does its work on a frame and
``push(frame)`` hands a frame (that one, or a new one) to the next processor. The chain
is direct calls, so a 20 ms audio frame goes from the leg's pacer tick through VAD and
into the turn manager in one call stack: no queue hop and no task per frame (pipecat
spends two tasks and a queue per processor per frame; its issue #3218 measured half the
CPU going there at 10 ms frames). Work that has to wait (an ASR result, a brain turn, a
TTS stream) is started by a processor as one task per turn, never per frame.

:class:`Pipeline` is the leg's :class:`~trunkline.net.leg.MediaSink`: ``on_audio`` and
``on_event`` feed the first processor.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TypeVar

from trunkline.net.leg import LegEvent
from trunkline.pipeline.frames import Frame

log = logging.getLogger(__name__)

P = TypeVar("P", bound="Processor")


class Processor:
    """Base processor: passes every frame on. Subclasses override ``process_frame``."""

    __slots__ = ("_next",)

    def __init__(self) -> None:
        self._next: Processor | None = None

    def link(self, nxt: P) -> P:
        """Send this processor's output to ``nxt``; returns ``nxt`` so links chain."""
        self._next = nxt
        return nxt

    def process_frame(self, frame: Frame) -> None:
        """Handle one frame. The default hands it on unchanged."""
        self.push(frame)

    def push(self, frame: Frame) -> None:
        """Hand ``frame`` to the next processor (dropped at the end of the chain)."""
        nxt = self._next
        if nxt is not None:
            nxt.process_frame(frame)


class Pipeline:
    """A chain of processors, attached to a leg as its sink.

    A processor that raises does not stop the leg's media (the pacer would drop the
    stream): the error is logged with its traceback the first time and counted, and
    ``on_error`` (if given) is told, so the owner can end the call cleanly.
    """

    def __init__(
        self, *processors: Processor, on_error: Callable[[Exception], None] | None = None
    ) -> None:
        if not processors:
            raise ValueError("a pipeline needs at least one processor")
        for a, b in zip(processors, processors[1:], strict=False):
            a.link(b)
        self.processors = processors
        self._first = processors[0]
        self._on_error = on_error
        self.errors = 0

    def on_audio(self, pcm: bytes) -> None:
        try:
            self._first.process_frame(pcm)
        except Exception as exc:
            self._failed(exc)

    def on_event(self, event: LegEvent) -> None:
        try:
            self._first.process_frame(event)
        except Exception as exc:
            self._failed(exc)

    def _failed(self, exc: Exception) -> None:
        self.errors += 1
        if self.errors == 1:
            log.exception("pipeline processor failed")
        if self._on_error is not None:
            self._on_error(exc)

"""Keeping the caller company while the LLM brain waits: fillers, holds and deadlines.

A phone call must not go quiet: a caller who hears nothing for two seconds says
"hello?" or hangs up. The LLM brain waits on two things it does not control, the chat
model's first words and a tool's answer, and :func:`wait_with_fillers` waits on either
while a turn's :class:`Patience` says when to speak meanwhile:

- ``FILLER_TEXT`` once ``FILLER_AFTER_S`` have passed in a turn with nothing said. The
  turn starts when the recognizer's final arrives, which is the endpoint silence (0.5 to
  0.8 s) after the caller's last word, so the filler's first audio comes about 1.5 s
  after it: inside the 2 s a silence may last;
- ``HOLD_TEXT`` when ``HOLD_AFTER_S`` have passed since the last thing said (up to
  ``MAX_HOLDS`` per turn, and not within ``DEADLINE_QUIET_S`` of the wait's deadline,
  when the fallback is about to be said anyway): a slow tool or a model that thinks long.

Deadlines bound the rest. A chat request that has sent nothing within
``ANSWER_TIMEOUT_S`` is given up (the brain says its "trouble" sentence): the
provider's own first-token timeout is longer and it retries, which is right for a
batch job, not for a caller holding the line. A tool gets its spec's timeouts and
retries plus ``TOOL_GRACE_S``; past that its call counts as failed (the runner enforces
the timeouts; this guards against a runner that does not).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

from trunkline.agent.spec import ToolSpec
from trunkline.aio import cancel_and_wait

__all__ = [
    "ANSWER_TIMEOUT_S",
    "FILLER_AFTER_S",
    "FILLER_TEXT",
    "HOLD_AFTER_S",
    "HOLD_TEXT",
    "MAX_HOLDS",
    "Patience",
    "tool_limit",
    "wait_with_fillers",
]

#: Quiet time in a turn, with nothing said yet, before the filler (see the docstring).
FILLER_AFTER_S = 0.8
#: Time since the last thing said before a hold message (a filler lasts about 0.7 s,
#: so the silence between them stays near 1.3 s).
HOLD_AFTER_S = 2.0
#: Hold messages per turn; after them the deadlines end the wait.
MAX_HOLDS = 2
#: Longest wait for a chat request's first chunk (text or tool call).
ANSWER_TIMEOUT_S = 3.0
#: No filler this close to a deadline: what ends the wait is said instead.
DEADLINE_QUIET_S = 1.0
#: Added to a tool's own time budget (its timeouts and retries) for backoffs.
TOOL_GRACE_S = 1.0
FILLER_TEXT = "One moment."
HOLD_TEXT = "Thanks for waiting, I'm still on it."


class Patience:
    """One turn's account of silence: when the turn began, when we last spoke.

    Args:
        now: the clock (the event loop's, so deadlines and ``asyncio.wait`` agree).
    """

    def __init__(self, now: Callable[[], float]) -> None:
        self.now = now
        self.started = now()
        self.last_said: float | None = None
        self.holds = 0

    def said(self) -> None:
        """Something was said just now."""
        self.last_said = self.now()

    def stop_holding(self) -> None:
        """No more fillers this turn (the caller barged in: they are talking now)."""
        self.holds = MAX_HOLDS
        if self.last_said is None:
            self.last_said = self.now()

    def next_filler(self) -> tuple[float, str] | None:
        """When (on the clock) and what to say if the wait goes on; None: nothing more."""
        if self.last_said is None:
            return self.started + FILLER_AFTER_S, FILLER_TEXT
        if self.holds >= MAX_HOLDS:
            return None
        return self.last_said + HOLD_AFTER_S, HOLD_TEXT


def tool_limit(tool: ToolSpec) -> float:
    """Longest the brain waits for ``tool``: its attempts' timeouts plus ``TOOL_GRACE_S``."""
    return tool.timeout_ms / 1000 * (tool.retries + 1) + TOOL_GRACE_S


async def wait_with_fillers(
    task: asyncio.Task[Any], patience: Patience, deadline: float | None
) -> AsyncIterator[str]:
    """Wait for ``task``; yield a filler text each time one is due meanwhile.

    The caller speaks each text yielded (and :meth:`Patience.said` is called here).
    ``task`` is cancelled, and awaited, if the wait ends any other way.

    Raises:
        TimeoutError: ``deadline`` (on ``patience``'s clock) passed first.
    """
    try:
        while not task.done():
            due = patience.next_filler()
            if due is not None and deadline is not None and due[0] > deadline - DEADLINE_QUIET_S:
                due = None  # the wait ends soon anyway: a hold then the fallback is noise
            wakes = [t for t in (due[0] if due else None, deadline) if t is not None]
            timeout = max(0.0, min(wakes) - patience.now()) if wakes else None
            await asyncio.wait({task}, timeout=timeout)
            if task.done():
                return
            now = patience.now()
            if deadline is not None and now >= deadline:
                raise TimeoutError
            if due is not None and now >= due[0]:
                if due[1] == HOLD_TEXT:
                    patience.holds += 1
                patience.said()
                yield due[1]
    finally:
        if not task.done():
            await cancel_and_wait(task)

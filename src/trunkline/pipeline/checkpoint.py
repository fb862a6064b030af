"""Session checkpoints: save after every turn, load and restore when a call comes back.

Theory of operation
-------------------
After every turn the turn manager asks for a checkpoint (:meth:`Checkpointer.request`).
Saves run in one background task per call, one at a time: a request while a save is in
flight marks the session dirty and the task saves again, with the newest state, when
the first save is done. So a slow store delays checkpoints, never turns, and a burst of
turns costs one save more, not one save each.

Each save carries the stored version + 1 (the store's optimistic concurrency). A
failure (the store is down, slow past ``SESSION_TIMEOUT_S``) is logged and counted and
the version stays, so the next turn's save tries the same version again. A
``SessionConflict`` means another worker has taken the call over: this one stops
writing (and does not delete the session at the end).

When the call ends normally the session is deleted; when the pipeline is cancelled (the
worker is going away) the in-flight save is cancelled too, as a crash would, and the
last good checkpoint stays for whoever takes the call over.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from trunkline.agent.flow import SNAPSHOT_VERSION
from trunkline.aio import cancel_and_wait
from trunkline.runtime.stores.session import Session, SessionConflict, SessionStore

#: How long one store call may take before it counts as failed: a checkpoint that late
#: is already stale, and a call must never wait on its store.
SESSION_TIMEOUT_S = 2.0

Log = logging.Logger | logging.LoggerAdapter[logging.Logger]


class Checkpointer:
    """Saves one call's session after each turn.

    Args:
        sessions: the store.
        call_id: the call.
        version: the version already stored (0: none).
        build: makes the session to save at a given version (the call's state now).
        count: counts a failure by name (``session_errors``).
        log: the call's log.
    """

    def __init__(
        self,
        sessions: SessionStore,
        *,
        call_id: str,
        version: int,
        build: Callable[[int], Session],
        count: Callable[[str], None],
        log: Log,
    ) -> None:
        self.sessions = sessions
        self.call_id = call_id
        self.version = version
        self.conflict = False
        self._build = build
        self._count = count
        self._log = log
        self._task: asyncio.Task[None] | None = None
        self._dirty = False

    def request(self) -> None:
        """Checkpoint the call's state as it is when the save starts."""
        self._dirty = True
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._save_loop())

    async def finish(self) -> None:
        """The call is over: let the last save land, then forget the session."""
        if self._task is not None:
            await asyncio.wait({self._task})
        if self.conflict:
            return  # another worker owns the session now
        try:
            async with asyncio.timeout(SESSION_TIMEOUT_S):
                await self.sessions.delete(self.call_id)
        except Exception as exc:
            self._count("session_errors")
            self._log.warning("session delete failed: %r", exc)

    async def abandon(self) -> None:
        """The pipeline is being torn down mid-call: stop saving, keep what is stored."""
        if self._task is not None:
            await cancel_and_wait(self._task)

    async def _save_loop(self) -> None:
        while self._dirty and not self.conflict:
            self._dirty = False
            session = self._build(self.version + 1)
            try:
                async with asyncio.timeout(SESSION_TIMEOUT_S):
                    await self.sessions.save(session)
            except SessionConflict as exc:
                self.conflict = True
                self._count("session_errors")
                self._log.error("session checkpoint refused, another worker has the call: %s", exc)
            except Exception as exc:  # a slow or absent store never stops the call
                self._count("session_errors")
                self._log.warning("session checkpoint failed: %r", exc)
            else:
                self.version = session.version


async def load_session(sessions: SessionStore, call_id: str, log: Log) -> Session | None:
    """The call's checkpoint, if any; a failing store means a fresh start, not a dead call."""
    try:
        async with asyncio.timeout(SESSION_TIMEOUT_S):
            return await sessions.load(call_id)
    except Exception as exc:
        log.warning("session load failed, starting afresh: %r", exc)
        return None


def snapshot_from_session(session: Session, spec_name: str) -> dict[str, Any]:
    """The flow brain's snapshot that ``session`` carries.

    ``Session`` has typed fields for the flow state, slots and the pending tool; the
    rest of a snapshot (tool results, reprompt counters) needs a ``brain`` field on
    ``Session``, used when present. Without it the snapshot is rebuilt from the typed
    fields: the call resumes in its state with its slots, and earlier tool results and
    the reprompt counters start afresh.
    """
    brain = getattr(session, "brain", None)
    if isinstance(brain, dict):
        return brain
    pending = (session.pending_tool or {}).get("tool")
    return {
        "version": SNAPSHOT_VERSION,
        "spec": spec_name,
        "state": session.flow_state,
        "slots": dict(session.slots),
        "tools": {},
        "no_input": 0,
        "no_match": 0,
        "started": True,
        "ended": False,
        "pending_tool": pending,
    }

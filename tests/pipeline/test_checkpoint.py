"""Session checkpoints: what a session carries of the brain, and how saves behave."""

from __future__ import annotations

import asyncio
import logging

from trunkline.agent import AgentSpec, FlowBrain, Speech
from trunkline.pipeline.checkpoint import Checkpointer, snapshot_from_session
from trunkline.pipeline.journal import SESSION_HAS_BRAIN, CallJournal
from trunkline.runtime.stores import MemorySessionStore, Session, SessionStoreError

LOG = logging.getLogger("test")


async def test_a_session_restores_the_brain(acme_spec: AgentSpec) -> None:
    brain = FlowBrain(acme_spec)
    brain.start()
    await brain.on_input(Speech("order status"))
    journal = CallJournal(call_id="c1", agent="acme")
    journal.add_events(brain.drain_events())
    session = Session.from_json(journal.session(brain.snapshot(), 3).to_json())
    assert (session.flow_state, session.version) == ("order_status", 3)
    assert [t["text"] for t in session.transcript if t["role"] == "caller"] == ["order status"]

    restored = FlowBrain.restore(acme_spec, snapshot_from_session(session, "acme"))
    assert restored.state == "order_status"
    assert [a.text for a in restored.resume()] == [  # type: ignore[union-attr]
        "Please say or type your five digit order number."
    ]
    if SESSION_HAS_BRAIN:  # the whole snapshot travels: nothing is rebuilt
        assert snapshot_from_session(session, "acme") == brain.snapshot()


class SlowStore(MemorySessionStore):
    """Saves wait for ``gate``; ``fail`` makes the next saves raise."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = asyncio.Event()
        self.saved: list[int] = []
        self.fail = 0

    async def save(self, session: Session) -> None:
        await self.gate.wait()
        if self.fail:
            self.fail -= 1
            raise SessionStoreError("down", retryable=True)
        await super().save(session)
        self.saved.append(session.version)


def checkpointer(store: MemorySessionStore, counts: dict[str, int]) -> Checkpointer:
    def count(name: str) -> None:
        counts[name] = counts.get(name, 0) + 1

    return Checkpointer(
        store,
        call_id="c1",
        version=0,
        build=lambda version: Session("c1", "acme", version=version),
        count=count,
        log=LOG,
    )


async def test_saves_are_coalesced_and_failures_retried() -> None:
    store, counts = SlowStore(), dict[str, int]()
    cp = checkpointer(store, counts)
    cp.request()
    await asyncio.sleep(0)
    cp.request()  # while the first save waits: one more save later, not two
    cp.request()
    store.gate.set()
    await cp.finish()
    assert store.saved == [1, 2]
    assert await store.load("c1") is None  # the call ended: the session is forgotten

    store2, counts2 = SlowStore(), dict[str, int]()
    store2.gate.set()
    store2.fail = 1
    cp2 = checkpointer(store2, counts2)
    cp2.request()
    await asyncio.sleep(0.01)
    assert cp2.version == 0 and counts2 == {"session_errors": 1}
    cp2.request()  # the next turn's save tries version 1 again
    await asyncio.sleep(0.01)
    assert store2.saved == [1] and cp2.version == 1


async def test_a_conflict_stops_the_saves_and_keeps_the_session() -> None:
    store, counts = MemorySessionStore(), dict[str, int]()
    await store.save(Session("c1", "acme", version=1))  # another worker wrote first
    cp = checkpointer(store, counts)
    cp.request()
    await asyncio.sleep(0.01)
    assert cp.conflict
    cp.request()
    await cp.finish()
    assert counts == {"session_errors": 1}
    assert await store.load("c1") is not None  # not ours to delete


async def test_abandon_cancels_a_save_in_flight() -> None:
    store, counts = SlowStore(), dict[str, int]()
    cp = checkpointer(store, counts)
    cp.request()
    await asyncio.sleep(0)
    await cp.abandon()
    store.gate.set()
    await asyncio.sleep(0.01)
    assert store.saved == [] and await store.load("c1") is None

"""The agent app: runs a voice agent (its brain, ASR, TTS) on each call's leg.

``agent_app(spec, ...)`` returns an :class:`AgentApp`, a :data:`~trunkline.net.leg.
CallHandler`. Per call it loads the call's session (a call that another worker was
running, or that reconnected, continues from its last checkpoint), builds the spec's
brain, a :class:`~trunkline.agent.FlowBrain` or, for ``brain: llm``, a
:class:`~trunkline.agent.LlmBrain` on the given chat model (new, or restored and
resumed), and runs a
:class:`~trunkline.pipeline.conversation.Conversation` on the leg until the call ends.
Providers, stores, the tool runner and the prompt cache are shared by all calls;
everything else is per call.

:func:`agents_runtime` starts and stops everything agents need around their apps (the
demo CRM, the tool runner, the providers, the record writer), shared by the agents of
one ``trunkline serve --agent ...``; :func:`agent_runtime` does it for one agent.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trunkline.agent.brain import Brain, BrainContext
from trunkline.agent.demo_crm import start_crm
from trunkline.agent.errors import AgentUsageError
from trunkline.agent.flow import FlowBrain
from trunkline.agent.llm_brain import LlmBrain
from trunkline.agent.spec import AgentSpec, BrainKind
from trunkline.agent.tools import ToolRunner
from trunkline.net.leg import LegInfo, MediaLeg
from trunkline.net.ws_server import CallLog
from trunkline.pipeline.checkpoint import load_session, snapshot_from_session
from trunkline.pipeline.conversation import Conversation, RecordSink
from trunkline.pipeline.speaker import PromptCache
from trunkline.pipeline.vad import VadProcessor
from trunkline.providers.asr import ASR
from trunkline.providers.llm import LLM
from trunkline.providers.tts import TTS
from trunkline.runtime.stores.records_sqlite import SqliteRecordBackend
from trunkline.runtime.stores.session import MemorySessionStore, Session, SessionStore
from trunkline.runtime.stores.writer import RecordWriter

if TYPE_CHECKING:
    from trunkline.api.metrics import RuntimeMetrics

log = logging.getLogger(__name__)


def call_fields(info: LegInfo) -> dict[str, str]:
    """``{{call.id}}``, ``{{call.caller}}`` and ``{{call.callee}}`` for a BrainContext."""
    return {"id": info.call_id, "caller": info.from_uri, "callee": info.to_uri}


def agent_app(
    spec: AgentSpec,
    *,
    asr: ASR,
    tts: TTS,
    context_factory: Callable[[LegInfo], BrainContext],
    sessions: SessionStore,
    records: RecordSink,
    llm: LLM | None = None,
    vad_mode: int = 2,
    cache: PromptCache | None = None,
    voice: str | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> AgentApp:
    """Build the call handler that runs ``spec`` on every call.

    Args:
        spec: the agent (``brain: flow`` or ``brain: llm``).
        asr, tts: the speech providers (shared by all calls).
        context_factory: the brain's dependencies for one call (tool runner, variables
            such as the CRM address, ``call_fields(info)``).
        sessions: where each turn is checkpointed and from where a call is restored.
        records: takes the call record at the end (a ``RecordWriter``; never blocks).
        llm: the chat model of a ``brain: llm`` agent (shared by all calls; a context
            from ``context_factory`` that has its own ``llm`` keeps it).
        vad_mode: webrtcvad aggressiveness, 0 (least) to 3.
        cache: the prompt cache (one is made for this app if None).
        voice: the TTS voice.
        clock: the monotonic clock of the turn timings.

    Raises:
        AgentUsageError: a ``brain: llm`` agent without ``llm``, or ``vad_mode`` not 0..3.
    """
    check_llm(spec, llm)
    if not 0 <= vad_mode <= 3:
        raise AgentUsageError(f"vad_mode must be 0..3, got {vad_mode}")
    return AgentApp(
        spec, asr=asr, tts=tts, context_factory=context_factory, sessions=sessions,
        records=records, llm=llm, vad_mode=vad_mode,
        cache=cache if cache is not None else PromptCache(), voice=voice, clock=clock,
    )  # fmt: skip


def check_llm(spec: AgentSpec, llm: LLM | None) -> None:
    """Refuse a ``brain: llm`` agent without a chat model (AgentUsageError)."""
    if spec.brain is BrainKind.LLM and llm is None:
        raise AgentUsageError(
            f"agent {spec.name!r} has brain: llm; give it a chat model (llm=OpenAILLM(...))"
        )


class AgentApp:
    """A :data:`~trunkline.net.leg.CallHandler` (``await app(leg)``) running one agent.

    ``live`` maps the Call-ID of each call in progress to its conversation (for the
    HTTP API and for tests).
    """

    def __init__(
        self,
        spec: AgentSpec,
        *,
        asr: ASR,
        tts: TTS,
        context_factory: Callable[[LegInfo], BrainContext],
        sessions: SessionStore,
        records: RecordSink,
        llm: LLM | None,
        vad_mode: int,
        cache: PromptCache,
        voice: str | None,
        clock: Callable[[], float],
    ) -> None:
        self.spec = spec
        self.asr = asr
        self.tts = tts
        self.context_factory = context_factory
        self.sessions = sessions
        self.records = records
        self.llm = llm
        self.vad_mode = vad_mode
        self.cache = cache
        self.voice = voice
        self.clock = clock
        self.live: dict[str, Conversation] = {}

    async def __call__(self, leg: MediaLeg) -> None:
        """Run the agent on ``leg`` until the call ends."""
        call_log = CallLog(log, {"call_id": leg.call_id})
        session = await load_session(self.sessions, leg.call_id, call_log)
        context = self.context_factory(leg.info)
        if context.llm is None:
            context.llm = self.llm
        brain, resumed = _brain(self.spec, context, session, call_log)
        conversation = Conversation(
            leg,
            brain,
            agent=self.spec.name,
            asr=self.asr,
            tts=self.tts,
            sessions=self.sessions,
            records=self.records,
            resume=resumed,
            session_version=session.version if session is not None else 0,
            transcript=session.transcript if session is not None and resumed else None,
            brain_t0=context.clock(),
            clock=self.clock,
            vad=VadProcessor(self.vad_mode),
            cache=self.cache,
            voice=self.voice,
            log=call_log,
        )
        self.live[leg.call_id] = conversation
        try:
            await conversation.run()
        finally:
            if self.live.get(leg.call_id) is conversation:
                del self.live[leg.call_id]


def _brain(
    spec: AgentSpec,
    context: BrainContext,
    session: Session | None,
    call_log: logging.LoggerAdapter[logging.Logger],
) -> tuple[Brain, bool]:
    """A restored brain (True) or a new one (False), of the kind the spec names."""
    kind: type[FlowBrain] | type[LlmBrain] = LlmBrain if spec.brain is BrainKind.LLM else FlowBrain
    if session is not None:
        try:
            brain = kind.restore(spec, snapshot_from_session(session, spec.name), context)
        except AgentUsageError as exc:
            call_log.warning("session does not fit the agent, starting afresh: %s", exc)
        else:
            call_log.info("resuming from checkpoint v%d", session.version)
            return brain, True
    return kind(spec, context), False


@dataclass
class AgentRuntime:
    """The started apps of :func:`agents_runtime` (in the order of the specs) and the
    record writer they share."""

    apps: list[AgentApp]
    writer: RecordWriter

    def live_view(self, call_id: str) -> dict[str, Any] | None:
        """The agent and the transcript so far of a call in progress, or None."""
        for app in self.apps:
            conversation = app.live.get(call_id)
            if conversation is not None:
                transcript = list(conversation.journal.transcript)
                return {"agent": app.spec.name, "transcript": transcript}
        return None


@asynccontextmanager
async def agent_runtime(
    spec: AgentSpec,
    *,
    asr: ASR,
    tts: TTS,
    records_db: Path | str,
    spool_dir: Path | str,
    demo_crm: bool = False,
    crm_db: str = ":memory:",
    sessions: SessionStore | None = None,
    variables: Mapping[str, str] | None = None,
    vad_mode: int = 2,
    metrics: RuntimeMetrics | None = None,
    llm: LLM | None = None,
) -> AsyncIterator[AgentApp]:
    """:func:`agents_runtime` for one agent; yields its app."""
    async with agents_runtime(
        [spec], asr=asr, tts=tts, records_db=records_db, spool_dir=spool_dir,
        demo_crm=demo_crm, crm_db=crm_db, sessions=sessions, variables=variables,
        vad_mode=vad_mode, metrics=metrics, llm=llm,
    ) as runtime:  # fmt: skip
        yield runtime.apps[0]


@asynccontextmanager
async def agents_runtime(
    specs: Sequence[AgentSpec],
    *,
    asr: ASR,
    tts: TTS,
    records_db: Path | str,
    spool_dir: Path | str,
    demo_crm: bool = False,
    crm_db: str = ":memory:",
    sessions: SessionStore | None = None,
    variables: Mapping[str, str] | None = None,
    vad_mode: int = 2,
    metrics: RuntimeMetrics | None = None,
    llm: LLM | None = None,
    llms: Sequence[LLM | None] | None = None,
) -> AsyncIterator[AgentRuntime]:
    """Everything ``specs`` need to answer calls, started; stopped again on exit.

    Starts (and on exit stops, in reverse order) the demo CRM when ``demo_crm`` (its URL
    becomes ``vars.crm``), one :class:`~trunkline.agent.ToolRunner`, the providers, an
    in-memory session store unless one is given, and a
    :class:`~trunkline.runtime.stores.RecordWriter` on SQLite at ``records_db`` that
    spools to ``spool_dir``, all shared by the agents. Yields their apps, for
    ``Server`` (records pass through ``metrics`` on their way to the writer). The
    ``brain: llm`` agents share ``llm``, or each has its own in ``llms`` (one entry per
    spec, None for flow agents: ``trunkline serve`` builds them from the specs); the
    models are closed on exit like the providers.

    Raises:
        AgentUsageError: a ``brain: llm`` agent and no ``llm`` (before anything starts).
        RecordStoreError: the spool cannot be opened.
        ProviderError: a provider failed to start.
    """
    models = list(llms) if llms is not None else [llm] * len(specs)
    if len(models) != len(specs):
        raise AgentUsageError(f"{len(specs)} specs but {len(models)} chat models")
    for spec, model in zip(specs, models, strict=True):
        check_llm(spec, model)
    async with AsyncExitStack() as stack:
        values = dict(variables or {})
        if demo_crm:
            crm = await start_crm("127.0.0.1", 0, crm_db)
            stack.push_async_callback(crm.close)
            values["crm"] = crm.url
            log.info("demo CRM at %s", crm.url)
        tools = await stack.enter_async_context(ToolRunner())
        await stack.enter_async_context(asr)
        await stack.enter_async_context(tts)
        for model in {id(m): m for m in models if m is not None}.values():
            await stack.enter_async_context(model)
        store = sessions if sessions is not None else MemorySessionStore()
        stack.push_async_callback(store.aclose)
        writer = RecordWriter(SqliteRecordBackend(records_db), spool_dir=Path(spool_dir))
        await writer.start()
        stack.push_async_callback(writer.aclose)
        if metrics is not None:
            metrics.watch_records(lambda: writer.stats)

        def context(info: LegInfo) -> BrainContext:
            return BrainContext(tools=tools, variables=values, call=call_fields(info))

        records: RecordSink = writer if metrics is None else metrics.record_sink(writer)
        apps = [
            agent_app(
                spec,
                asr=asr,
                tts=tts,
                context_factory=context,
                sessions=store,
                records=records,
                llm=model,
                vad_mode=vad_mode,
            )
            for spec, model in zip(specs, models, strict=True)
        ]
        yield AgentRuntime(apps, writer)

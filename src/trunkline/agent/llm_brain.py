"""LlmBrain: a chat model with tools behind the :class:`~trunkline.agent.brain.Brain` contract.

Theory of operation
-------------------
A turn adds the caller's words to the chat history (:mod:`.llm_history`) and streams
the model's answer (``LLM.chat``). Text is cut into sentences as it streams
(:mod:`.llm_text`) and each complete sentence is yielded as a ``Say`` at once, so the
TTS speaks the first sentence while the model writes the next.

When the answer has tool calls (:mod:`.llm_tools`), they run after its text: a spec tool
through the injected ``ToolCaller`` (the ``ToolRunner``: timeouts, retries, a failure
becomes a result, never an exception), whose mapped result, or failure and fallback
message, goes back to the model as the tool's answer; then the model is asked again
(``MAX_TOOL_ROUNDS`` rounds at most). "One moment." is said before a tool if nothing was
said yet this turn. ``end_call`` and ``transfer_call`` end the turn with ``Hangup`` or
``Transfer``.

Failures never end the call and never leave it silent:

- the model is down or answers nothing usable before any text: ``LLM_DOWN_TEXT``;
- the stream breaks off mid-reply: the complete sentences were already said, the broken
  one is dropped, and ``CUT_OFF_TEXT`` follows at once (the stream's error arrives as
  soon as the connection breaks; a stall is bounded by the LLM's idle timeout);
- silence and empty transcripts follow the spec's ``no_input`` / ``no_match`` policies
  (message, then the last question again; ``escalate`` after the reprompts; its
  ``say``, ``transfer`` and ``hangup`` steps are honoured, others do not apply here).

Keypad entries go to the model as "Keypad: 1234". The record masks them, and the
argument values in recorded tool URLs: this brain cannot tell which are secrets. A
barge-in cuts the history to what was heard. ``snapshot()`` is the history (JSON) and
the counters; ``restore`` + ``resume`` continue a call in another process: the last
question is asked again, and a tool that was running is not re-run (its fallback is
said), as the flow brain does.
"""

from __future__ import annotations

import asyncio
import copy
import json
from collections.abc import AsyncIterator, Mapping
from typing import Any

from trunkline.agent.brain import (
    Action,
    Brain,
    BrainContext,
    BrainEvent,
    Digits,
    EventKind,
    Hangup,
    Interrupted,
    ListenSpec,
    NoInput,
    Say,
    Speech,
    Transfer,
    UserInput,
)
from trunkline.agent.errors import AgentUsageError
from trunkline.agent.flow_scope import MASK, FlowScope
from trunkline.agent.llm_history import ChatHistory, valid_message
from trunkline.agent.llm_text import SentenceSplitter
from trunkline.agent.llm_tools import (
    END_CALL,
    TRANSFER_CALL,
    TRANSFER_VAR,
    PreparedCall,
    ToolArgumentError,
    builtin_schemas,
    call_message,
    prepare_call,
    result_message,
    run_tool,
    text_argument,
    tool_event,
    tool_schema,
)
from trunkline.agent.llm_wait import (
    ANSWER_TIMEOUT_S,
    FILLER_TEXT,
    Patience,
    tool_limit,
    wait_with_fillers,
)
from trunkline.agent.spec import (
    AgentSpec,
    BrainKind,
    DtmfSpec,
    HangupStep,
    RepromptPolicy,
    SayStep,
    ToolSpec,
    TransferStep,
)
from trunkline.agent.template import Template
from trunkline.agent.tools import ToolOutcome, ToolResult
from trunkline.providers.errors import APITimeoutError, ProviderError
from trunkline.providers.llm import LLMChunk, TextDelta, ToolCallChunk

__all__ = ["CUT_OFF_TEXT", "LLM_DOWN_TEXT", "LlmBrain", "TOOL_FILLER_TEXT"]

SNAPSHOT_VERSION = 1
#: The brain's one "state", in events and snapshots (the flow brain names its states).
STATE = "llm"
#: Model answers per turn: a tool call, its answer, perhaps a second tool; a model that
#: keeps calling tools past this is looping.
MAX_TOOL_ROUNDS = 4
#: Keypad entry for free conversation: up to 16 keys, ``#`` ends early, 3 s between keys.
LLM_DTMF = DtmfSpec(max_digits=16, terminator="#", timeout_ms=3000)
LLM_DOWN_TEXT = "Sorry, I'm having trouble right now. Could you say that again?"
CUT_OFF_TEXT = "Sorry, I lost my train of thought. Could you say that again?"
TOOL_FILLER_TEXT = FILLER_TEXT
#: A tool call's answer when a barge-in cancelled it (the model must get one).
CANCELLED_TOOL_CONTENT = json.dumps(
    {"ok": False, "error": "the caller interrupted before the answer came; it may or may not "
     "have been done"}
)  # fmt: skip
RESUME_TEXT = "Sorry about that, the line dropped for a moment."


class LlmBrain:
    """The LLM brain of one call. See the module docstring and :class:`Brain`.

    Args:
        spec: an agent with ``brain: llm``.
        context: tools, variables, call fields, clock, log, and ``llm``: the chat model
            (shared by calls; one ``chat`` per model answer).

    Raises:
        AgentUsageError: the spec is not an ``llm`` agent, or the context has no model.
    """

    def __init__(self, spec: AgentSpec, context: BrainContext) -> None:
        if spec.brain is not BrainKind.LLM or spec.llm is None:
            raise AgentUsageError(f"spec {spec.name!r} is for the {spec.brain} brain")
        if context.llm is None:
            raise AgentUsageError(f"agent {spec.name!r} needs a chat model (BrainContext.llm)")
        llm = context.llm
        self._spec = spec
        self._llm = llm
        self._ctx = context
        self._scope = FlowScope(spec, self._ctx.variables, self._ctx.call)
        self._tools: dict[str, ToolSpec] = {name: spec.tools[name] for name in spec.llm.tools}
        self._transfer_to = self._scope.vars.get(TRANSFER_VAR, "").strip()
        schemas = [tool_schema(spec, tool) for tool in self._tools.values()]
        schemas += builtin_schemas(transfer=bool(self._transfer_to))
        self._schemas = schemas if llm.capabilities.tool_calls else []
        self.history = ChatHistory()
        self.events: list[BrainEvent] = []
        self.no_input = 0
        self.no_match = 0
        self.llm_errors = 0
        self.pending_tool: str | None = None
        self._started = False
        self._ended = False
        self._busy = False
        self._patience = Patience(lambda: 0.0)  # the running turn's (see _answer)
        self._barge_ins_applied = 0  # barge-ins taken in on_barge_in, their input pending

    @property
    def ended(self) -> bool:
        return self._ended

    # --- the Brain contract ---------------------------------------------------------------

    def start(self) -> list[Action]:
        """The greeting (if the spec has one)."""
        if self._started:
            raise AgentUsageError("start() was already called")
        self._started = True
        greeting = self._spec.greeting
        return self._say_fixed(greeting) if greeting is not None else []

    async def on_input(self, event: UserInput) -> list[Action]:
        """One caller turn; every action at once. Never raises for caller or provider faults."""
        return [action async for action in self.respond(event)]

    async def respond(self, event: UserInput) -> AsyncIterator[Action]:
        """One caller turn, streamed sentence by sentence. Consume it to the end."""
        if not self._started:
            raise AgentUsageError("start() must come before the first turn")
        if self._busy:
            raise AgentUsageError("a turn is already running")
        if self._ended:
            return
        self._busy = True
        try:
            if isinstance(event, Interrupted):
                if self._barge_ins_applied:  # on_barge_in took it in already
                    self._barge_ins_applied -= 1
                    return
                self._record(EventKind.INTERRUPTED, played_text=event.played_text)
                self.history.interrupted(event.played_text)
                return
            if isinstance(event, Speech) and not event.final:
                return  # no grammar to complete: partial results are not turns here
            self.history.new_turn()
            if isinstance(event, NoInput):
                self.no_input += 1
                for action in self._counted(self._spec.no_input, EventKind.NO_INPUT, {}):
                    yield action
                return
            if isinstance(event, Digits):
                text = f"Keypad: {event.digits.removesuffix('#')}"
                self._record(EventKind.DTMF, digits=MASK)
            elif isinstance(event, Speech):
                text = " ".join(event.text.split())
                if not text:
                    self.no_match += 1
                    policy = self._spec.no_match
                    for action in self._counted(policy, EventKind.NO_MATCH, {"text": ""}):
                        yield action
                    return
                self._record(EventKind.CALLER, text=text, confidence=event.confidence, intent=None)
            else:
                raise AgentUsageError(f"not a UserInput: {event!r}")
            self.no_input = self.no_match = 0
            self.history.user(text)
            async for action in self._answer():
                yield action
        finally:
            self._busy = False

    def on_barge_in(self, played_text: str) -> bool:
        """The caller cut the agent off while a turn runs (the pipeline calls this in the
        frame that confirmed their speech); True: cancel the turn.

        While the model streams, the rest of its answer answers a question the caller
        has moved on from: cancel it (the request is closed; the ``Interrupted`` input
        that follows cuts the history to what was heard). While a tool runs, the tool
        goes on and what the model says with its answer is new: what was said so far is
        cut now, and the ``Interrupted`` input is then already taken in.
        """
        if not self._busy:
            return False
        self._patience.stop_holding()
        if self.pending_tool is None:
            return True
        self._record(EventKind.INTERRUPTED, played_text=played_text)
        self.history.interrupted(played_text)
        self._barge_ins_applied += 1
        return False

    def listen_spec(self) -> ListenSpec:
        """Free speech (the recognizer's general model), the agent's endpointing, keypad."""
        return ListenSpec(
            grammar=None,
            grammar_id=None,
            matcher=None,
            endpoint_silence_ms=self._spec.silence_ms,
            no_input_timeout_ms=self._spec.no_input.timeout_ms,
            dtmf=LLM_DTMF,
        )

    def snapshot(self) -> dict[str, Any]:
        """JSON-able state for the session store: the history and the counters."""
        return {
            "version": SNAPSHOT_VERSION, "brain": STATE, "spec": self._spec.name, "state": STATE,
            "slots": {}, "history": self.history.consistent(), "no_input": self.no_input,
            "no_match": self.no_match, "started": self._started, "ended": self._ended,
            "pending_tool": self.pending_tool,
        }  # fmt: skip

    @classmethod
    def restore(
        cls, spec: AgentSpec, snapshot: Mapping[str, Any], context: BrainContext
    ) -> LlmBrain:
        """A brain that continues from ``snapshot``; call :meth:`resume` next.

        Raises:
            AgentUsageError: the snapshot is not an LLM brain's of this spec, or see
                ``LlmBrain()``.
        """
        brain = cls(spec, context)
        try:
            if (snapshot.get("version"), snapshot.get("brain")) != (SNAPSHOT_VERSION, STATE):
                raise ValueError("not an llm brain snapshot of this version")
            if snapshot.get("spec") != spec.name:
                raise ValueError(f"snapshot is of spec {snapshot.get('spec')!r}")
            messages = copy.deepcopy(list(snapshot["history"]))
            if not all(valid_message(m) for m in messages):
                raise ValueError("history holds a message that is not one of ours")
            json.dumps(messages)
            brain.history = ChatHistory(messages)
            brain.no_input = int(snapshot["no_input"])
            brain.no_match = int(snapshot["no_match"])
            brain._started = bool(snapshot["started"])
            brain._ended = bool(snapshot["ended"])
            pending = snapshot.get("pending_tool")
            if pending is not None and pending not in brain._tools:
                raise ValueError(f"unknown tool {pending!r}")
            brain.pending_tool = pending
        except (KeyError, TypeError, ValueError) as exc:
            raise AgentUsageError(f"snapshot does not fit spec {spec.name!r}: {exc}") from None
        return brain

    def resume(self) -> list[Action]:
        """After ``restore``: a word about the drop, a running tool's fallback, the question."""
        if self._ended:
            return []
        self._started = True
        self.history.new_turn()
        texts = [RESUME_TEXT]
        if self.pending_tool is not None:
            tool = self._tools[self.pending_tool]
            self.pending_tool = None
            texts.append(self._scope.render_spoken(tool.fallback))
        question = self.history.last_question()
        if question is not None:
            texts.append(question)
        return [
            self._say(text, ours=True, cacheable=text == RESUME_TEXT)
            for text in texts
            if text.strip()
        ]

    def drain_events(self) -> list[BrainEvent]:
        """Events since the last drain, oldest first (for the call record)."""
        events, self.events = self.events, []
        return events

    # --- a model answer, with tools ----------------------------------------------------------

    async def _answer(self) -> AsyncIterator[Action]:
        patience = self._patience = Patience(asyncio.get_running_loop().time)
        said_this_turn = False  # the model's own words, fillers apart
        for _ in range(MAX_TOOL_ROUNDS):
            splitter = SentenceSplitter()
            said: list[str] = []
            calls: list[ToolCallChunk] = []
            error: ProviderError | None = None
            stream = self._llm.chat(self._messages(), tools=self._schemas or None)
            try:
                async for item in self._chunks(stream, said, patience):
                    if isinstance(item, str):
                        yield self._filler(item)
                    elif isinstance(item, TextDelta):
                        for sentence in splitter.feed(item.text):
                            said.append(sentence)
                            yield self._say(sentence)
                    else:
                        calls.append(item)
            except ProviderError as exc:
                error = exc
            except TimeoutError:
                error = APITimeoutError(
                    f"no answer within {ANSWER_TIMEOUT_S:g} s", provider=self._llm.label
                )
            except (asyncio.CancelledError, GeneratorExit):
                # A barge-in (or the end of the call) cancelled the answer: the request is
                # closed below and only what was said joins the history (a barge-in's
                # Interrupted then cuts it to what was heard).
                self.history.assistant(said)
                raise
            finally:
                aclose = getattr(stream, "aclose", None)
                if aclose is not None:
                    await aclose()
            if error is not None:
                broken = splitter.drop()
                self.history.assistant(said)
                self.llm_errors += 1
                self._ctx.log.warning("chat model failed (dropped %r): %s", broken, error)
                yield self._say(CUT_OFF_TEXT if said else LLM_DOWN_TEXT, ours=True)
                return
            for sentence in splitter.flush():
                said.append(sentence)
                yield self._say(sentence)
            said_this_turn = said_this_turn or bool(said)
            self.history.assistant(
                said, [call_message(c.id, c.name, c.arguments_json) for c in calls]
            )
            if not calls:
                if not said_this_turn:  # an empty answer would leave the caller in silence
                    yield self._say(LLM_DOWN_TEXT, ours=True)
                return
            if patience.last_said is None and any(c.name in self._tools for c in calls):
                yield self._filler(TOOL_FILLER_TEXT)
            final: Transfer | Hangup | None = None
            try:
                for call in calls:
                    content, ending = self._builtin(call)
                    if content is None:
                        prepared = self._prepare(call)
                        if isinstance(prepared, str):
                            content = prepared
                        else:
                            async for action in self._run_tool(prepared, patience):
                                if isinstance(action, str):
                                    content = action
                                else:
                                    yield action
                    self.history.tool(call.id, content or '{"ok": false}')
                    final = final or ending
            finally:
                # A barge-in during a tool's answer left calls without results: a request
                # with an unanswered call is refused, so each gets one.
                self.history.answer_missing(CANCELLED_TOOL_CONTENT)
            if final is not None:
                yield self._end(final)
                return
        self._ctx.log.warning("chat model still calling tools after %d rounds", MAX_TOOL_ROUNDS)
        yield self._say(LLM_DOWN_TEXT, ours=True)

    async def _chunks(
        self, stream: AsyncIterator[LLMChunk], said: list[str], patience: Patience
    ) -> AsyncIterator[LLMChunk | str]:
        """The model's chunks and, until its first sentence, the fillers due meanwhile.

        Raises:
            TimeoutError: no chunk within ``ANSWER_TIMEOUT_S`` (the request is cancelled).
            ProviderError: from the stream.
        """
        deadline: float | None = patience.now() + ANSWER_TIMEOUT_S
        while True:
            if said:  # the answer is being spoken; a stall is bounded by the idle timeout
                try:
                    chunk = await anext(stream)
                except StopAsyncIteration:
                    return
                yield chunk
                continue
            task = asyncio.create_task(_next_chunk(stream))
            async for text in wait_with_fillers(task, patience, deadline):
                yield text
            got = task.result()
            if got is None:
                return
            deadline = None
            yield got

    def _builtin(self, call: ToolCallChunk) -> tuple[str | None, Transfer | Hangup | None]:
        """A built-in or unknown tool's answer and ending; (None, None) for a spec tool."""
        if call.name == END_CALL:
            reason = text_argument(call.arguments_json, "reason") or "caller is done"
            return '{"ok": true}', Hangup(reason)
        if call.name == TRANSFER_CALL and self._transfer_to:
            summary = text_argument(call.arguments_json, "summary")
            return '{"ok": true}', Transfer(self._transfer_to, summary)
        if call.name not in self._tools:
            return json.dumps({"ok": False, "error": f"there is no tool {call.name!r}"}), None
        return None, None

    def _prepare(self, call: ToolCallChunk) -> PreparedCall | str:
        """The spec tool's request, or the answer for the model when its arguments are bad."""
        tool = self._tools[call.name]
        try:
            return prepare_call(
                self._spec, tool, call.arguments_json, self._scope.vars, self._ctx.call
            )
        except ToolArgumentError as exc:
            self._record(EventKind.TOOL, tool=tool.name, method=tool.method, url="",
                         outcome="invalid_arguments", status=None, attempts=0, ms=0.0,
                         error=str(exc))  # fmt: skip
            return json.dumps({"ok": False, "error": str(exc)})

    async def _run_tool(
        self, prepared: PreparedCall, patience: Patience
    ) -> AsyncIterator[Say | str]:
        """Run a spec tool, with fillers while it takes long; the last item is the tool
        message's content (a ``str``)."""
        tool = prepared.tool
        self.pending_tool = tool.name
        task = asyncio.create_task(run_tool(self._ctx.tools, prepared, self._ctx.log))
        try:
            async for text in wait_with_fillers(task, patience, patience.now() + tool_limit(tool)):
                yield self._filler(text)
            result = task.result()
        except TimeoutError:
            limit = tool_limit(tool)
            result = ToolResult(tool.name, ToolOutcome.TIMEOUT, {}, None, 0, limit * 1000,
                                f"no answer within {limit:g} s")  # fmt: skip
        finally:
            self.pending_tool = None
        self._record(EventKind.TOOL, **tool_event(prepared, result))
        yield result_message(result, prepared.fallback)

    def _messages(self) -> list[dict[str, Any]]:
        """The request's messages: the spec's prompt (with today's date), then the history."""
        assert self._spec.llm is not None
        today = self._ctx.today()
        date = f"Today is {today:%A}, {today:%B} {today.day}, {today.year}."
        system = {"role": "system", "content": f"{self._spec.llm.system_prompt}\n\n{date}"}
        return [system, *self.history.request()]

    # --- no input, no match ------------------------------------------------------------------

    def _counted(
        self, policy: RepromptPolicy, kind: EventKind, data: dict[str, Any]
    ) -> list[Action]:
        count = self.no_input if kind is EventKind.NO_INPUT else self.no_match
        self._record(kind, count=count, **data)
        if count <= policy.reprompts:
            question = self.history.last_question()
            actions = self._say_fixed(policy.message)
            return actions + ([self._say(question, ours=True, cacheable=False)] if question else [])
        actions = []
        for step in policy.escalate:
            if isinstance(step, SayStep):
                actions += self._say_fixed(step.text)
            elif isinstance(step, TransferStep):
                target, summary = self._scope.render(step.target), self._scope.render(step.summary)
                return [*actions, self._end(Transfer(target, summary))]
            elif isinstance(step, HangupStep):
                return [*actions, self._end(Hangup(step.reason))]
            else:
                self._ctx.log.warning("escalation step %r does not apply to the llm brain", step)
        return actions

    # --- output and events -------------------------------------------------------------------

    def _say_fixed(self, template: Template) -> list[Action]:
        text = self._scope.render_spoken(template).strip()
        return [self._say(text, ours=True, cacheable=template.is_static)] if text else []

    def _filler(self, text: str) -> Say:
        """A fixed text said while waiting: not the model's (kept out of the history's
        messages) but counted for barge-in."""
        self.history.filler(text)
        return self._say(text, cacheable=True)

    def _say(self, text: str, *, ours: bool = False, cacheable: bool | None = None) -> Say:
        """A Say, recorded. ``ours``: not the model's words, so it joins the history here
        (the model's join it per answer); ``cacheable`` (default: ``ours``): a fixed text
        whose audio the prompt cache may keep."""
        if ours:
            self.history.assistant([text])
        self._patience.said()
        self._record(EventKind.AGENT, text=text)
        return Say(text, interruptible=True, cacheable=ours if cacheable is None else cacheable)

    def _end(self, final: Transfer | Hangup) -> Transfer | Hangup:
        self._ended = True
        if isinstance(final, Transfer):
            self._record(EventKind.OUTCOME, outcome="transfer", target=final.target)
        else:
            self._record(EventKind.OUTCOME, outcome="hangup", reason=final.reason)
        return final

    def _record(self, kind: EventKind, **data: Any) -> None:
        self.events.append(BrainEvent(kind, self._ctx.clock(), STATE, data))


async def _next_chunk(stream: AsyncIterator[LLMChunk]) -> LLMChunk | None:
    """The stream's next chunk, None at its end (a task cannot end in StopAsyncIteration)."""
    try:
        return await anext(stream)
    except StopAsyncIteration:
        return None


def _conforms(brain: LlmBrain) -> Brain:
    """Never called: makes mypy check LlmBrain against the Brain protocol."""
    return brain

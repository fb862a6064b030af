"""LlmBrain on the Acme LLM spec: the real OpenAI adapter against the local protocol server,
the real tool runner against the demo CRM, and the whole agent app on a fake leg."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import pathlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from tests.pipeline.fakes import FakeLeg, FakeTTS, ScriptedASR, talk
from tests.pipeline.harness import Call, Records
from trunkline.agent import (
    AgentSpec,
    AgentUsageError,
    BrainContext,
    Digits,
    EventKind,
    Hangup,
    Interrupted,
    LlmBrain,
    NoInput,
    Say,
    Speech,
    ToolRunner,
    Transfer,
    load_agent_spec,
    parse_agent_spec,
)
from trunkline.agent.demo_crm import CrmServer
from trunkline.agent.llm_brain import CUT_OFF_TEXT, LLM_DOWN_TEXT, RESUME_TEXT, TOOL_FILLER_TEXT
from trunkline.agent.llm_history import INTERRUPTED_NOTE, MAX_HISTORY_MESSAGES, ChatHistory
from trunkline.agent.llm_text import MAX_SENTENCE_CHARS, SentenceSplitter, speakable
from trunkline.agent.llm_tools import (
    ToolArgumentError,
    builtin_schemas,
    parse_arguments,
    tool_parameters,
    tool_schema,
)
from trunkline.apps.agent import agent_app, call_fields
from trunkline.providers import LLM, LLMCapabilities, LLMChunk, RetryPolicy, TextDelta
from trunkline.providers.openai_llm import OpenAILLM
from trunkline.providers.testing import ChatReply, OpenAIServer, ScriptedToolCall
from trunkline.runtime.stores import MemorySessionStore

LLM_SPEC = pathlib.Path(__file__).resolve().parents[2] / "examples" / "acme" / "agent-llm.yaml"
TODAY = dt.date(2025, 1, 6)  # a Monday
GREETING = "Thank you for calling Acme. How can I help you today?"
ORDER_CALL = ScriptedToolCall("order_status", {"order_number": "12345"}, "call_1")


@pytest.fixture(scope="module")
def llm_spec() -> AgentSpec:
    return load_agent_spec(LLM_SPEC)


@pytest.fixture
async def server() -> AsyncIterator[OpenAIServer]:
    async with OpenAIServer() as srv:
        yield srv


def openai(server: OpenAIServer) -> OpenAILLM:
    return OpenAILLM(
        model="gpt-test", api_key="test-key", base_url=server.base_url,
        retry=RetryPolicy(attempts=2, initial_backoff=0.0, jitter=0.0),
        first_token_timeout=2.0, idle_timeout=2.0,
    )  # fmt: skip


@pytest.fixture
async def make(
    llm_spec: AgentSpec, server: OpenAIServer, crm: CrmServer, tools: ToolRunner
) -> AsyncIterator[Callable[..., LlmBrain]]:
    llms: list[OpenAILLM] = []

    def build(spec: AgentSpec | None = None, llm: LLM | None = None) -> LlmBrain:
        if llm is None:
            llms.append(openai(server))
            llm = llms[-1]
        return LlmBrain(spec or llm_spec, context(crm, tools, llm))

    yield build
    for llm in llms:
        await llm.aclose()


def context(crm: CrmServer, tools: ToolRunner, llm: LLM) -> BrainContext:
    return BrainContext(
        tools=tools, variables={"crm": crm.url}, call={"id": "c1"}, today=lambda: TODAY, llm=llm
    )


def texts(actions: list[Any]) -> list[str]:
    return [a.text for a in actions if isinstance(a, Say)]


def tool_answer(messages: list[dict[str, Any]]) -> dict[str, Any]:
    return json.loads(messages[-1]["content"])  # type: ignore[no-any-return]


# -- a turn ---------------------------------------------------------------------------------


async def test_greeting_then_a_reply_streamed_sentence_by_sentence(
    make: Callable[..., LlmBrain], server: OpenAIServer
) -> None:
    server.replies = [ChatReply("Hello! I can check orders. What is your order number?")]
    brain = make()
    assert brain.start() == [Say(GREETING, cacheable=True)]
    actions = await brain.on_input(Speech("hi there", 0.8))
    assert texts(actions) == ["Hello!", "I can check orders.", "What is your order number?"]
    request = server.requests[0].body
    assert request["model"] == "gpt-test" and request["stream"] is True
    system, *rest = request["messages"]
    assert system["role"] == "system" and system["content"].startswith("You are the phone")
    assert system["content"].endswith("Today is Monday, January 6, 2025.")
    assert rest == [
        {"role": "assistant", "content": GREETING},
        {"role": "user", "content": "hi there"},
    ]
    names = [t["function"]["name"] for t in request["tools"]]
    assert names == ["order_status", "book_appointment", "account_balance", "end_call",
                     "transfer_call"]  # fmt: skip
    events = brain.drain_events()
    assert [e.kind for e in events] == [EventKind.AGENT, EventKind.CALLER] + [EventKind.AGENT] * 3
    assert events[1].data == {"text": "hi there", "confidence": 0.8, "intent": None}
    assert brain.drain_events() == []


class StepLLM(LLM):
    """Yields given chunks and logs each one as it is produced (to see interleaving)."""

    def __init__(self, chunks: list[LLMChunk], log: list[str]) -> None:
        super().__init__(label="step", capabilities=LLMCapabilities(True, True))
        self.chunks = chunks
        self.log = log

    async def _chat_impl(
        self, messages: list[dict[str, Any]], *, tools: list[dict[str, Any]] | None
    ) -> AsyncIterator[LLMChunk]:
        for chunk in self.chunks:
            self.log.append(f"token {chunk.text!r}" if isinstance(chunk, TextDelta) else "call")
            yield chunk


async def test_each_sentence_is_yielded_before_the_next_token_is_read(
    make: Callable[..., LlmBrain],
) -> None:
    log: list[str] = []
    tokens = ["Your", " order", " shipped.", " It", " arrives", " Friday."]
    brain = make(llm=StepLLM([TextDelta(t) for t in tokens], log))
    brain.start()
    async for action in brain.respond(Speech("status")):
        assert isinstance(action, Say)
        log.append(f"say {action.text!r}")
    assert log == [
        "token 'Your'", "token ' order'", "token ' shipped.'", "token ' It'",
        "say 'Your order shipped.'",  # the sentence ends at the space that follows its stop
        "token ' arrives'", "token ' Friday.'", "say 'It arrives Friday.'",
    ]  # fmt: skip


async def test_a_tool_call_round_trip_through_the_tool_runner_and_the_crm(
    make: Callable[..., LlmBrain], server: OpenAIServer
) -> None:
    def reply(messages: list[dict[str, Any]]) -> ChatReply:
        if messages[-1]["role"] == "tool":
            result = tool_answer(messages)["result"]
            return ChatReply(f"Order 12345 is {result['status']}. {result['eta']}")
        return ChatReply("Let me check that.", (ORDER_CALL,))

    server.replies = reply
    brain = make()
    brain.start()
    actions = await brain.on_input(Speech("where is order one two three four five"))
    assert texts(actions) == ["Let me check that.", "Order 12345 is shipped.",
                              "It should arrive on Friday."]  # fmt: skip
    second = server.requests[1].body["messages"]
    assert second[-2]["tool_calls"] == [{
        "id": "call_1", "type": "function",
        "function": {"name": "order_status", "arguments": '{"order_number": "12345"}'},
    }]  # fmt: skip
    assert second[-1]["role"] == "tool" and second[-1]["tool_call_id"] == "call_1"
    assert tool_answer(second)["result"]["status"] == "shipped"
    tool = [e for e in brain.drain_events() if e.kind is EventKind.TOOL]
    assert len(tool) == 1 and tool[0].data["outcome"] == "ok"
    assert tool[0].data["url"].endswith("/orders/****")  # caller-given values are masked


async def test_a_failing_tool_sends_its_fallback_to_the_model_after_a_filler(
    make: Callable[..., LlmBrain], server: OpenAIServer, crm: CrmServer
) -> None:
    crm.faults.mode = "error"

    def reply(messages: list[dict[str, Any]]) -> ChatReply:
        if messages[-1]["role"] == "tool":
            return ChatReply(tool_answer(messages)["tell_the_caller"])
        return ChatReply("", (ORDER_CALL,))

    server.replies = reply
    brain = make()
    brain.start()
    actions = await brain.on_input(Speech("order one two three four five"))
    assert texts(actions) == [TOOL_FILLER_TEXT, "Sorry, I can't reach our order system right now."]
    tool = [e for e in brain.drain_events() if e.kind is EventKind.TOOL]
    assert tool[0].data["outcome"] == "error" and tool[0].data["attempts"] == 2  # retries: 1


async def test_a_rejected_lookup_and_bad_arguments_go_back_to_the_model(
    make: Callable[..., LlmBrain], server: OpenAIServer
) -> None:
    server.replies = [
        ChatReply("", (ScriptedToolCall("order_status", {"order_number": "99999"}),)),
        ChatReply("", (ScriptedToolCall("order_status", "{not json"),)),
        ChatReply("", (ScriptedToolCall("no_such_tool", {}),)),
        ChatReply("I could not find that order."),
    ]
    brain = make()
    brain.start()
    actions = await brain.on_input(Speech("order nine nine nine nine nine"))
    assert texts(actions) == [TOOL_FILLER_TEXT, "I could not find that order."]
    answers = [
        json.loads(m["content"]) for m in server.requests[3].body["messages"] if m["role"] == "tool"
    ]
    assert [a["ok"] for a in answers] == [False, False, False]
    assert "HTTP 404" in answers[0]["error"]
    assert answers[1]["error"] == "the arguments are not valid JSON"
    assert "no tool" in answers[2]["error"]


async def test_a_model_that_keeps_calling_tools_is_stopped(
    make: Callable[..., LlmBrain], server: OpenAIServer
) -> None:
    server.replies = lambda messages: ChatReply("", (ORDER_CALL,))
    brain = make()
    brain.start()
    actions = await brain.on_input(Speech("order"))
    assert texts(actions) == [TOOL_FILLER_TEXT, LLM_DOWN_TEXT]
    assert len(server.requests) == 4  # MAX_TOOL_ROUNDS answers, no more


async def test_end_call_and_transfer_call_end_the_conversation(
    make: Callable[..., LlmBrain], server: OpenAIServer
) -> None:
    server.replies = [
        ChatReply("Goodbye!", (ScriptedToolCall("end_call", {"reason": "caller done"}),))
    ]
    brain = make()
    brain.start()
    actions = await brain.on_input(Speech("that's all"))
    assert actions == [Say("Goodbye!"), Hangup("caller done")]
    assert brain.ended and await brain.on_input(Speech("hello?")) == []

    server.replies = [
        ChatReply("Transferring you now.",
                  (ScriptedToolCall("transfer_call", {"summary": "Wants a refund."}),)),
    ]  # fmt: skip
    server._chats = 0
    other = make()
    other.start()
    actions = await other.on_input(Speech("a person please"))
    assert actions == [
        Say("Transferring you now."),
        Transfer("sip:agent@127.0.0.1", "Wants a refund."),
    ]
    outcome = [e.data for e in other.drain_events() if e.kind is EventKind.OUTCOME]
    assert outcome == [{"outcome": "transfer", "target": "sip:agent@127.0.0.1"}]


# -- failures of the model ---------------------------------------------------------------


async def test_a_stream_cut_mid_sentence_says_what_was_complete_then_an_apology(
    make: Callable[..., LlmBrain], server: OpenAIServer
) -> None:
    server.replies = [ChatReply("Your order has shipped. It should arrive on Friday."),
                      ChatReply("Sure, order 12345.")]  # fmt: skip
    server.fail("cut", after=6)  # inside the second sentence
    brain = make()
    brain.start()
    actions = await brain.on_input(Speech("where is my order"))
    assert texts(actions) == ["Your order has shipped.", CUT_OFF_TEXT]
    assert not brain.ended and brain.llm_errors == 1
    assert brain.history.messages[-2:] == [
        {"role": "assistant", "content": "Your order has shipped."},
        {"role": "assistant", "content": CUT_OFF_TEXT},
    ]
    assert texts(await brain.on_input(Speech("again please"))) == ["Sure, order 12345."]


async def test_a_model_that_is_down_gets_the_fallback_sentence(
    make: Callable[..., LlmBrain], server: OpenAIServer
) -> None:
    server.fail("status", status=500, times=2)  # both attempts
    brain = make()
    brain.start()
    assert texts(await brain.on_input(Speech("hello"))) == [LLM_DOWN_TEXT]
    server.fail("status", status=401)  # not retried, same answer
    assert texts(await brain.on_input(Speech("hello"))) == [LLM_DOWN_TEXT]
    server.replies = [ChatReply("")]  # an empty answer would be silence
    server._chats = 0
    assert texts(await brain.on_input(Speech("hello"))) == [LLM_DOWN_TEXT]


# -- caller events -----------------------------------------------------------------------


async def test_barge_in_cuts_the_history_to_what_was_heard(
    make: Callable[..., LlmBrain], server: OpenAIServer
) -> None:
    server.replies = [ChatReply("Your order has shipped. It should arrive on Friday.")]
    brain = make()
    brain.start()
    await brain.on_input(Speech("status"))
    assert await brain.on_input(Interrupted("Your order has shipped. It should")) == []
    assert brain.history.messages[-1] == {
        "role": "assistant",
        "content": "Your order has shipped. It should",
        "interrupted": True,
    }
    await brain.on_input(Interrupted(""))  # a second barge-in with nothing new: no change
    assert brain.history.messages[-1]["content"] == "Your order has shipped. It should"
    # The model reads where it was cut off; the flag itself is not sent.
    await brain.on_input(Speech("thanks"))
    sent = server.requests[-1].body["messages"]
    assert sent[-2] == {
        "role": "assistant",
        "content": "Your order has shipped. It should" + INTERRUPTED_NOTE,
    }
    interrupted = [e for e in brain.drain_events() if e.kind is EventKind.INTERRUPTED]
    assert len(interrupted) == 2


async def test_no_input_no_match_and_keypad(
    make: Callable[..., LlmBrain], server: OpenAIServer
) -> None:
    server.replies = [ChatReply("What is your order number?"), ChatReply("Thanks.")]
    brain = make()
    brain.start()
    await brain.on_input(Speech("order status"))
    again = ["Sorry, I didn't hear anything.", "What is your order number?"]
    assert texts(await brain.on_input(NoInput())) == again
    assert texts(await brain.on_input(Speech(""))) == ["Sorry, I didn't catch that.",
                                                      "What is your order number?"]  # fmt: skip
    assert texts(await brain.on_input(Digits("12345#"))) == ["Thanks."]
    assert server.requests[-1].body["messages"][-1] == {"role": "user", "content": "Keypad: 12345"}
    dtmf = [e.data for e in brain.drain_events() if e.kind is EventKind.DTMF]
    assert dtmf == [{"digits": "****"}]
    assert await brain.on_input(Speech("partial", final=False)) == []
    # Silence past the reprompts escalates per the spec: say goodbye, hang up.
    assert brain.no_input == 0  # a keypad entry was input
    await brain.on_input(NoInput())
    actions = await brain.on_input(NoInput())
    assert actions == [Say("I still can't hear you. Please call again later. Goodbye.",
                           cacheable=True), Hangup("no input")]  # fmt: skip
    assert brain.ended


async def test_listen_spec_is_free_speech_with_the_agents_endpointing(
    make: Callable[..., LlmBrain],
) -> None:
    listen = make().listen_spec()
    assert (listen.grammar, listen.matcher, listen.endpoint_silence_ms) == (None, None, 800)
    assert listen.no_input_timeout_ms == 8000
    assert listen.dtmf is not None and listen.dtmf.terminator == "#"


async def test_snapshot_restore_and_resume(
    make: Callable[..., LlmBrain], server: OpenAIServer, crm: CrmServer, tools: ToolRunner,
    llm_spec: AgentSpec,
) -> None:  # fmt: skip
    server.replies = [ChatReply("What is your order number?")]
    brain = make()
    brain.start()
    await brain.on_input(Speech("order status"))
    snap = json.loads(json.dumps(brain.snapshot()))
    again = LlmBrain.restore(llm_spec, snap, context(crm, tools, brain._llm))
    assert again.history.messages == brain.history.messages
    assert texts(again.resume()) == [RESUME_TEXT, "What is your order number?"]

    # A snapshot taken while a tool ran: the unanswered call is dropped, the tool's
    # fallback is said, and it is not run again.
    call = {"id": "x", "type": "function", "function": {"name": "order_status", "arguments": "{}"}}
    brain.history.assistant([], [call])
    brain.pending_tool = "order_status"
    snap = brain.snapshot()
    assert snap["history"][-1]["content"] == "What is your order number?"
    restored = LlmBrain.restore(llm_spec, snap, context(crm, tools, brain._llm))
    assert texts(restored.resume()) == [
        RESUME_TEXT,
        "Sorry, I can't reach our order system right now.",
        "What is your order number?",
    ]
    assert restored.pending_tool is None
    said = [m["content"] for m in restored.history.messages[-3:]]
    assert said == [RESUME_TEXT, "Sorry, I can't reach our order system right now.",
                    "What is your order number?"]  # fmt: skip

    for bad in (
        {**snap, "version": 9}, {**snap, "spec": "other"}, {**snap, "history": [{"role": "x"}]},
        {**snap, "pending_tool": "nope"}, {k: v for k, v in snap.items() if k != "history"},
    ):  # fmt: skip
        with pytest.raises(AgentUsageError):
            LlmBrain.restore(llm_spec, bad, context(crm, tools, brain._llm))


async def test_misuse_is_refused(make: Callable[..., LlmBrain], acme_spec: AgentSpec) -> None:
    with pytest.raises(AgentUsageError, match="flow brain"):
        make(spec=acme_spec)
    with pytest.raises(AgentUsageError, match="chat model"):
        LlmBrain(load_agent_spec(LLM_SPEC), BrainContext())
    brain = make()
    with pytest.raises(AgentUsageError):
        await brain.on_input(Speech("before start"))
    brain.start()
    with pytest.raises(AgentUsageError):
        brain.start()


# -- the parts, sans-IO ----------------------------------------------------------------


def test_sentence_splitter() -> None:
    text = "Hi! Dr. Smith said 3.5 is fine... Really? Yes.\n1. Order status\n2. Balance"
    splitter = SentenceSplitter()
    got = [s for ch in text for s in splitter.feed(ch)] + splitter.flush()
    assert got == ["Hi!", "Dr. Smith said 3.5 is fine...", "Really?", "Yes.", "Order status",
                   "Balance"]  # fmt: skip
    long = SentenceSplitter().feed("word, " * 60)
    assert long and all(len(s) <= MAX_SENTENCE_CHARS for s in long)
    cut = SentenceSplitter()
    assert cut.feed("Done. Half a sen") == ["Done."] and cut.drop() == " Half a sen"
    assert cut.flush() == []
    assert speakable("**Bold** and `code` # not a heading") == "Bold and code # not a heading"


def test_chat_history_rules() -> None:
    history = ChatHistory()
    history.assistant(["Hello there.", "How can I help?"])
    history.filler("One moment.")
    history.assistant(["Second message."])
    history.interrupted("Hello there. How can I help? One")
    assert [m["content"] for m in history.messages] == ["Hello there. How can I help?"]
    assert history.last_question() == "How can I help?"
    for i in range(MAX_HISTORY_MESSAGES + 10):
        history.user(f"u{i}")
    assert len(history.messages) <= MAX_HISTORY_MESSAGES
    assert history.messages[0]["role"] == "user"


def test_tool_schemas_and_arguments(llm_spec: AgentSpec, acme_spec: AgentSpec) -> None:
    book = llm_spec.tools["book_appointment"]
    assert tool_parameters(book) == ("day",)
    assert tool_schema(llm_spec, book)["function"]["parameters"]["required"] == ["day"]
    # A flow spec's slot of the same name describes the parameter.
    order = acme_spec.tools["order_status"]
    described = tool_schema(acme_spec, order)["function"]["parameters"]["properties"]
    assert described["order_number"]["description"] == "order number: 5 digits, digits only"
    assert [s["function"]["name"] for s in builtin_schemas(transfer=False)] == ["end_call"]
    assert parse_arguments('{"day": "2025-01-10", "x": 1}', ("day",)) == {"day": "2025-01-10"}
    assert parse_arguments('{"n": 12345}', ("n",)) == {"n": "12345"}
    for bad in ("[]", "{}", '{"day": ""}', '{"day": {"a": 1}}', '{"day": "' + "9" * 300 + '"}'):
        with pytest.raises(ToolArgumentError):
            parse_arguments(bad, ("day",))


def test_an_llm_spec_may_use_slot_placeholders_only_in_its_tools() -> None:
    base = "name: x\nbrain: llm\nllm: {model: m, system_prompt: p, tools: [t]}\n"
    parse_agent_spec(base + "tools:\n  t: {url: 'http://h/{{slots.n}}'}\n")
    with pytest.raises(Exception, match="no slot named 'n'"):
        parse_agent_spec(base + "greeting: '{{slots.n}}'\ntools:\n  t: {url: 'http://h/'}\n")


# -- the whole agent app on a leg --------------------------------------------------------


async def test_the_llm_agent_answers_a_call_end_to_end(
    llm_spec: AgentSpec, server: OpenAIServer, crm: CrmServer, tools: ToolRunner
) -> None:
    def reply(messages: list[dict[str, Any]]) -> ChatReply:
        last = messages[-1]
        if last["role"] == "tool":
            return ChatReply(f"It is {tool_answer(messages)['result']['status']}.")
        if "bye" in last["content"]:
            return ChatReply("Goodbye!", (ScriptedToolCall("end_call", {"reason": "done"}),))
        return ChatReply("Let me look.", (ORDER_CALL,))

    server.replies = reply
    asr = ScriptedASR("where is order one two three four five", "bye")
    tts = FakeTTS()
    records = Records()
    sessions = MemorySessionStore()

    def factory(info: Any) -> BrainContext:
        return BrainContext(tools=tools, variables={"crm": crm.url}, call=call_fields(info),
                            today=lambda: TODAY)  # fmt: skip

    async with openai(server) as llm:
        app = agent_app(llm_spec, asr=asr, tts=tts, context_factory=factory, sessions=sessions,
                        records=records, llm=llm)  # fmt: skip
        leg = FakeLeg("call-llm")
        call = await Call(app, leg, asr, tts, sessions, records,
                          asyncio.create_task(app(leg))).started()  # fmt: skip
        await call.until_listening("the greeting")
        assert call.said() == ["Thank you for calling Acme.", "How can I help you today?"]
        await call.say(talk(800))
        await call.until_listening("the order status")
        assert call.asr.streams[0].grammar is None  # free speech: the general model
        assert call.said()[-2:] == ["Let me look.", "It is shipped."]
        await call.say(talk(400))
        record = await call.ended()
    assert leg.hangups == ["done"]
    assert record.outcome == "hangup"
    callers = [t["text"] for t in record.transcript if t["role"] == "caller"]
    assert callers == ["where is order one two three four five", "bye"]
    assert [c["tool"] for c in record.tool_calls] == ["order_status"]
    assert record.tool_calls[0]["outcome"] == "ok"


def test_an_llm_agent_needs_a_chat_model(llm_spec: AgentSpec) -> None:
    with pytest.raises(AgentUsageError, match="chat model"):
        agent_app(llm_spec, asr=ScriptedASR(), tts=FakeTTS(), context_factory=BrainContext,
                  sessions=MemorySessionStore(), records=Records())  # fmt: skip

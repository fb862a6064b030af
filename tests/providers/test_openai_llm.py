"""OpenAILLM against the local OpenAI-protocol server: streaming, tool calls, every failure."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest

from trunkline.providers import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    LLMChunk,
    ProviderError,
    ProviderUsageError,
    RetryPolicy,
    TextDelta,
    ToolCallChunk,
)
from trunkline.providers.openai_llm import OpenAILLM, ToolCallAssembler
from trunkline.providers.sse import SseDecoder, SseError, SseEvent
from trunkline.providers.testing import ChatReply, OpenAIServer, ScriptedToolCall

from .test_retry import Recorder

NO_WAIT = RetryPolicy(attempts=3, initial_backoff=0.0, jitter=0.0)
USER = [{"role": "user", "content": "hello"}]
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "order_status",
        "parameters": {"type": "object", "properties": {"order_number": {"type": "string"}}},
    },
}


@pytest.fixture
async def server() -> AsyncIterator[OpenAIServer]:
    async with OpenAIServer() as srv:
        yield srv


def make_llm(server: OpenAIServer, **kwargs: object) -> OpenAILLM:
    options: dict[str, object] = {
        "model": "gpt-test", "api_key": "test-key", "base_url": server.base_url,
        "retry": NO_WAIT, "first_token_timeout": 2.0, "idle_timeout": 2.0,
    }  # fmt: skip
    options.update(kwargs)
    return OpenAILLM(**options)  # type: ignore[arg-type]


async def collect(llm: OpenAILLM, **kwargs: object) -> list[LLMChunk]:
    return [chunk async for chunk in llm.chat(USER, **kwargs)]  # type: ignore[arg-type]


def text_of(chunks: list[LLMChunk]) -> str:
    return "".join(c.text for c in chunks if isinstance(c, TextDelta))


# -- the happy path -----------------------------------------------------------------------


async def test_text_streams_as_tokens_and_the_request_is_openai_shaped(
    server: OpenAIServer,
) -> None:
    server.replies = [ChatReply("Hello there. How can I help?")]
    async with make_llm(server, temperature=0.3, max_tokens=50) as llm:
        chunks = await collect(llm)
    assert [c.text for c in chunks if isinstance(c, TextDelta)] == [
        "Hello", " there.", " How", " can", " I", " help?",
    ]  # fmt: skip
    request = server.requests[0]
    assert request.path == "/v1/chat/completions"
    assert request.headers["Authorization"] == "Bearer test-key"
    assert request.body == {
        "model": "gpt-test", "messages": USER, "stream": True, "temperature": 0.3,
        "max_tokens": 50,
    }  # fmt: skip


async def test_tool_call_fragments_are_assembled_into_whole_calls(server: OpenAIServer) -> None:
    args = {"order_number": "12345", "note": "a longer text, split in many fragments"}
    server.replies = [
        ChatReply(
            "Let me check.",
            (ScriptedToolCall("order_status", args, "call_a"), ScriptedToolCall("end_call")),
        )
    ]
    async with make_llm(server) as llm:
        chunks = await collect(llm, tools=[WEATHER_TOOL])
    assert text_of(chunks) == "Let me check."
    calls = [c for c in chunks if isinstance(c, ToolCallChunk)]
    assert [(c.id, c.name) for c in calls] == [("call_a", "order_status"), ("call_1_1", "end_call")]
    assert json.loads(calls[0].arguments_json) == args
    assert calls[1].arguments_json == "{}"
    assert server.requests[0].body["tools"] == [WEATHER_TOOL]


def test_assembler_rules() -> None:
    calls = ToolCallAssembler("t")
    calls.add([{"index": 1, "id": "b", "function": {"name": "two", "arguments": '{"x"'}}])
    calls.add([{"index": 0, "function": {"name": "one"}}])  # no id: one is made up
    calls.add([{"index": 1, "function": {"arguments": ": 1}"}}])
    assert calls.take() == [
        ToolCallChunk("call_0", "one", "{}"),
        ToolCallChunk("b", "two", '{"x": 1}'),
    ]
    assert calls.take() == []
    for bad in ("x", [1], [{"index": -1}], [{"function": "f"}], [{"function": {"arguments": 3}}]):
        with pytest.raises(ProviderError, match="malformed"):
            ToolCallAssembler("t").add(bad)
    nameless = ToolCallAssembler("t")
    nameless.add([{"index": 0, "function": {"arguments": "{}"}}])
    with pytest.raises(ProviderError, match="no function name"):
        nameless.take()
    many = ToolCallAssembler("t")
    with pytest.raises(ProviderError, match="more than"):
        many.add([{"index": i, "function": {"name": "f"}} for i in range(17)])


def test_sse_decoder_handles_any_cut_comments_and_multiline_data() -> None:
    stream = b': ping\r\ndata: {"a":\r\ndata: 1}\r\n\r\nevent: error\ndata:x\n\nid: 3\n\n'
    whole = SseDecoder().feed(stream)
    assert whole == [SseEvent('{"a":\n1}'), SseEvent("x", "error")]
    for step in (1, 2, 3, 7):
        decoder = SseDecoder()
        got = [e for i in range(0, len(stream), step) for e in decoder.feed(stream[i : i + step])]
        assert got == whole
    with pytest.raises(SseError, match="UTF-8"):
        SseDecoder().feed(b"data: \xff\n")
    with pytest.raises(SseError, match="longer"):
        SseDecoder(max_line_bytes=10).feed(b"data: 0123456789")


# -- failures before the first token: retried -------------------------------------------


@pytest.mark.parametrize("status", [500, 429, 503])
async def test_retryable_statuses_are_retried_before_the_first_token(
    server: OpenAIServer, status: int
) -> None:
    server.fail("status", status=status, times=2)
    async with make_llm(server) as llm:
        chunks = await collect(llm)
    assert text_of(chunks) == "You said: hello."
    assert len(server.requests) == 3


async def test_a_status_that_persists_is_raised_with_the_services_message(
    server: OpenAIServer,
) -> None:
    server.fail("status", status=500, times=3)
    async with make_llm(server) as llm:
        with pytest.raises(APIStatusError) as info:
            await collect(llm)
    assert info.value.status == 500 and info.value.retryable
    assert "Injected failure 500." in str(info.value)
    assert len(server.requests) == 3


async def test_a_wrong_key_is_not_retried(server: OpenAIServer) -> None:
    async with make_llm(server, api_key="wrong") as llm:
        with pytest.raises(APIStatusError) as info:
            await collect(llm)
    assert info.value.status == 401 and not info.value.retryable
    assert "Incorrect API key" in info.value.message
    assert len(server.requests) == 1


async def test_a_hung_server_times_out_on_the_first_token_and_is_retried(
    server: OpenAIServer,
) -> None:
    server.fail("hang")
    async with make_llm(server, first_token_timeout=0.2) as llm:
        chunks = await collect(llm)
    assert text_of(chunks) == "You said: hello."
    assert len(server.requests) == 2


async def test_the_servers_scripted_latency_counts_against_the_first_token_timeout() -> None:
    slow = OpenAIServer(first_token_delay=30.0)  # far past the 0.1 s limit
    async with slow, make_llm(slow, first_token_timeout=0.1) as llm:
        with pytest.raises(APITimeoutError):
            await collect(llm)
    assert len(slow.requests) == 3  # every attempt timed out


async def test_no_server_is_a_connection_error(server: OpenAIServer) -> None:
    port = server.port
    await server.close()
    llm = OpenAILLM(model="m", base_url=f"http://127.0.0.1:{port}/v1", retry=RetryPolicy(1))
    async with llm:
        with pytest.raises(APIConnectionError) as info:
            await collect(llm)
    assert info.value.retryable


# -- failures after the first token: never retried --------------------------------------


async def test_a_cut_stream_raises_after_the_text_already_yielded(server: OpenAIServer) -> None:
    server.replies = [ChatReply("Your order has shipped. It arrives on Friday.")]
    server.fail("cut", after=4)
    got: list[LLMChunk] = []
    async with make_llm(server) as llm:
        with pytest.raises(ProviderError) as info:
            async for chunk in llm.chat(USER):
                got.append(chunk)
    assert text_of(got) == "Your order has shipped."
    assert isinstance(info.value, APIConnectionError)
    assert len(server.requests) == 1  # not retried: text already went out


async def test_a_stream_ending_without_done_is_an_error(server: OpenAIServer) -> None:
    server.replies = [ChatReply("One two three.")]
    server.fail("truncate", after=2)
    got: list[LLMChunk] = []
    async with make_llm(server) as llm:
        with pytest.raises(ProviderError, match="before \\[DONE\\]"):
            async for chunk in llm.chat(USER):
                got.append(chunk)
    assert text_of(got) == "One two"


async def test_a_stall_after_the_first_token_hits_the_idle_timeout(server: OpenAIServer) -> None:
    server.replies = [ChatReply("One two three.")]
    server.fail("stall", after=1)
    recorder = Recorder()
    got: list[LLMChunk] = []
    async with make_llm(server, idle_timeout=0.2, metrics=recorder) as llm:
        with pytest.raises(APITimeoutError):
            async for chunk in llm.chat(USER):
                got.append(chunk)
    assert text_of(got) == "One"
    assert len(server.requests) == 1
    assert recorder.events == [("started", 1), ("first_byte",), ("error", 1, False)]


@pytest.mark.parametrize("after", [0, 2])
async def test_garbage_in_the_stream_is_a_provider_error(server: OpenAIServer, after: int) -> None:
    server.replies = [ChatReply("One two three.")]
    server.fail("garbage", after=after)
    got: list[LLMChunk] = []
    async with make_llm(server) as llm:
        with pytest.raises(ProviderError, match="not JSON") as info:
            async for chunk in llm.chat(USER):
                got.append(chunk)
    assert not info.value.retryable
    assert len(got) == after
    assert len(server.requests) == 1  # the server is broken: no retry


async def test_an_error_event_inside_the_stream(server: OpenAIServer) -> None:
    def reply(messages: list[dict[str, object]]) -> ChatReply:
        return ChatReply("x")

    server.replies = reply
    llm = make_llm(server)
    events = [
        'data: {"error": {"message": "overloaded", "type": "server_error"}}',
        "data: [1, 2]",
        'data: {"choices": "no"}',
        'data: {"choices": [{"delta": {"content": 5}}]}',
    ]
    for data in events:
        with pytest.raises(ProviderError) as info:
            llm._chunks(data.removeprefix("data: "), ToolCallAssembler("t"))
        assert ("overloaded" in str(info.value)) == (data is events[0])
    assert llm._chunks('{"choices": []}', ToolCallAssembler("t")) == []  # usage-only chunk
    await llm.aclose()


def test_bad_base_url_is_a_usage_error() -> None:
    with pytest.raises(ProviderUsageError):
        OpenAILLM(model="m", base_url="ftp://x")

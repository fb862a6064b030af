"""The LLM brain's tools: the spec's HTTP tools as OpenAI functions, and two built-ins.

A spec tool is described to the model from what the spec already says. Its parameters
are the ``{{slots.x}}`` placeholders of its URL, headers and body: an ``llm`` agent
fills them from the model's arguments instead of from a flow's slots (the spec loader
accepts such placeholders in an ``llm`` spec's tools for that reason). Every parameter
is a required string; a slot of the same name declared in a flow state adds its type to
the description. The answer's mapped ``result`` fields are what the model gets back.

Two built-in tools end the conversation, so the model decides when, and the pipeline
acts (the flow brain's ``transfer`` and ``hangup`` steps):

- ``end_call(reason)`` -> ``Hangup``;
- ``transfer_call(summary)`` -> ``Transfer`` to the spec variable ``transfer_to`` (offered
  only when the spec or the deployment sets it).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from trunkline.agent.flow_scope import MASK, FlowScope
from trunkline.agent.spec import AgentSpec, DigitsRule, SlotType, ToolSpec
from trunkline.agent.template import value_text
from trunkline.agent.tools import ToolCaller, ToolOutcome, ToolRequest, ToolResult

__all__ = [
    "END_CALL",
    "TRANSFER_CALL",
    "TRANSFER_VAR",
    "PreparedCall",
    "ToolArgumentError",
    "builtin_schemas",
    "call_message",
    "parse_arguments",
    "prepare_call",
    "result_message",
    "run_tool",
    "text_argument",
    "tool_event",
    "tool_parameters",
    "tool_schema",
]

END_CALL = "end_call"
TRANSFER_CALL = "transfer_call"
#: The spec variable (``vars``) holding the SIP URI that ``transfer_call`` hands calls to.
TRANSFER_VAR = "transfer_to"
#: Longest argument value taken from the model: an order number or a date is short; a
#: long value is a confused model, and it would end up in a URL.
MAX_ARGUMENT_CHARS = 200
#: Longest transfer summary kept (it goes into a SIP header or a screen for a human).
MAX_SUMMARY_CHARS = 500


class ToolArgumentError(ValueError):
    """The model's arguments do not fit the tool; the message goes back to the model."""


def tool_parameters(tool: ToolSpec) -> tuple[str, ...]:
    """The tool's parameters: ``{{slots.x}}`` names in its URL, headers and body, in order."""
    templates = [tool.url, *tool.headers.values(), *(tool.body or {}).values()]
    names: list[str] = []
    for template in templates:
        for path in template.paths():
            if path[0] == "slots" and len(path) == 2 and path[1] not in names:
                names.append(path[1])
    return tuple(names)


def _describe_parameter(spec: AgentSpec, name: str) -> str:
    slot = spec.slot(name)
    if slot is None:
        return name.replace("_", " ")
    if slot.type is SlotType.DIGITS and isinstance(slot.rule, DigitsRule):
        low, high = slot.rule.min_length, slot.rule.max_length
        length = str(low) if low == high else f"{low} to {high}"
        return f"{name.replace('_', ' ')}: {length} digits, digits only"
    if slot.type is SlotType.DATE:
        return f"{name.replace('_', ' ')}: a date as YYYY-MM-DD"
    return name.replace("_", " ")


def tool_schema(spec: AgentSpec, tool: ToolSpec) -> dict[str, Any]:
    """The OpenAI ``tools`` entry for a spec tool."""
    params = tool_parameters(tool)
    returns = ", ".join(tool.result) or "nothing but success or failure"
    return {
        "type": "function",
        "function": {
            "name": tool.name,
            "description": f"Call the {tool.name.replace('_', ' ')} service. Returns: {returns}.",
            "parameters": {
                "type": "object",
                "properties": {
                    p: {"type": "string", "description": _describe_parameter(spec, p)}
                    for p in params
                },
                "required": list(params),
                "additionalProperties": False,
            },
        },
    }


def builtin_schemas(*, transfer: bool) -> list[dict[str, Any]]:
    """``end_call`` always; ``transfer_call`` when a transfer target is configured."""

    def schema(name: str, description: str, arg: str, arg_description: str) -> dict[str, Any]:
        return {
            "type": "function",
            "function": {
                "name": name,
                "description": description,
                "parameters": {
                    "type": "object",
                    "properties": {arg: {"type": "string", "description": arg_description}},
                    "required": [arg],
                    "additionalProperties": False,
                },
            },
        }

    out = [
        schema(
            END_CALL,
            "End the phone call, after saying goodbye, when the caller is done.",
            "reason",
            "why the call ends, in a few words",
        )
    ]
    if transfer:
        out.append(
            schema(
                TRANSFER_CALL,
                "Transfer the caller to a human agent, when they ask for a person or you "
                "cannot help. Tell the caller first.",
                "summary",
                "one or two sentences for the human: who called and what they need",
            )
        )
    return out


def parse_arguments(arguments_json: str, params: tuple[str, ...]) -> dict[str, str]:
    """The model's arguments as the tool's parameter values (text).

    Raises:
        ToolArgumentError: not a JSON object, a parameter missing, empty or too long.
    """
    try:
        args = json.loads(arguments_json)
    except (ValueError, RecursionError):
        raise ToolArgumentError("the arguments are not valid JSON") from None
    if not isinstance(args, dict):
        raise ToolArgumentError("the arguments must be a JSON object")
    values: dict[str, str] = {}
    for name in params:
        value = args.get(name)
        if value is None or isinstance(value, dict | list):
            raise ToolArgumentError(f"argument {name!r} is missing; give it as text")
        text = value_text(value).strip()
        if not text:
            raise ToolArgumentError(f"argument {name!r} is empty")
        if len(text) > MAX_ARGUMENT_CHARS:
            raise ToolArgumentError(f"argument {name!r} is longer than {MAX_ARGUMENT_CHARS}")
        values[name] = text
    return values


def text_argument(arguments_json: str, name: str, limit: int = MAX_SUMMARY_CHARS) -> str:
    """One optional text argument of a built-in tool ("" when absent or malformed)."""
    try:
        args = json.loads(arguments_json)
    except (ValueError, RecursionError):
        return ""
    value = args.get(name) if isinstance(args, dict) else None
    return value.strip()[:limit] if isinstance(value, str) else ""


def result_message(result: ToolResult, fallback: str) -> str:
    """The tool message content the model reads: the mapped values, or why it failed."""
    doc: Mapping[str, Any]
    if result.ok:
        doc = {"ok": True, "result": dict(result.values)}
    elif result.outcome.value == "rejected":
        doc = {
            "ok": False,
            "error": f"the service refused the request (HTTP {result.status}): "
            "nothing was found for those values, or they are not allowed",
        }
    else:
        doc = {"ok": False, "error": "the service is not available", "tell_the_caller": fallback}
    return json.dumps(doc, default=str)


@dataclass(frozen=True, slots=True)
class PreparedCall:
    """A spec tool call ready to run: the rendered request and what the record shows."""

    tool: ToolSpec
    request: ToolRequest
    values: Mapping[str, str]  # the model's arguments
    fallback: str  # the tool's fallback message, rendered for speech


def prepare_call(
    spec: AgentSpec,
    tool: ToolSpec,
    arguments_json: str,
    variables: Mapping[str, str],
    call: Mapping[str, str],
) -> PreparedCall:
    """Render ``tool``'s request with the model's arguments as its ``slots``.

    Raises:
        ToolArgumentError: see :func:`parse_arguments`.
    """
    values = parse_arguments(arguments_json, tool_parameters(tool))
    scope = FlowScope(spec, variables, call)
    scope.slots = dict(values)
    return PreparedCall(tool, scope.request(tool), values, scope.render_spoken(tool.fallback))


async def run_tool(
    runner: ToolCaller | None,
    prepared: PreparedCall,
    log: logging.Logger | logging.LoggerAdapter[logging.Logger],
) -> ToolResult:
    """Run the call; a missing or misbehaving runner is a failed result, not an exception."""
    tool = prepared.tool
    if runner is None:
        return ToolResult(tool.name, ToolOutcome.ERROR, {}, None, 0, 0.0, "no tool runner")
    try:
        return await runner.call(tool, prepared.request)
    except Exception as exc:  # a ToolCaller must not raise; if one does, the call goes on
        log.exception("tool runner raised for %s", tool.name)
        return ToolResult(tool.name, ToolOutcome.ERROR, {}, None, 1, 0.0, repr(exc))


def tool_event(prepared: PreparedCall, result: ToolResult) -> dict[str, Any]:
    """The TOOL event's data. The argument values in the URL are masked: they come from
    the caller, and the LLM brain cannot tell an order number from a PIN."""
    url = prepared.request.url
    for value in prepared.values.values():
        url = url.replace(quote(value, safe=""), MASK)
    return {
        "tool": prepared.tool.name, "method": prepared.tool.method, "url": url,
        "outcome": result.outcome.value, "status": result.status, "attempts": result.attempts,
        "ms": round(result.duration_ms, 1), "error": result.error,
    }  # fmt: skip


def call_message(call_id: str, name: str, arguments_json: str) -> dict[str, Any]:
    """A tool call as it appears in an assistant message of the chat history."""
    return {
        "id": call_id,
        "type": "function",
        "function": {"name": name, "arguments": arguments_json},
    }

"""Spec validation: plain YAML data -> :class:`AgentSpec`, collecting every problem.

The builder walks the document once, building the typed model where it can and noting
an issue (line + field path + message) where it cannot; it keeps going after each issue
so the author sees all of them at once. Cross-references (a ``goto`` to a state, a
``tool`` step, ``{{slots.x}}`` in a template, grammar words in the recognizer's
dictionary) are checked in a second pass, when every name is known.
"""

from __future__ import annotations

import os
import re
from types import MappingProxyType
from typing import Any

from trunkline.agent.errors import AgentSpecError, SpecIssue
from trunkline.agent.spec import (
    AgentSpec,
    BrainKind,
    DtmfSpec,
    GotoStep,
    HangupStep,
    IfStep,
    IntentSpec,
    LlmSpec,
    RepromptPolicy,
    SayStep,
    StateSpec,
    Step,
    ToolSpec,
    ToolStep,
    TransferStep,
)
from trunkline.agent.spec_checks import ShapeBuilder, check_references
from trunkline.agent.spec_loader import MAX_SPEC_BYTES, Path, load_yaml
from trunkline.agent.spec_slots import build_slot
from trunkline.agent.template import Template

DEFAULT_SILENCE_MS = 700  # common endpointing default for telephone IVRs
DEFAULT_NO_INPUT_MS = 6000
DEFAULT_REPROMPTS = 2
# Digits the pipeline may collect for one keypad entry: longer than any account number.
MAX_DTMF_DIGITS = 32
HTTP_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")

_TOP_KEYS = {
    "name", "language", "greeting", "brain", "llm", "endpointing", "no_input", "no_match",
    "vars", "tools", "intents", "start", "states",
}  # fmt: skip
_STATE_KEYS = {
    "prompt", "reprompt", "intents", "slots", "dtmf", "on_enter", "on_filled", "silence_ms",
    "no_input_ms", "barge_in",
}  # fmt: skip
_LLM_KEYS = {
    "model", "system_prompt", "tools", "temperature", "base_url", "api_key_env",
    "first_token_timeout_ms", "idle_timeout_ms",
}  # fmt: skip
_VERBS = ("say", "tool", "goto", "transfer", "hangup", "if")
_VERB_EXTRAS = {
    "say": set(), "tool": {"on_failure", "on_reject"}, "goto": set(),
    "transfer": {"summary"}, "hangup": set(), "if": {"equals", "then", "else"},
}  # fmt: skip


def load_agent_spec(path: str | os.PathLike[str], *, check_words: bool = True) -> AgentSpec:
    """Read and validate an agent spec file.

    Raises:
        AgentSpecError: with every problem found, each naming its line and field.
        OSError: the file cannot be read.
    """
    with open(path, "rb") as fh:
        data = fh.read(MAX_SPEC_BYTES + 1)  # enough to tell "too large" without reading it all
    return parse_agent_spec(data, os.path.basename(os.fspath(path)), check_words=check_words)


def parse_agent_spec(
    text: str | bytes, source: str = "agent.yaml", *, check_words: bool = True
) -> AgentSpec:
    """Validate spec text. ``check_words``: check grammar words against the dictionary.

    Raises:
        AgentSpecError: with every problem found, each naming its line and field.
    """
    loaded = load_yaml(text, source)
    builder = _SpecBuilder(ShapeBuilder(loaded))
    spec = builder.build(source)
    if spec is not None:
        check_references(spec, builder.b, check_words=check_words)
    issues = [*loaded.issues, *builder.b.issues]
    if issues or spec is None:
        raise AgentSpecError(source, issues or [SpecIssue(1, "", "spec is not a mapping")])
    return spec


class _SpecBuilder:
    def __init__(self, b: ShapeBuilder) -> None:
        self.b = b

    def build(self, source: str) -> AgentSpec | None:
        b = self.b
        root = b.mapping((), b.data)
        if root is None:
            return None
        b.keys((), root, _TOP_KEYS, required={"name"})
        name = b.text(("name",), root.get("name"), default="agent")
        brain_text = b.choice(("brain",), root.get("brain", "flow"), [k.value for k in BrainKind])
        brain = BrainKind(brain_text) if brain_text else BrainKind.FLOW
        llm = self._llm(root.get("llm"), required=brain is BrainKind.LLM)
        endpointing = b.mapping(("endpointing",), root.get("endpointing", {})) or {}
        b.keys(("endpointing",), endpointing, {"silence_ms"})
        silence = b.integer(
            ("endpointing", "silence_ms"), endpointing.get("silence_ms"), 100, 10_000
        )
        variables = b.string_map(("vars",), root.get("vars", {}))
        tools = {
            tool_name: tool
            for tool_name, value in b.named_items(("tools",), root.get("tools", {}))
            if (tool := self._tool(("tools", tool_name), tool_name, value)) is not None
        }
        global_intents = self._intents(("intents",), root.get("intents", {}))
        states = {
            state_name: state
            for state_name, value in b.named_items(
                ("states",), root.get("states"), required=brain is BrainKind.FLOW
            )
            if (state := self._state(("states", state_name), state_name, value)) is not None
        }
        start = b.text(("start",), root.get("start"), default="")
        if not start and states:
            start = next(iter(states))
        elif start and start not in b.declared_states():
            b.err(("start",), f"no state named {start!r}")
        return AgentSpec(
            name=name,
            language=b.text(("language",), root.get("language"), default="en-US"),
            greeting=b.template(("greeting",), root.get("greeting"), required=False),
            brain=brain,
            llm=llm,
            silence_ms=silence if silence is not None else DEFAULT_SILENCE_MS,
            no_input=self._policy("no_input", root.get("no_input", {}), DEFAULT_NO_INPUT_MS),
            no_match=self._policy("no_match", root.get("no_match", {}), 0),
            variables=MappingProxyType(variables),
            tools=MappingProxyType(tools),
            global_intents=global_intents,
            states=MappingProxyType(states),
            start=start,
            source=source,
        )

    def _llm(self, value: Any, *, required: bool) -> LlmSpec | None:
        b = self.b
        if value is None:
            if required:
                b.err(("llm",), "brain is 'llm' but there is no llm section")
            return None
        path: Path = ("llm",)
        m = b.mapping(path, value)
        if m is None:
            return None
        b.keys(path, m, _LLM_KEYS, {"model", "system_prompt"})
        tools = b.list_of(path + ("tools",), m.get("tools", []))
        names = tuple(t for i, t in enumerate(tools) if b.text((*path, "tools", i), t) is not None)
        for i, tool in enumerate(names):
            b.tool_refs.append(((*path, "tools", i), tool))
        temperature = m.get("temperature", 0.3)
        if (
            isinstance(temperature, bool)
            or not isinstance(temperature, int | float)
            or not 0 <= temperature <= 2
        ):
            b.err((*path, "temperature"), "expected a number from 0 to 2")
            temperature = 0.3
        base_url = b.text((*path, "base_url"), m.get("base_url"), default="")
        if base_url and not re.fullmatch(r"https?://[^\s/]+(/\S*)?", base_url):
            b.err((*path, "base_url"), "expected an http:// or https:// URL")
        key_env = b.text((*path, "api_key_env"), m.get("api_key_env"), default="")
        if key_env and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key_env):
            b.err((*path, "api_key_env"), "expected the name of an environment variable")
        return LlmSpec(
            model=b.text((*path, "model"), m.get("model"), default=""),
            system_prompt=b.text((*path, "system_prompt"), m.get("system_prompt"), default=""),
            tools=names,
            temperature=float(temperature),
            base_url=base_url,
            api_key_env=key_env,
            first_token_timeout_ms=b.integer(
                (*path, "first_token_timeout_ms"), m.get("first_token_timeout_ms"), 100, 60_000
            ),
            idle_timeout_ms=b.integer(
                (*path, "idle_timeout_ms"), m.get("idle_timeout_ms"), 100, 60_000
            ),
        )

    def _policy(self, key: str, value: Any, default_timeout: int) -> RepromptPolicy:
        b = self.b
        path: Path = (key,)
        m = b.mapping(path, value) or {}
        allowed = {"reprompts", "message", "escalate"} | (
            {"timeout_ms"} if key == "no_input" else set()
        )
        b.keys(path, m, allowed)
        timeout = b.integer((*path, "timeout_ms"), m.get("timeout_ms"), 500, 60_000)
        reprompts = b.integer((*path, "reprompts"), m.get("reprompts"), 0, 10)
        default_message = (
            "Sorry, I didn't hear anything." if key == "no_input" else "Sorry, I didn't understand."
        )
        message = b.template((*path, "message"), m.get("message", default_message))
        escalate: tuple[Step, ...]
        if "escalate" in m:
            escalate = self.steps((*path, "escalate"), m["escalate"])
        else:
            escalate = (
                SayStep(Template.parse("Sorry, I can't help you right now. Goodbye."), None),
                HangupStep(key, None),
            )
        return RepromptPolicy(
            timeout_ms=timeout if timeout is not None else default_timeout,
            reprompts=reprompts if reprompts is not None else DEFAULT_REPROMPTS,
            message=message or Template.parse(default_message),
            escalate=escalate,
        )

    def _tool(self, path: Path, name: str, value: Any) -> ToolSpec | None:
        b = self.b
        m = b.mapping(path, value)
        if m is None:
            return None
        b.keys(
            path,
            m,
            {"method", "url", "headers", "body", "timeout_ms", "retries", "fallback", "result"},
            {"url"},
        )
        method = (
            b.choice((*path, "method"), str(m.get("method", "GET")).upper(), HTTP_METHODS) or "GET"
        )
        headers = {
            k: t
            for k, v in b.string_map((*path, "headers"), m.get("headers", {})).items()
            if (t := b.template((*path, "headers", k), v))
        }
        body = None
        if "body" in m:
            raw = b.string_map((*path, "body"), m["body"])
            body = MappingProxyType(
                {k: t for k, v in raw.items() if (t := b.template((*path, "body", k), v))}
            )
        result: dict[str, tuple[str, ...]] = {}
        for var, json_path in b.string_map((*path, "result"), m.get("result", {})).items():
            if not b.identifier((*path, "result", var), var):
                continue
            parts = tuple(json_path.split("."))
            if not json_path or any(not p for p in parts):
                b.err((*path, "result", var), f"bad JSON path {json_path!r}")
                continue
            result[var] = parts
        timeout = b.integer((*path, "timeout_ms"), m.get("timeout_ms"), 50, 30_000)
        retries = b.integer((*path, "retries"), m.get("retries"), 0, 5)
        url = b.template((*path, "url"), m.get("url"))
        fallback = b.template(
            (*path, "fallback"),
            m.get("fallback", "Sorry, that service is not available right now."),
        )
        if url is None or fallback is None:
            return None
        return ToolSpec(
            name=name,
            method=method,
            url=url,
            headers=MappingProxyType(headers),
            body=body,
            timeout_ms=timeout if timeout is not None else 3000,
            retries=retries if retries is not None else 1,
            fallback=fallback,
            result=MappingProxyType(result),
            line=b.line(path),
        )

    def _intents(self, path: Path, value: Any) -> tuple[IntentSpec, ...]:
        b = self.b
        out = []
        for name, raw in b.named_items(path, value):
            ipath = (*path, name)
            m = b.mapping(ipath, raw)
            if m is None:
                continue
            b.keys(ipath, m, {"examples", "dtmf", "goto", "do"})
            examples = tuple(
                phrase
                for i, ex in enumerate(b.list_of((*ipath, "examples"), m.get("examples", [])))
                if (phrase := b.phrase((*ipath, "examples", i), ex)) is not None
            )
            dtmf = None
            if "dtmf" in m:
                dtmf = b.text(
                    (*ipath, "dtmf"), str(m["dtmf"]) if isinstance(m["dtmf"], int) else m["dtmf"]
                )
                if dtmf is not None and not all(c in "0123456789*#" for c in dtmf):
                    b.err((*ipath, "dtmf"), f"{dtmf!r} is not a key sequence (0-9, *, #)")
                    dtmf = None
            if not examples and dtmf is None:
                b.err(ipath, "an intent needs examples or a dtmf key")
            steps = self.steps((*ipath, "do"), m["do"]) if "do" in m else ()
            if "goto" in m:
                target = b.text((*ipath, "goto"), m["goto"])
                if target is not None:
                    b.gotos.append(((*ipath, "goto"), target))
                    steps = (*steps, GotoStep(target, b.line((*ipath, "goto"))))
            if not steps:
                b.err(ipath, "an intent needs 'goto' or 'do'")
            out.append(IntentSpec(name, examples, dtmf, steps, b.line(ipath)))
        return tuple(out)

    def _state(self, path: Path, name: str, value: Any) -> StateSpec | None:
        b = self.b
        m = b.mapping(path, value)
        if m is None:
            return None
        b.keys(path, m, _STATE_KEYS)
        slots = tuple(
            slot
            for slot_name, raw in b.named_items((*path, "slots"), m.get("slots", {}))
            if (slot := build_slot(b, (*path, "slots", slot_name), slot_name, raw)) is not None
        )
        intents = self._intents((*path, "intents"), m.get("intents", {}))
        barge_in = m.get("barge_in", True)
        if not isinstance(barge_in, bool):
            b.err((*path, "barge_in"), "expected true or false")
            barge_in = True
        return StateSpec(
            name=name,
            prompt=b.template((*path, "prompt"), m.get("prompt"), required=False),
            reprompt=b.template((*path, "reprompt"), m.get("reprompt"), required=False),
            intents=intents,
            slots=slots,
            dtmf=self._dtmf((*path, "dtmf"), m.get("dtmf"), slots),
            on_enter=self.steps((*path, "on_enter"), m.get("on_enter", [])),
            on_filled=self.steps((*path, "on_filled"), m.get("on_filled", [])),
            silence_ms=b.integer((*path, "silence_ms"), m.get("silence_ms"), 100, 10_000),
            no_input_ms=b.integer((*path, "no_input_ms"), m.get("no_input_ms"), 500, 60_000),
            barge_in=barge_in,
            line=b.line(path),
        )

    def _dtmf(self, path: Path, value: Any, slots: tuple[Any, ...]) -> DtmfSpec | None:
        b = self.b
        if value is None or value is False:
            return None
        longest = max((getattr(s.rule, "max_length", 1) for s in slots), default=1)
        m: dict[str, Any] = {} if value is True else (b.mapping(path, value) or {})
        b.keys(path, m, {"max_digits", "terminator", "timeout_ms"})
        max_digits = b.integer((*path, "max_digits"), m.get("max_digits"), 1, MAX_DTMF_DIGITS)
        terminator = m.get("terminator", "#")
        if terminator is not None and terminator not in ("#", "*"):
            b.err((*path, "terminator"), f"terminator must be '#', '*' or null, not {terminator!r}")
            terminator = "#"
        timeout = b.integer((*path, "timeout_ms"), m.get("timeout_ms"), 500, 30_000)
        return DtmfSpec(
            max_digits=max_digits if max_digits is not None else min(longest, MAX_DTMF_DIGITS),
            terminator=terminator,
            timeout_ms=timeout if timeout is not None else 5000,
        )

    def steps(self, path: Path, value: Any) -> tuple[Step, ...]:
        """A step list: ``[say: ..., tool: ..., goto: ...]``; a lone step needs no list."""
        b = self.b
        items = value if isinstance(value, list) else [value]
        out: list[Step] = []
        ended: str | None = None
        for i, item in enumerate(items):
            ipath = (*path, i) if isinstance(value, list) else path
            if ended is not None:
                b.err(ipath, f"unreachable: no step runs after '{ended}'")
                break
            step = self._step(ipath, item)
            if step is not None:
                out.append(step)
                if isinstance(step, GotoStep | TransferStep | HangupStep):
                    ended = {GotoStep: "goto", TransferStep: "transfer", HangupStep: "hangup"}[
                        type(step)
                    ]
        return tuple(out)

    def _step(self, path: Path, item: Any) -> Step | None:
        b = self.b
        if item == "hangup":
            return HangupStep("hangup", b.line(path))
        m = b.mapping(path, item, what="a step such as {say: ...} or {goto: ...}")
        if m is None:
            return None
        verbs = [k for k in m if k in _VERBS]
        if len(verbs) != 1:
            found = ", ".join(verbs) if verbs else "none"
            b.err(path, f"a step needs exactly one of {', '.join(_VERBS)} (found {found})")
            return None
        verb = verbs[0]
        b.keys(path, m, {verb, *_VERB_EXTRAS[verb]})
        vpath = (*path, verb)
        line = b.line(vpath)
        arg = m[verb]
        if verb == "say":
            text = b.template(vpath, arg)
            return SayStep(text, line) if text is not None else None
        if verb == "goto":
            target = b.text(vpath, arg)
            if target is None:
                return None
            b.gotos.append((vpath, target))
            return GotoStep(target, line)
        if verb == "tool":
            tool = b.text(vpath, arg)
            if tool is None:
                return None
            b.tool_refs.append((vpath, tool))
            on_failure = (
                self.steps((*path, "on_failure"), m["on_failure"]) if "on_failure" in m else None
            )
            on_reject = (
                self.steps((*path, "on_reject"), m["on_reject"]) if "on_reject" in m else None
            )
            return ToolStep(tool, on_failure, on_reject, line)
        if verb == "transfer":
            target_t = b.template(vpath, arg)
            summary = b.template((*path, "summary"), m.get("summary", ""))
            if target_t is None or summary is None:
                return None
            return TransferStep(target_t, summary, line)
        if verb == "hangup":
            reason = b.text(vpath, arg if arg is not None else "hangup")
            return HangupStep(reason or "hangup", line)
        cond = b.ref_path(vpath, arg)
        equals = m.get("equals")
        if equals is not None:
            equals = b.text(
                (*path, "equals"), str(equals) if isinstance(equals, int | float) else equals
            )
        then = self.steps((*path, "then"), m.get("then", []))
        otherwise = self.steps((*path, "else"), m.get("else", []))
        return IfStep(cond, equals, then, otherwise, line) if cond is not None else None

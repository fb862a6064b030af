"""Shape checks (one field at a time) and reference checks (names across the spec).

:class:`ShapeBuilder` holds the primitives the spec builder calls for every field: each
returns the typed value or None, and on a problem records an issue with the field's line
and path instead of raising, so one pass finds every problem. It also notes every
reference it sees (gotos, tool steps, template paths, grammar phrases) for
:func:`check_references`, which runs once all names are known.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable
from typing import Any, overload

from trunkline.agent.errors import SpecIssue
from trunkline.agent.lexicon import unknown_words, words
from trunkline.agent.spec import AgentSpec, BrainKind, GotoStep, IfStep, Step, ToolStep
from trunkline.agent.spec_loader import LoadedYaml, Path, format_path
from trunkline.agent.template import Template, TemplatePath, TemplateSyntaxError, parse_path

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
TEMPLATE_ROOTS = ("slots", "tool", "vars", "call")


class ShapeBuilder:
    """Typed field readers that record issues instead of raising."""

    def __init__(self, loaded: LoadedYaml) -> None:
        self.data = loaded.data
        self._loaded = loaded
        self.issues: list[SpecIssue] = []
        self.gotos: list[tuple[Path, str]] = []
        self.tool_refs: list[tuple[Path, str]] = []
        self.templates: list[tuple[Path, Template]] = []
        self.refs: list[tuple[Path, TemplatePath]] = []
        self.phrases: list[tuple[Path, tuple[str, ...]]] = []

    def line(self, path: Path) -> int | None:
        return self._loaded.line(path)

    def err(self, path: Path, message: str) -> None:
        self.issues.append(SpecIssue(self.line(path), format_path(path), message))

    def mapping(self, path: Path, value: Any, what: str = "a mapping") -> dict[str, Any] | None:
        if isinstance(value, dict):
            return value
        self.err(path, f"expected {what}, got {_kind(value)}")
        return None

    def keys(
        self, path: Path, m: dict[str, Any], allowed: Iterable[str], required: Iterable[str] = ()
    ) -> None:
        allowed = set(allowed)
        for key in m:
            if key not in allowed:
                hint = (
                    _did_you_mean(key, allowed) or f"; expected one of {', '.join(sorted(allowed))}"
                )
                self.err((*path, key), f"unknown field{hint}")
        for key in sorted(set(required)):
            if key not in m:
                self.err(path, f"missing required field '{key}'")

    @overload
    def text(self, path: Path, value: Any, default: str) -> str: ...
    @overload
    def text(self, path: Path, value: Any, default: None = None) -> str | None: ...
    def text(self, path: Path, value: Any, default: str | None = None) -> str | None:
        if value is None:
            if default is None:
                self.err(path, "missing value")
            return default
        if not isinstance(value, str):
            self.err(path, f"expected text, got {_kind(value)}")
            return default
        return value

    def choice(
        self, path: Path, value: Any, options: Iterable[str], what: str = "value"
    ) -> str | None:
        options = list(options)
        if value is None:
            self.err(path, f"missing {what}; expected one of {', '.join(options)}")
            return None
        if not isinstance(value, str) or value not in options:
            self.err(path, f"unknown {what} {value!r}; expected one of {', '.join(options)}")
            return None
        return value

    def integer(self, path: Path, value: Any, lo: int, hi: int) -> int | None:
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            self.err(path, f"expected a whole number, got {_kind(value)}")
            return None
        if not lo <= value <= hi:
            self.err(path, f"{value} is out of range {lo}..{hi}")
            return None
        return value

    def boolean(self, path: Path, value: Any, default: bool) -> bool:
        if value is None:
            return default
        if not isinstance(value, bool):
            self.err(path, f"expected true or false, got {_kind(value)}")
            return default
        return value

    def list_of(self, path: Path, value: Any) -> list[Any]:
        if isinstance(value, list):
            return value
        self.err(path, f"expected a list, got {_kind(value)}")
        return []

    def string_map(self, path: Path, value: Any) -> dict[str, str]:
        m = self.mapping(path, value)
        out: dict[str, str] = {}
        for key, item in (m or {}).items():
            if isinstance(item, str):
                out[key] = item
            elif isinstance(item, int | float) and not isinstance(item, bool):
                out[key] = str(item)
            else:
                self.err((*path, key), f"expected text, got {_kind(item)}")
        return out

    def identifier(self, path: Path, name: str) -> bool:
        if _IDENTIFIER.match(name):
            return True
        self.err(
            path, f"{name!r} is not a valid name (letters, digits and _, not starting with a digit)"
        )
        return False

    def named_items(
        self, path: Path, value: Any, *, required: bool = False
    ) -> list[tuple[str, Any]]:
        if value is None:
            if required:
                self.err(path, "missing required field")
            return []
        m = self.mapping(path, value)
        if m is None:
            return []
        if required and not m:
            self.err(path, "needs at least one entry")
        return [(k, v) for k, v in m.items() if self.identifier((*path, k), k)]

    def declared(self, *path: str) -> set[str]:
        """Keys of the mapping at ``path`` in the raw document (even if it failed to build)."""
        node: Any = self.data
        for part in path:
            node = node.get(part) if isinstance(node, dict) else None
        return set(node) if isinstance(node, dict) else set()

    def declared_states(self) -> set[str]:
        return self.declared("states")

    def declared_slots(self) -> set[str]:
        out: set[str] = set()
        for state in self.declared("states"):
            out |= self.declared("states", state, "slots")
        return out

    def template(self, path: Path, value: Any, *, required: bool = True) -> Template | None:
        if value is None and not required:
            return None
        text = self.text(path, value)
        if text is None:
            return None
        try:
            parsed = Template.parse(text)
        except TemplateSyntaxError as exc:
            self.err(path, str(exc))
            return None
        self.templates.append((path, parsed))
        return parsed

    def ref_path(self, path: Path, value: Any) -> TemplatePath | None:
        text = self.text(path, value)
        if text is None:
            return None
        try:
            parsed = parse_path(text.removeprefix("{{").removesuffix("}}"))
        except TemplateSyntaxError as exc:
            self.err(path, str(exc))
            return None
        self.refs.append((path, parsed))
        return parsed

    def phrase(self, path: Path, value: Any, *, carrier: bool = False) -> tuple[str, ...] | None:
        """A phrase the recognizer must hear: normalized words, checked later."""
        text = self.text(path, value)
        if text is None:
            return None
        ws = words(text)
        if not ws:
            self.err(path, "phrase has no words")
            return None
        slots = sum(1 for w in ws if w == "{value}")
        if carrier and slots != 1:
            self.err(path, "a slot phrase must contain {value} exactly once")
            return None
        bad = [w for w in ws if ("{" in w or "}" in w) and not (carrier and w == "{value}")]
        if bad:
            self.err(path, f"unexpected {bad[0]!r} in phrase")
            return None
        self.phrases.append((path, ws))
        return ws


def check_references(spec: AgentSpec, b: ShapeBuilder, *, check_words: bool) -> None:
    """Second pass: every name refers to something that exists; grammar words are known."""
    # Names come from the raw document, so an entry that failed to build (already
    # reported) does not also show up as "no such state" at every reference to it.
    states, tools = b.declared_states(), b.declared("tools")
    for path, target in b.gotos:
        if target not in states:
            b.err(path, f"no state named {target!r}{_did_you_mean(target, states)}")
    for path, tool in b.tool_refs:
        if tool not in tools:
            b.err(path, f"no tool named {tool!r}{_did_you_mean(tool, tools)}")
    slots = b.declared_slots()
    if spec.brain is BrainKind.LLM:
        # An llm agent's model fills a tool's {{slots.x}}: they are the tool's parameters.
        slots |= {
            ref[1]
            for path, t in b.templates
            if path[0] == "tools"
            for ref in t.paths()
            if ref[0] == "slots" and len(ref) == 2
        }
    refs = [(path, ref) for path, t in b.templates for ref in t.paths()]
    for path, ref in [*refs, *b.refs]:
        problem = _path_problem(spec, ref, slots, tools)
        if problem:
            b.err(path, problem)
    _check_slot_types(spec, b)
    _check_dtmf(spec, b)
    _check_start(spec, b)
    if check_words:
        for path, phrase in b.phrases:
            unknown = [w for w in unknown_words(phrase) if w != "{value}"]
            for word in unknown:
                hint = " (write numbers as words)" if any(c.isdigit() for c in word) else ""
                b.err(path, f"word {word!r} is not in the recognizer's dictionary{hint}")


def _path_problem(
    spec: AgentSpec, ref: TemplatePath, names: set[str], tools: set[str]
) -> str | None:
    root, rest = ref[0], ref[1:]
    dotted = ".".join(ref)
    if root == "slots":
        if len(rest) != 1:
            return f"{{{{{dotted}}}}}: write slots.<name>"
        if rest[0] not in names:
            return f"{{{{{dotted}}}}}: no slot named {rest[0]!r}{_did_you_mean(rest[0], names)}"
    elif root == "tool":
        if len(rest) != 2:
            return f"{{{{{dotted}}}}}: write tool.<tool>.<result field>"
        if rest[0] not in tools:
            return f"{{{{{dotted}}}}}: no tool named {rest[0]!r}{_did_you_mean(rest[0], tools)}"
        tool = spec.tools.get(rest[0])
        if tool is not None and rest[1] not in tool.result:
            return f"{{{{{dotted}}}}}: tool {rest[0]!r} has no result field {rest[1]!r}"
    elif root == "vars":
        if len(rest) != 1 or rest[0] not in spec.variables:
            return f"{{{{{dotted}}}}}: no variable {'.'.join(rest)!r} in vars"
    elif root == "call":
        if not rest:
            return f"{{{{{dotted}}}}}: write call.<field>"
    else:
        return (
            f"{{{{{dotted}}}}}: unknown root {root!r}; expected one of {', '.join(TEMPLATE_ROOTS)}"
        )
    return None


def _check_slot_types(spec: AgentSpec, b: ShapeBuilder) -> None:
    seen: dict[str, str] = {}
    for state in spec.states.values():
        for slot in state.slots:
            first = seen.setdefault(slot.name, slot.type.value)
            if first != slot.type.value:
                path: Path = ("states", state.name, "slots", slot.name, "type")
                b.err(path, f"slot {slot.name!r} is {first} elsewhere; one name, one type")


def _check_dtmf(spec: AgentSpec, b: ShapeBuilder) -> None:
    from trunkline.agent.slots import accepts_dtmf

    for state in spec.states.values():
        codes: dict[str, str] = {}
        for intent in (*state.intents, *spec.global_intents):
            if intent.dtmf is None or intent.dtmf in codes:
                if intent.dtmf is not None and codes[intent.dtmf] != intent.name:
                    b.err(
                        ("states", state.name, "intents"),
                        f"keys {intent.dtmf!r} select both "
                        f"{codes[intent.dtmf]!r} and {intent.name!r}",
                    )
                continue
            codes[intent.dtmf] = intent.name
        if state.dtmf is not None and not any(accepts_dtmf(s) for s in state.slots):
            b.err(
                ("states", state.name, "dtmf"),
                "dtmf is set but no slot of this state takes keypad input",
            )


def _check_start(spec: AgentSpec, b: ShapeBuilder) -> None:
    """The first state's on_enter runs in start(), which cannot wait for a tool."""
    seen: set[str] = set()
    todo = [spec.start]
    while todo:
        name = todo.pop()
        state = spec.states.get(name)
        if state is None or name in seen:
            continue
        seen.add(name)
        for step in _flatten(state.on_enter):
            if isinstance(step, ToolStep):
                b.err(
                    ("states", name, "on_enter"),
                    f"tool {step.tool!r} would run before the caller says anything; "
                    "start() cannot wait for tools: call it after the first turn",
                )
            elif isinstance(step, GotoStep):
                todo.append(step.state)


def _flatten(steps: tuple[Step, ...]) -> Iterable[Step]:
    for step in steps:
        yield step
        if isinstance(step, IfStep):
            yield from _flatten(step.then)
            yield from _flatten(step.otherwise)
        elif isinstance(step, ToolStep):
            yield from _flatten(step.on_failure or ())
            yield from _flatten(step.on_reject or ())


def _did_you_mean(name: str, options: Iterable[str]) -> str:
    options = sorted(options)
    close = difflib.get_close_matches(name, options, n=1)
    if not close and len(name) >= 3:  # a shortened name: "order" for "order_number"
        close = [o for o in options if o.startswith(name) or name.startswith(o)][:1]
    return f"; did you mean {close[0]!r}?" if close else ""


def _kind(value: Any) -> str:
    if value is None:
        return "nothing"
    return {dict: "a mapping", list: "a list", str: "text", bool: "true/false"}.get(
        type(value), type(value).__name__
    )

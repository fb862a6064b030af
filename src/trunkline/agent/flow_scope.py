"""What a flow's templates and conditions see: slots, tool results, variables, call.

``{{slots.x}}`` is a filled slot, ``{{tool.t.field}}`` a mapped field of tool ``t``'s last
answer, ``{{vars.x}}`` a spec variable (overridable per deployment), ``{{call.x}}`` a
field the runtime supplies (id, caller, callee). Rendering has three flavours, one per
destination:

- spoken (what the caller hears): slot values read aloud, "1 2 3 4 5", "Friday, January 10";
- request (tool URL): caller- and tool-derived values percent-encoded, variables as written;
- plain (headers, JSON bodies, transfer summaries): raw values.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote

from trunkline.agent.slots import Heard, spoken
from trunkline.agent.spec import AgentSpec, IfStep, ToolSpec
from trunkline.agent.template import Template, TemplatePath, lookup_path, value_text
from trunkline.agent.tools import ToolRequest

MASK = "****"


class FlowScope:
    """The values of one conversation that templates may refer to."""

    def __init__(
        self, spec: AgentSpec, variables: Mapping[str, str], call: Mapping[str, str]
    ) -> None:
        self._spec = spec
        self.slots: dict[str, Any] = {}
        self.tool_values: dict[str, dict[str, Any]] = {}
        self.vars: dict[str, str] = {**spec.variables, **variables}
        self.call = call

    def resolve(self, path: TemplatePath) -> Any:
        """The value at ``path``; KeyError when it has none."""
        scopes: dict[str, Mapping[str, Any]] = {
            "slots": self.slots, "tool": self.tool_values, "vars": self.vars, "call": self.call,
        }  # fmt: skip
        return lookup_path(scopes.get(path[0], {}), path[1:])

    def render(self, template: Template) -> str:
        return template.render(self.resolve)

    def render_spoken(self, template: Template) -> str:
        return template.render(self._resolve_spoken)

    def request(self, tool: ToolSpec) -> ToolRequest:
        """The tool's HTTP request with every template filled in."""

        def escape(path: TemplatePath, text: str) -> str:
            # Values from the caller (slots) or a tool go into a URL percent-encoded, so
            # a value can never add a path segment or a query; configured variables (the
            # CRM base URL) go in as written.
            return text if path[0] == "vars" else quote(text, safe="")

        url = tool.url.render(self.resolve, escape=escape)
        headers = {k: self.render(t) for k, t in tool.headers.items()}
        body = {k: self.render(t) for k, t in tool.body.items()} if tool.body is not None else None
        return ToolRequest(tool.method, url, headers, body)

    def test(self, step: IfStep) -> bool:
        """An ``if`` step's condition: the value is set and truthy (or equals ``equals``)."""
        try:
            value = self.resolve(step.path)
        except KeyError:
            return False
        if step.equals is not None:
            return value_text(value) == step.equals
        return bool(value)

    def sensitive(self, slot_name: str) -> bool:
        slot = self._spec.slot(slot_name)
        return slot is not None and slot.sensitive

    def masked_url(self, url: str) -> str:
        """``url`` with the values of sensitive slots (a PIN) replaced by ``****``."""
        for name, value in self.slots.items():
            text = value_text(value)
            if text and self.sensitive(name):
                url = url.replace(quote(text, safe=""), MASK)
        return url

    def masked_text(self, text: str, heard: Sequence[Heard]) -> str:
        """What the caller said, or ``****`` when it carried a sensitive slot value."""
        return MASK if any(self.sensitive(h.slot) for h in heard) else text

    def _resolve_spoken(self, path: TemplatePath) -> Any:
        value = self.resolve(path)
        if path[0] == "slots" and len(path) == 2:
            slot = self._spec.slot(path[1])
            if slot is not None:
                return spoken(slot, value)
        return value

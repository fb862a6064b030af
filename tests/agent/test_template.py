"""Templates: parsing, rendering, escaping, and the errors a spec author sees."""

from __future__ import annotations

from typing import Any

import pytest

from trunkline.agent.template import (
    Template,
    TemplatePath,
    TemplateSyntaxError,
    lookup_path,
    value_text,
)

SCOPE: dict[str, Any] = {
    "slots": {"order": "12345", "ok": True},
    "tool": {"crm": {"items": [{"name": "lamp"}]}},
}


def resolve(path: TemplatePath) -> Any:
    return lookup_path(SCOPE, path)


def test_parse_and_render() -> None:
    t = Template.parse("Order {{ slots.order }} ok={{slots.ok}} first={{tool.crm.items.0.name}}.")
    assert t.paths() == (("slots", "order"), ("slots", "ok"), ("tool", "crm", "items", "0", "name"))
    assert not t.is_static
    assert t.render(resolve) == "Order 12345 ok=yes first=lamp."
    assert Template.parse("Hello there.").is_static


def test_missing_values_render_empty(caplog: pytest.LogCaptureFixture) -> None:
    t = Template.parse("[{{slots.missing}}]")
    with caplog.at_level("INFO"):
        assert t.render(resolve) == "[]"
    assert "slots.missing" in caplog.text


def test_escape_applies_to_substituted_text_only() -> None:
    t = Template.parse("/a b/{{slots.order}}")
    assert t.render(resolve, escape=lambda path, text: f"<{text}>") == "/a b/<12345>"


@pytest.mark.parametrize("text", ["{{ slots.x", "a }} b", "{{}}", "{{ slots..x }}", "{{ a b }}"])
def test_syntax_errors(text: str) -> None:
    with pytest.raises(TemplateSyntaxError):
        Template.parse(text)


def test_value_text() -> None:
    assert [value_text(v) for v in (None, True, False, 3.0, 2.5, "x")] == [
        "",
        "yes",
        "no",
        "3",
        "2.5",
        "x",
    ]

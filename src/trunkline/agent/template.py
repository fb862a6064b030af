"""Safe ``{{path.to.value}}`` substitution for prompts, URLs and transfer summaries.

No expressions, no filters, no eval: a template is literal text and dotted paths. Paths
are checked when the spec loads (:mod:`trunkline.agent.spec_build` knows which slots, tool
results and variables exist), so a typo such as ``{{slots.order_numbr}}`` fails at load
time with its line. A path that is right but has no value at run time (a slot not filled
yet) renders as an empty string and is logged, because the call must go on.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

_log = logging.getLogger(__name__)

_PLACEHOLDER = re.compile(r"\{\{(.*?)\}\}", re.DOTALL)
_SEGMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$|^[0-9]+$")

TemplatePath = tuple[str, ...]


class TemplateSyntaxError(ValueError):
    """A template's text is malformed (unclosed ``{{``, an empty or invalid path)."""


@dataclass(frozen=True, slots=True)
class Template:
    """Parsed template: literal strings alternate with paths.

    ``parts`` holds ``str`` for literal text and ``tuple[str, ...]`` for a path.
    """

    source: str
    parts: tuple[str | TemplatePath, ...]

    @classmethod
    def parse(cls, source: str) -> Template:
        """Parse ``source``.

        Raises:
            TemplateSyntaxError: an unclosed ``{{``, a stray ``}}``, or a bad path.
        """
        parts: list[str | TemplatePath] = []
        pos = 0
        for m in _PLACEHOLDER.finditer(source):
            literal = source[pos : m.start()]
            _check_literal(literal)
            if literal:
                parts.append(literal)
            parts.append(parse_path(m.group(1)))
            pos = m.end()
        tail = source[pos:]
        _check_literal(tail)
        if tail:
            parts.append(tail)
        return cls(source, tuple(parts))

    @property
    def is_static(self) -> bool:
        """True when the text has no placeholder (a fixed prompt: its audio can be cached)."""
        return all(isinstance(p, str) for p in self.parts)

    def paths(self) -> tuple[TemplatePath, ...]:
        """Every path the template refers to, in order."""
        return tuple(p for p in self.parts if isinstance(p, tuple))

    def render(
        self,
        resolve: Callable[[TemplatePath], Any],
        *,
        escape: Callable[[TemplatePath, str], str] | None = None,
    ) -> str:
        """Substitute every path with ``resolve(path)``.

        ``resolve`` returns the value or raises ``KeyError`` when it has none; a missing
        value renders as "" and is logged. ``escape(path, text)`` may quote substituted
        text (URL templates percent-encode caller-derived values).
        """
        out: list[str] = []
        for part in self.parts:
            if isinstance(part, str):
                out.append(part)
                continue
            try:
                value = resolve(part)
            except KeyError:
                _log.info(
                    "template %r: no value for %s; rendered empty", self.source, ".".join(part)
                )
                continue
            text = value_text(value)
            out.append(escape(part, text) if escape is not None else text)
        return "".join(out)


def parse_path(text: str) -> TemplatePath:
    """``" slots.order_number "`` -> ``("slots", "order_number")``.

    Raises:
        TemplateSyntaxError: empty, or a segment that is not an identifier or an index.
    """
    stripped = text.strip()
    if not stripped:
        raise TemplateSyntaxError("empty placeholder {{}}")
    segments = tuple(stripped.split("."))
    for seg in segments:
        if not _SEGMENT.match(seg):
            raise TemplateSyntaxError(f"bad path {stripped!r} in placeholder")
    return segments


def value_text(value: Any) -> str:
    """How a value reads aloud or in a URL: booleans as yes/no, None as empty."""
    if value is None:
        return ""
    if value is True:
        return "yes"
    if value is False:
        return "no"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def lookup_path(root: Mapping[str, Any], path: TemplatePath) -> Any:
    """Follow ``path`` through nested mappings and lists; ``KeyError`` where it stops."""
    value: Any = root
    for seg in path:
        if isinstance(value, Mapping) and seg in value:
            value = value[seg]
        elif isinstance(value, list) and seg.isdigit() and int(seg) < len(value):
            value = value[int(seg)]
        else:
            raise KeyError(".".join(path))
    return value


def _check_literal(literal: str) -> None:
    if "{{" in literal:
        raise TemplateSyntaxError("unclosed '{{' in template")
    if "}}" in literal:
        raise TemplateSyntaxError("stray '}}' in template")

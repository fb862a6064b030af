"""YAML loading that remembers where every value came from.

PyYAML's ``safe_load`` gives plain dicts and lists with no line numbers, so a validator
could only say "states.main.slots.pin.type is wrong" without saying where. Here we compose
the node tree with a SafeLoader subclass, convert it to plain Python ourselves, and keep a
side table ``path -> line`` (a path is a tuple of mapping keys and list indexes). The
validator then reports ``agent.yaml:27: states.main.slots.pin.type: ...``.

Two departures from YAML 1.1 defaults, because agent specs are mostly prose and phrases:
``yes``/``no``/``on``/``off`` stay strings (only ``true``/``false`` are booleans), and dates
stay strings. Otherwise ``examples: [yes, no]`` would silently become booleans.

The contract: :func:`load_yaml` returns a document or raises :class:`AgentSpecError`; no
``yaml.YAMLError``, ``RecursionError`` or ``UnicodeDecodeError`` escapes.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from trunkline.agent.errors import AgentSpecError, SpecIssue

Path = tuple[str | int, ...]

# An agent spec is a few kilobytes; a megabyte is a log file or a dump pasted by mistake.
MAX_SPEC_BYTES = 1 << 20
# Bounds alias expansion ("billion laughs": a few lines of anchors that expand to 10^9
# nodes). A large real spec has a few thousand nodes.
MAX_NODES = 100_000

# PyYAML's scanner is quadratic in the nesting depth of flow collections ("[[[[..."
# takes seconds at 5,000 levels, hours at a megabyte); real specs nest two or three.
MAX_FLOW_DEPTH = 64

_BOOL_TAG = "tag:yaml.org,2002:bool"
_TIMESTAMP_TAG = "tag:yaml.org,2002:timestamp"


class _Loader(yaml.SafeLoader):
    """SafeLoader with YAML 1.2-style booleans and no implicit timestamps."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag not in (_BOOL_TAG, _TIMESTAMP_TAG)]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    _BOOL_TAG, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


class _TooLarge(Exception):
    pass


@dataclass(slots=True)
class LoadedYaml:
    """A parsed document, its line table, and structural issues found while converting."""

    data: Any
    lines: dict[Path, int]
    issues: list[SpecIssue] = field(default_factory=list)

    def line(self, path: Path) -> int | None:
        """Line of ``path``, or of its nearest ancestor that exists (for missing keys)."""
        while True:
            found = self.lines.get(path)
            if found is not None or not path:
                return found
            path = path[:-1]


def format_path(path: Path) -> str:
    """``("states", "main", "examples", 2)`` -> ``states.main.examples[2]``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else part
    return out


def load_yaml(text: str | bytes, source: str) -> LoadedYaml:
    """Parse one YAML document, keeping the line of every key and list item.

    Raises:
        AgentSpecError: not UTF-8, too large, a YAML syntax error (with its line), more than
            one document, or alias expansion past :data:`MAX_NODES`.
    """
    if isinstance(text, bytes):
        if len(text) > MAX_SPEC_BYTES:
            raise _fatal(source, None, f"spec is larger than {MAX_SPEC_BYTES} bytes")
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise _fatal(source, None, f"spec is not UTF-8 text (byte {exc.start})") from None
    if len(text) > MAX_SPEC_BYTES:
        raise _fatal(source, None, f"spec is larger than {MAX_SPEC_BYTES} characters")
    depth_line = _flow_too_deep(text)
    if depth_line is not None:
        raise _fatal(source, depth_line, f"brackets nest deeper than {MAX_FLOW_DEPTH} levels")
    try:
        loader = _Loader(text)  # the reader rejects control characters right here
        try:
            node = loader.get_single_node()
        finally:
            loader.dispose()
    except yaml.reader.ReaderError as exc:
        at = text.count("\n", 0, exc.position) + 1
        what = f"YAML syntax error: {exc.reason} (character {exc.character!r})"
        raise _fatal(source, at, what) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        what = exc.problem or exc.context or "invalid YAML"
        if exc.context and exc.problem:
            what = f"{exc.context}: {exc.problem}"
        raise _fatal(source, line, f"YAML syntax error: {what}") from None
    except yaml.YAMLError as exc:
        raise _fatal(source, None, f"YAML error: {exc}") from None
    except RecursionError:
        raise _fatal(source, None, "YAML nesting is too deep") from None
    if node is None:
        raise _fatal(source, 1, "the spec is empty")
    converter = _Converter(loader)
    try:
        data = converter.convert(node, ())
    except _TooLarge:
        raise _fatal(source, None, f"spec expands to more than {MAX_NODES} values") from None
    except RecursionError:
        raise _fatal(
            source, None, "YAML nesting is too deep (or an alias refers to itself)"
        ) from None
    return LoadedYaml(data, converter.lines, converter.issues)


def _flow_too_deep(text: str) -> int | None:
    """The line where ``[``/``{`` nesting passes MAX_FLOW_DEPTH, or None (a cheap scan
    that ignores quoting: only a pathological document gets near the limit)."""
    depth = 0
    for i, ch in enumerate(text):
        if ch in "[{":
            depth += 1
            if depth > MAX_FLOW_DEPTH:
                return text.count("\n", 0, i) + 1
        elif ch in "]}" and depth:
            depth -= 1
    return None


def _fatal(source: str, line: int | None, message: str) -> AgentSpecError:
    return AgentSpecError(source, [SpecIssue(line, "", message)])


class _Converter:
    """Nodes -> plain dict/list/scalars, recording lines and structural issues."""

    def __init__(self, loader: _Loader) -> None:
        self._loader = loader
        self._count = 0
        self.lines: dict[Path, int] = {}
        self.issues: list[SpecIssue] = []

    def convert(self, node: Node, path: Path) -> Any:
        self._count += 1
        if self._count > MAX_NODES:
            raise _TooLarge
        self.lines.setdefault(path, node.start_mark.line + 1)
        if isinstance(node, MappingNode):
            return self._mapping(node, path)
        if isinstance(node, SequenceNode):
            return [self.convert(item, (*path, i)) for i, item in enumerate(node.value)]
        try:
            return self._loader.construct_object(node, deep=True)
        except (yaml.YAMLError, ValueError, TypeError) as exc:
            self._issue(node, path, f"cannot read value: {_first_line(exc)}")
            return None

    def _mapping(self, node: MappingNode, path: Path) -> dict[str, Any]:
        try:
            self._loader.flatten_mapping(node)  # resolves "<<" merge keys
        except yaml.YAMLError as exc:
            self._issue(node, path, f"bad merge key: {_first_line(exc)}")
            return {}
        out: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, ScalarNode):
                self._issue(key_node, path, "mapping keys must be plain text")
                continue
            key = str(key_node.value)
            key_path = (*path, key)
            if key in out:
                self._issue(key_node, key_path, "duplicate key")
                continue
            self.lines[key_path] = key_node.start_mark.line + 1
            out[key] = self.convert(value_node, key_path)
        return out

    def _issue(self, node: Node, path: Path, message: str) -> None:
        self.issues.append(SpecIssue(node.start_mark.line + 1, format_path(path), message))


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def lookup(data: Any, path: Path) -> Any:
    """The value at ``path`` in converted data, or None where the path does not exist."""
    for part in path:
        if isinstance(part, int) and isinstance(data, list) and 0 <= part < len(data):
            data = data[part]
        elif isinstance(part, str) and isinstance(data, Mapping):
            data = data.get(part)
        else:
            return None
    return data

"""Scenario files: YAML -> validated :class:`~trunkline.lab.scenario.Scenario` objects.

The agent spec's line-keeping loader and field readers do the parsing
(:func:`trunkline.agent.spec_loader.load_yaml`, :class:`~trunkline.agent.spec_checks.
ShapeBuilder`), so a scenario error reads like a spec error, ``file:line: field.path:
message``, and every problem of every file is reported at once in one
:class:`~trunkline.lab.scenario.ScenarioError`. A file holds one scenario (a mapping)
or several (a list of mappings). Turns and expectations are read by
:mod:`trunkline.lab.scenario_turns`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import Any

from trunkline.agent.errors import AgentSpecError, SpecIssue
from trunkline.agent.spec_checks import ShapeBuilder
from trunkline.agent.spec_loader import MAX_SPEC_BYTES, Path, load_yaml
from trunkline.lab.impairment_spec import ImpairmentSpec, build_impairment, number
from trunkline.lab.scenario import PersonaSpec, Scenario, ScenarioError, TransportHints
from trunkline.lab.scenario_turns import (
    BUILTIN_PLACEHOLDERS,
    MAX_WAIT_S,
    build_expectations,
    build_turns,
)

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
# espeak-ng voice names: language[-variety][+variant], as in "en-us", "en+f3", "en-gb+m7".
_VOICE = re.compile(r"^[a-z]{2,3}(-[a-z0-9]{1,8})*(\+[a-z0-9_-]{1,20})?$")
_TOP_KEYS = {
    "name", "description", "weight", "transport", "persona", "turns", "expect", "impairment",
    "reply_timeout_s", "vars",
}  # fmt: skip
# espeak-ng's -s accepts 80..450 words per minute; -p accepts 0..99.
RATE_WPM_RANGE = (80, 450)
PITCH_RANGE = (0, 99)
MAX_GAP_MS = 10_000  # a pause longer than 10 s is a silence turn, not a gap
MAX_WEIGHT = 1e6


def load_scenarios(
    paths: Iterable[str | os.PathLike[str]],
    *,
    impairments: Mapping[str, ImpairmentSpec] | None = None,
) -> list[Scenario]:
    """Read scenario files and directories (every ``*.yaml`` in one, sorted by name).

    ``impairments``: named presets; when given, an ``impairment: name`` must be one of
    them and is resolved into ``Scenario.impairment``.

    Raises:
        ScenarioError: every problem of every file (YAML, fields, duplicate names,
            unreadable or missing paths), each with its file and line.
    """
    problems: list[tuple[str, SpecIssue]] = []
    found: list[Scenario] = []
    for source in _expand(paths, problems):
        try:
            with open(source, "rb") as fh:
                data = fh.read(MAX_SPEC_BYTES + 1)
        except OSError as exc:
            problems.append((source, SpecIssue(None, "", f"cannot read: {exc.strerror}")))
            continue
        try:
            found.extend(parse_scenarios(data, source, impairments=impairments))
        except ScenarioError as exc:
            problems.extend(exc.problems)
    seen: dict[str, Scenario] = {}
    for scenario in found:
        first = seen.setdefault(scenario.name, scenario)
        if first is not scenario:
            where = f"{first.source}:{first.line}" if first.line else first.source
            message = f"scenario name {scenario.name!r} is already used at {where}"
            problems.append((scenario.source, SpecIssue(scenario.line, "name", message)))
    if problems:
        raise ScenarioError(problems)
    return found


def parse_scenarios(
    text: str | bytes,
    source: str = "scenario.yaml",
    *,
    impairments: Mapping[str, ImpairmentSpec] | None = None,
) -> list[Scenario]:
    """Validate the text of one scenario file (one scenario or a list of them).

    Raises:
        ScenarioError: with every problem found, each naming its line and field.
    """
    try:
        loaded = load_yaml(text, source)
    except AgentSpecError as exc:
        raise ScenarioError([(source, issue) for issue in exc.issues]) from None
    b = ShapeBuilder(loaded)
    out: list[Scenario] = []
    if isinstance(b.data, list):
        if not b.data:
            b.err((), "the file holds an empty list; expected scenarios")
        for i, item in enumerate(b.data):
            scenario = _scenario(b, (i,), item, source, impairments)
            if scenario is not None:
                out.append(scenario)
    else:
        scenario = _scenario(b, (), b.data, source, impairments)
        if scenario is not None:
            out.append(scenario)
    problems = [*loaded.issues, *b.issues]
    names: dict[str, int | None] = {}
    for scenario in out:
        if scenario.name in names:
            line = names[scenario.name]
            problems.append(
                SpecIssue(
                    scenario.line,
                    "name",
                    f"scenario name {scenario.name!r} is already used at line {line}",
                )
            )
        names.setdefault(scenario.name, scenario.line)
    if problems:
        raise ScenarioError([(source, issue) for issue in problems])
    return out


def _expand(
    paths: Iterable[str | os.PathLike[str]], problems: list[tuple[str, SpecIssue]]
) -> list[str]:
    files: list[str] = []
    for raw in paths:
        path = os.fspath(raw)
        if os.path.isdir(path):
            try:
                names = sorted(
                    e.name for e in os.scandir(path) if e.name.endswith(".yaml") and e.is_file()
                )
            except OSError as exc:
                problems.append((path, SpecIssue(None, "", f"cannot list: {exc.strerror}")))
                continue
            if not names:
                problems.append((path, SpecIssue(None, "", "no *.yaml files in this directory")))
            files.extend(os.path.join(path, name) for name in names)
        elif os.path.exists(path):
            files.append(path)
        else:
            problems.append((path, SpecIssue(None, "", "no such file or directory")))
    return files


def _scenario(
    b: ShapeBuilder,
    path: Path,
    value: Any,
    source: str,
    impairments: Mapping[str, ImpairmentSpec] | None,
) -> Scenario | None:
    m = b.mapping(path, value, what="a scenario (a mapping with name and turns)")
    if m is None:
        return None
    b.keys(path, m, _TOP_KEYS, required={"name", "turns"})
    name = b.text((*path, "name"), m.get("name"), default="")
    if name and not _NAME.match(name):
        b.err((*path, "name"), f"{name!r}: use letters, digits, '_', '-' or '.' (64 at most)")
    weight = number(b, (*path, "weight"), m.get("weight", 1.0), 0.0, MAX_WEIGHT)
    if weight == 0:
        b.err((*path, "weight"), "weight must be above 0 (remove the scenario to disable it)")
    variables = _variables(b, (*path, "vars"), m.get("vars", {}))
    turns = build_turns(b, (*path, "turns"), m.get("turns"))
    expect = build_expectations(b, (*path, "expect"), m.get("expect", {}), variables)
    impairment, ref = _impairment(b, (*path, "impairment"), m.get("impairment"), impairments)
    reply_timeout = number(b, (*path, "reply_timeout_s"), m.get("reply_timeout_s"), 0.5, MAX_WAIT_S)
    if "name" not in m or turns is None:
        return None
    return Scenario(
        name=name,
        description=b.text((*path, "description"), m.get("description"), default=""),
        weight=weight or 1.0,
        transport=_transport(b, (*path, "transport"), m.get("transport")),
        persona=_persona(b, (*path, "persona"), m.get("persona", {})),
        turns=turns,
        expect=expect,
        impairment=impairment,
        impairment_ref=ref,
        reply_timeout_s=reply_timeout,
        variables=MappingProxyType(variables),
        source=source,
        line=b.line((*path, "name")),
    )


def _variables(b: ShapeBuilder, path: Path, value: Any) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, text in b.string_map(path, value).items():
        if not b.identifier((*path, key), key):
            continue
        if key in BUILTIN_PLACEHOLDERS:
            b.err((*path, key), f"{key!r} is filled in by the lab; choose another name")
            continue
        out[key] = text
    return out


def _persona(b: ShapeBuilder, path: Path, value: Any) -> PersonaSpec:
    m = b.mapping(path, value) or {}
    b.keys(path, m, {"voice", "rate", "pitch", "gap_ms"})
    default = PersonaSpec()
    voice = b.text((*path, "voice"), m.get("voice"), default=default.voice)
    if not _VOICE.match(voice):
        b.err((*path, "voice"), f"{voice!r} is not an espeak-ng voice name (e.g. en-us, en+f3)")
        voice = default.voice
    rate = b.integer((*path, "rate"), m.get("rate"), *RATE_WPM_RANGE)
    pitch = b.integer((*path, "pitch"), m.get("pitch"), *PITCH_RANGE)
    return PersonaSpec(
        voice=voice,
        rate_wpm=rate if rate is not None else default.rate_wpm,
        pitch=pitch if pitch is not None else default.pitch,
        gap_ms=_gap(b, (*path, "gap_ms"), m.get("gap_ms")) or default.gap_ms,
    )


def _gap(b: ShapeBuilder, path: Path, value: Any) -> tuple[int, int] | None:
    """``gap_ms: 400``, ``gap_ms: [200, 900]`` or ``gap_ms: {min: 200, max: 900}``."""
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        ms = b.integer(path, value, 0, MAX_GAP_MS)
        return (ms, ms) if ms is not None else None
    if isinstance(value, list):
        if len(value) != 2:
            b.err(path, f"expected [min, max], got {len(value)} values")
            return None
        lo = b.integer((*path, 0), value[0], 0, MAX_GAP_MS)
        hi = b.integer((*path, 1), value[1], 0, MAX_GAP_MS)
    else:
        m = b.mapping(path, value, what="milliseconds, [min, max] or {min, max}")
        if m is None:
            return None
        b.keys(path, m, {"min", "max"}, required={"min", "max"})
        lo = b.integer((*path, "min"), m.get("min"), 0, MAX_GAP_MS)
        hi = b.integer((*path, "max"), m.get("max"), 0, MAX_GAP_MS)
    if lo is None or hi is None:
        return None
    if lo > hi:
        b.err(path, f"min {lo} is above max {hi}")
        return None
    return (lo, hi)


def _transport(b: ShapeBuilder, path: Path, value: Any) -> TransportHints:
    """``transport: sip`` or ``transport: {kind: ws, caller: "+15551230000", params: {}}``."""
    if value is None:
        return TransportHints()
    m = {"kind": value} if isinstance(value, str) else b.mapping(path, value)
    if m is None:
        return TransportHints()
    b.keys(path, m, {"kind", "caller", "params"})
    kind_path = path if isinstance(value, str) else (*path, "kind")
    kind = None
    if "kind" in m:
        kind = b.choice(kind_path, m["kind"], ["sip", "ws"], "transport")
    params = b.string_map((*path, "params"), m["params"]) if "params" in m else None
    caller = b.text((*path, "caller"), m["caller"]) if "caller" in m else None
    return TransportHints(
        kind="sip" if kind == "sip" else "ws" if kind == "ws" else None,
        caller=caller,
        params=MappingProxyType(params) if params is not None else None,
    )


def _impairment(
    b: ShapeBuilder,
    path: Path,
    value: Any,
    presets: Mapping[str, ImpairmentSpec] | None,
) -> tuple[ImpairmentSpec | None, str | None]:
    if value is None:
        return None, None
    if isinstance(value, str):
        if not b.identifier(path, value):
            return None, None
        if presets is None:
            return None, value
        if value not in presets:
            known = ", ".join(sorted(presets)) or "none"
            b.err(path, f"no impairment preset named {value!r}; known: {known}")
            return None, value
        return presets[value], value
    return build_impairment(b, path, value), None

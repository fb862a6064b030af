"""A strict reader of the Prometheus text format 0.0.4, written for the tests.

It checks what a scraper relies on: ``# HELP`` then ``# TYPE`` once per family before
its samples, sample names that belong to their family, well-formed and unique label
sets, escapes, parseable values, and for histograms cumulative buckets ending in
``+Inf`` equal to ``_count``. Anything else fails with the line that broke it.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

_NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
_SAMPLE_RE = re.compile(rf"({_NAME})(\{{.*\}})? (\S+)( -?\d+)?\Z")
_LABEL_RE = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"')
_SUFFIXES = {"counter": ("",), "gauge": ("",), "histogram": ("_bucket", "_sum", "_count")}


class ExpositionError(AssertionError):
    """The text is not valid exposition format."""


@dataclass
class ParsedFamily:
    name: str
    help: str
    type: str
    samples: list[tuple[str, dict[str, str], float]] = field(default_factory=list)

    def value(self, suffix: str = "", **labels: str) -> float:
        """The value of the one sample with exactly these labels."""
        found = [v for n, ls, v in self.samples if n == self.name + suffix and ls == labels]
        if len(found) != 1:
            raise KeyError(f"{self.name}{suffix}{labels}: {len(found)} samples")
        return found[0]

    def total(self, suffix: str = "", **labels: str) -> float:
        """The sum of the samples whose labels include these."""
        return sum(
            v
            for n, ls, v in self.samples
            if n == self.name + suffix and all(ls.get(k) == x for k, x in labels.items())
        )


def _unescape(text: str) -> str:
    return re.sub(r"\\(.)", lambda m: {"n": "\n"}.get(m.group(1), m.group(1)), text)


def _labels(text: str, line: str) -> dict[str, str]:
    inner = text[1:-1]
    out: dict[str, str] = {}
    pos = 0
    while pos < len(inner):
        m = _LABEL_RE.match(inner, pos)
        if m is None:
            raise ExpositionError(f"bad label set in {line!r}")
        if m.group(1) in out:
            raise ExpositionError(f"label {m.group(1)} twice in {line!r}")
        out[m.group(1)] = _unescape(m.group(2))
        pos = m.end()
        if pos < len(inner):
            if inner[pos] != ",":
                raise ExpositionError(f"expected ',' in {line!r}")
            pos += 1
    return out


def _value(text: str, line: str) -> float:
    special = {"+Inf": math.inf, "-Inf": -math.inf, "NaN": math.nan}
    if text in special:
        return special[text]
    try:
        return float(text)
    except ValueError:
        raise ExpositionError(f"bad value in {line!r}") from None


def parse(text: str) -> dict[str, ParsedFamily]:
    """The families of ``text``, checked (see the module docstring)."""
    if text and not text.endswith("\n"):
        raise ExpositionError("the text must end with a newline")
    families: dict[str, ParsedFamily] = {}
    helps: dict[str, str] = {}
    current: ParsedFamily | None = None
    seen: set[tuple[str, tuple[tuple[str, str], ...]]] = set()
    for line in text.splitlines():
        if line.startswith("# HELP "):
            name, _, help_text = line[7:].partition(" ")
            if name in helps or name in families:
                raise ExpositionError(f"second HELP for {name}")
            helps[name] = _unescape(help_text)
            current = None
        elif line.startswith("# TYPE "):
            name, _, kind = line[7:].partition(" ")
            if name not in helps or name in families:
                raise ExpositionError(f"TYPE of {name} without HELP before it, or twice")
            if kind not in _SUFFIXES:
                raise ExpositionError(f"unknown type in {line!r}")
            current = families[name] = ParsedFamily(name, helps[name], kind)
        elif line.startswith("#") or not line:
            raise ExpositionError(f"unexpected line {line!r}")
        else:
            m = _SAMPLE_RE.match(line)
            if m is None or current is None:
                raise ExpositionError(f"sample outside a family or malformed: {line!r}")
            name = m.group(1)
            suffix = name[len(current.name) :] if name.startswith(current.name) else None
            if suffix not in _SUFFIXES[current.type]:
                raise ExpositionError(f"{name} does not belong to {current.name}")
            labels = _labels(m.group(2), line) if m.group(2) else {}
            key = (name, tuple(sorted(labels.items())))
            if key in seen:
                raise ExpositionError(f"sample twice: {line!r}")
            seen.add(key)
            current.samples.append((name, labels, _value(m.group(3), line)))
    for family in families.values():
        if family.type == "histogram":
            _check_histogram(family)
    return families


def _check_histogram(family: ParsedFamily) -> None:
    groups: dict[tuple[tuple[str, str], ...], list[tuple[float, float]]] = {}
    for name, labels, value in family.samples:
        if name.endswith("_bucket"):
            if "le" not in labels:
                raise ExpositionError(f"{family.name} bucket without le")
            rest = tuple(sorted((k, v) for k, v in labels.items() if k != "le"))
            groups.setdefault(rest, []).append((_value(labels["le"], name), value))
    for rest, buckets in groups.items():
        bounds = [b for b, _ in buckets]
        counts = [c for _, c in buckets]
        if bounds != sorted(bounds) or bounds[-1] != math.inf:
            raise ExpositionError(f"{family.name}{dict(rest)}: buckets out of order or no +Inf")
        if counts != sorted(counts):
            raise ExpositionError(f"{family.name}{dict(rest)}: buckets are not cumulative")
        count = family.value("_count", **dict(rest))
        family.value("_sum", **dict(rest))
        if counts[-1] != count:
            raise ExpositionError(f"{family.name}{dict(rest)}: +Inf bucket != _count")

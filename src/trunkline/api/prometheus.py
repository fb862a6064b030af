"""A small Prometheus registry: counters, gauges and histograms with labels, as text 0.0.4.

Theory of operation
-------------------
Everything here runs on the event loop, so there are no locks. A metric is a family of
children, one per tuple of label values (``labels(...)`` makes a child on first use and
hands back the same one after that, so hot paths keep the child and skip the lookup).
Label values must come from a bounded set (transports, outcomes, provider names): a
call id as a label would grow the process without limit.

The registry renders the text exposition format, version 0.0.4: for each family a
``# HELP`` line, a ``# TYPE`` line, then its samples; a histogram writes one cumulative
``_bucket`` per upper bound (``le``, ending with ``+Inf``), then ``_sum`` and ``_count``.
Label values escape backslash, double quote and newline; help text escapes backslash and
newline (the format's rules).

Values that live elsewhere (the pacer's histogram, the number of live calls) are not
copied on every change: a :class:`Collector` builds their :class:`Family` at scrape time.
"""

from __future__ import annotations

import bisect
import math
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

#: The Content-Type of the text format this module writes.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

MetricType = Literal["counter", "gauge", "histogram"]

_NAME_RE = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*\Z")
_LABEL_RE = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*\Z")


class MetricsUsageError(ValueError):
    """A metric defined or used wrongly (bad name, wrong number of label values...)."""


@dataclass
class Family:
    """One metric family as it is written: name, help, type and samples.

    Each sample is ``(suffix, labels, value)``; ``suffix`` is "" or, for histograms,
    ``_bucket``, ``_sum`` or ``_count``.
    """

    name: str
    help: str
    type: MetricType
    samples: list[tuple[str, Mapping[str, str], float]] = field(default_factory=list)


class Collector(Protocol):
    """Anything the registry can ask for families at scrape time."""

    def collect(self) -> Iterable[Family]:
        """The families as they are now."""
        ...


def format_value(value: float) -> str:
    """A sample value as the text format writes it (``+Inf``, ``-Inf``, ``NaN``)."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if float(value).is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(float(value))


def escape_label_value(value: str) -> str:
    """Backslash, double quote and newline escaped, as label values need."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def escape_help(text: str) -> str:
    """Backslash and newline escaped, as ``# HELP`` text needs."""
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def check_name(name: str) -> str:
    """``name`` if it is a valid metric name.

    Raises:
        MetricsUsageError: it is not.
    """
    if not _NAME_RE.match(name):
        raise MetricsUsageError(f"invalid metric name {name!r}")
    return name


def _check_labels(names: Sequence[str], reserved: frozenset[str]) -> tuple[str, ...]:
    for label in names:
        if not _LABEL_RE.match(label) or label.startswith("__") or label in reserved:
            raise MetricsUsageError(f"invalid label name {label!r}")
    if len(set(names)) != len(names):
        raise MetricsUsageError(f"duplicate label names in {tuple(names)!r}")
    return tuple(names)


def histogram_samples(
    labels: Mapping[str, str],
    bounds: Sequence[float],
    cumulative: Sequence[float],
    total: float,
    count: float,
) -> list[tuple[str, Mapping[str, str], float]]:
    """The ``_bucket``/``_sum``/``_count`` samples of one histogram child.

    ``cumulative[i]`` counts observations ``<= bounds[i]``; the ``+Inf`` bucket is ``count``.
    """
    out: list[tuple[str, Mapping[str, str], float]] = []
    for bound, n in zip(bounds, cumulative, strict=True):
        out.append(("_bucket", {**labels, "le": format_value(bound)}, n))
    out.append(("_bucket", {**labels, "le": "+Inf"}, count))
    out.append(("_sum", labels, total))
    out.append(("_count", labels, count))
    return out


class _Metric(Collector):
    type: MetricType
    _reserved: frozenset[str] = frozenset()

    def __init__(self, name: str, help: str, labelnames: Sequence[str] = ()) -> None:
        self.name = check_name(name)
        self.help = help
        self.labelnames = _check_labels(labelnames, self._reserved)

    def _key(self, values: Sequence[str]) -> tuple[str, ...]:
        if len(values) != len(self.labelnames):
            raise MetricsUsageError(
                f"{self.name} takes {len(self.labelnames)} label values "
                f"{self.labelnames!r}, got {len(values)}"
            )
        return tuple(str(v) for v in values)

    def _labels(self, key: tuple[str, ...]) -> dict[str, str]:
        return dict(zip(self.labelnames, key, strict=True))


class CounterChild:
    """One labelled counter."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0.0

    def inc(self, amount: float = 1.0) -> None:
        """Add ``amount`` (never negative: a counter only goes up).

        Raises:
            MetricsUsageError: ``amount`` is negative.
        """
        if amount < 0:
            raise MetricsUsageError("a counter cannot go down")
        self.value += amount


class Counter(_Metric):
    """A value that only goes up (``_total`` by convention in its name)."""

    type: MetricType = "counter"

    def __init__(self, name: str, help: str, labelnames: Sequence[str] = ()) -> None:
        super().__init__(name, help, labelnames)
        self._children: dict[tuple[str, ...], CounterChild] = {}

    def labels(self, *values: str) -> CounterChild:
        """The child for these label values (made on first use)."""
        key = self._key(values)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = CounterChild()
        return child

    def inc(self, amount: float = 1.0) -> None:
        """Increment the unlabelled counter."""
        self.labels().inc(amount)

    def collect(self) -> Iterable[Family]:
        samples: list[tuple[str, Mapping[str, str], float]] = [
            ("", self._labels(key), child.value) for key, child in self._children.items()
        ]
        yield Family(self.name, self.help, self.type, samples)


class GaugeChild:
    """One labelled gauge."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0.0

    def set(self, value: float) -> None:
        self.value = value

    def inc(self, amount: float = 1.0) -> None:
        self.value += amount

    def dec(self, amount: float = 1.0) -> None:
        self.value -= amount


class Gauge(_Metric):
    """A value that goes up and down."""

    type: MetricType = "gauge"

    def __init__(self, name: str, help: str, labelnames: Sequence[str] = ()) -> None:
        super().__init__(name, help, labelnames)
        self._children: dict[tuple[str, ...], GaugeChild] = {}

    def labels(self, *values: str) -> GaugeChild:
        """The child for these label values (made on first use)."""
        key = self._key(values)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = GaugeChild()
        return child

    def set(self, value: float) -> None:
        """Set the unlabelled gauge."""
        self.labels().set(value)

    def collect(self) -> Iterable[Family]:
        samples: list[tuple[str, Mapping[str, str], float]] = [
            ("", self._labels(key), child.value) for key, child in self._children.items()
        ]
        yield Family(self.name, self.help, self.type, samples)


class HistogramChild:
    """One labelled histogram: a count per bucket (not cumulative), the sum and the count."""

    __slots__ = ("_bounds", "counts", "count", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self._bounds = bounds
        self.counts = [0] * len(bounds)
        self.sum = 0.0
        self.count = 0

    def observe(self, value: float) -> None:
        """Count one observation (NaN is ignored: it would poison ``_sum`` for good)."""
        if math.isnan(value):
            return
        i = bisect.bisect_left(self._bounds, value)  # the first bound >= value: le is <=
        if i < len(self.counts):
            self.counts[i] += 1
        self.sum += value
        self.count += 1

    def cumulative(self) -> list[int]:
        out: list[int] = []
        running = 0
        for n in self.counts:
            running += n
            out.append(running)
        return out


class Histogram(_Metric):
    """Observations counted in fixed buckets (upper bounds, ``le``), with sum and count.

    Args:
        buckets: increasing finite upper bounds; ``+Inf`` is always added.
    """

    type: MetricType = "histogram"
    _reserved = frozenset({"le"})

    def __init__(
        self, name: str, help: str, labelnames: Sequence[str] = (), *, buckets: Sequence[float]
    ) -> None:
        super().__init__(name, help, labelnames)
        bounds = tuple(float(b) for b in buckets)
        if not bounds or any(not math.isfinite(b) for b in bounds):
            raise MetricsUsageError(f"{name}: buckets must be finite and at least one")
        if any(a >= b for a, b in zip(bounds, bounds[1:], strict=False)):
            raise MetricsUsageError(f"{name}: buckets must be strictly increasing")
        self.buckets = bounds
        self._children: dict[tuple[str, ...], HistogramChild] = {}

    def labels(self, *values: str) -> HistogramChild:
        """The child for these label values (made on first use)."""
        key = self._key(values)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = HistogramChild(self.buckets)
        return child

    def observe(self, value: float) -> None:
        """Observe into the unlabelled histogram."""
        self.labels().observe(value)

    def collect(self) -> Iterable[Family]:
        family = Family(self.name, self.help, self.type)
        for key, child in self._children.items():
            family.samples += histogram_samples(
                self._labels(key), self.buckets, child.cumulative(), child.sum, child.count
            )
        yield family


class CallbackCollector(Collector):
    """Families computed by a function at scrape time (state kept elsewhere)."""

    def __init__(self, fn: Callable[[], Iterable[Family]]) -> None:
        self._fn = fn

    def collect(self) -> Iterable[Family]:
        return self._fn()


class Registry:
    """The metrics of a process, rendered by :meth:`render`."""

    def __init__(self) -> None:
        self._collectors: list[Collector] = []
        self._names: set[str] = set()

    def register(self, metric: _Metric) -> None:
        """Add a counter, gauge or histogram.

        Raises:
            MetricsUsageError: a metric of that name is already registered.
        """
        if metric.name in self._names:
            raise MetricsUsageError(f"metric {metric.name!r} is already registered")
        self._names.add(metric.name)
        self._collectors.append(metric)

    def counter(self, name: str, help: str, labelnames: Sequence[str] = ()) -> Counter:
        """A new registered counter."""
        metric = Counter(name, help, labelnames)
        self.register(metric)
        return metric

    def gauge(self, name: str, help: str, labelnames: Sequence[str] = ()) -> Gauge:
        """A new registered gauge."""
        metric = Gauge(name, help, labelnames)
        self.register(metric)
        return metric

    def histogram(
        self, name: str, help: str, labelnames: Sequence[str] = (), *, buckets: Sequence[float]
    ) -> Histogram:
        """A new registered histogram."""
        metric = Histogram(name, help, labelnames, buckets=buckets)
        self.register(metric)
        return metric

    def add_collector(self, collector: Collector) -> None:
        """Add families computed at scrape time (their names are checked when rendered)."""
        self._collectors.append(collector)

    def collect(self) -> Iterator[Family]:
        """Every family, in registration order; a name seen twice is an error.

        Raises:
            MetricsUsageError: two families share a name, or a name is invalid.
        """
        seen: set[str] = set()
        for collector in self._collectors:
            for family in collector.collect():
                check_name(family.name)
                if family.name in seen:
                    raise MetricsUsageError(f"metric family {family.name!r} rendered twice")
                seen.add(family.name)
                yield family

    def render(self) -> str:
        """The whole registry in the text exposition format 0.0.4."""
        return render(self.collect())


def render(families: Iterable[Family]) -> str:
    """``families`` in the text exposition format 0.0.4 (ends with a newline)."""
    lines: list[str] = []
    for family in families:
        lines.append(f"# HELP {family.name} {escape_help(family.help)}")
        lines.append(f"# TYPE {family.name} {family.type}")
        for suffix, labels, value in family.samples:
            if labels:
                inner = ",".join(f'{k}="{escape_label_value(v)}"' for k, v in labels.items())
                lines.append(f"{family.name}{suffix}{{{inner}}} {format_value(value)}")
            else:
                lines.append(f"{family.name}{suffix} {format_value(value)}")
    return "\n".join(lines) + "\n" if lines else ""

"""The registry and its text format: names, labels, escapes, histogram buckets."""

from __future__ import annotations

import math

import pytest

from trunkline.api.prometheus import (
    CallbackCollector,
    Family,
    MetricsUsageError,
    Registry,
    format_value,
    render,
)

from .exposition import ExpositionError, parse


def test_counter_gauge_and_histogram_render_and_parse() -> None:
    r = Registry()
    calls = r.counter("demo_calls_total", "Calls.", ["transport"])
    calls.labels("sip").inc()
    calls.labels("sip").inc(2)
    calls.labels("ws").inc()
    depth = r.gauge("demo_depth", "Depth.")
    depth.set(7)
    depth.labels().dec(2)
    lat = r.histogram("demo_latency_seconds", "Latency.", ["stage"], buckets=[0.1, 0.5, 1])
    for v in (0.05, 0.1, 0.3, 2.0):
        lat.labels("asr").observe(v)

    text = r.render()
    families = parse(text)

    assert families["demo_calls_total"].type == "counter"
    assert families["demo_calls_total"].value(transport="sip") == 3
    assert families["demo_calls_total"].value(transport="ws") == 1
    assert families["demo_depth"].value() == 5
    h = families["demo_latency_seconds"]
    assert h.type == "histogram"
    # le is "less than or equal": 0.1 falls in the 0.1 bucket.
    assert [h.value("_bucket", stage="asr", le=le) for le in ("0.1", "0.5", "1", "+Inf")] == [
        2,
        3,
        3,
        4,
    ]
    assert h.value("_count", stage="asr") == 4
    assert h.value("_sum", stage="asr") == pytest.approx(2.45)
    assert "# HELP demo_latency_seconds Latency.\n# TYPE demo_latency_seconds histogram\n" in text


def test_label_values_and_help_are_escaped() -> None:
    r = Registry()
    c = r.counter("demo_total", 'Help with \\ and\nnewline and "quotes".', ["who"])
    nasty = 'a "quoted" back\\slash\nnewline'
    c.labels(nasty).inc()
    text = r.render()
    assert '{who="a \\"quoted\\" back\\\\slash\\nnewline"}' in text
    assert "# HELP demo_total Help with \\\\ and\\nnewline" in text
    family = parse(text)["demo_total"]
    assert family.value(who=nasty) == 1  # the reader undoes the escapes exactly
    assert family.help == 'Help with \\ and\nnewline and "quotes".'


def test_special_values() -> None:
    assert format_value(math.inf) == "+Inf"
    assert format_value(-math.inf) == "-Inf"
    assert format_value(math.nan) == "NaN"
    assert format_value(3.0) == "3"
    assert format_value(0.25) == "0.25"
    assert format_value(1e-05) == "1e-05"


def test_nan_observation_is_ignored() -> None:
    r = Registry()
    h = r.histogram("demo_seconds", "x", buckets=[1])
    h.observe(math.nan)
    h.observe(0.5)
    family = parse(r.render())["demo_seconds"]
    assert family.value("_count") == 1 and family.value("_sum") == 0.5


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda r: r.counter("9bad", "x"), "invalid metric name"),
        (lambda r: r.counter("ok_total", "x", ["bad-label"]), "invalid label name"),
        (lambda r: r.counter("ok_total", "x", ["__reserved"]), "invalid label name"),
        (lambda r: r.counter("ok_total", "x", ["a", "a"]), "duplicate label"),
        (lambda r: r.histogram("h", "x", ["le"], buckets=[1]), "invalid label name"),
        (lambda r: r.histogram("h", "x", buckets=[]), "at least one"),
        (lambda r: r.histogram("h", "x", buckets=[1, 1]), "strictly increasing"),
        (lambda r: r.histogram("h", "x", buckets=[1, math.inf]), "finite"),
    ],
)
def test_bad_definitions_are_refused(make: object, message: str) -> None:
    with pytest.raises(MetricsUsageError, match=message):
        make(Registry())  # type: ignore[operator]


def test_misuse_is_refused() -> None:
    r = Registry()
    c = r.counter("demo_total", "x", ["a"])
    with pytest.raises(MetricsUsageError, match="takes 1 label values"):
        c.labels("x", "y")
    with pytest.raises(MetricsUsageError, match="cannot go down"):
        c.labels("x").inc(-1)
    with pytest.raises(MetricsUsageError, match="already registered"):
        r.gauge("demo_total", "again")


def test_a_collector_family_named_twice_is_refused_at_render() -> None:
    r = Registry()
    r.counter("demo_total", "x").inc()
    r.add_collector(CallbackCollector(lambda: [Family("demo_total", "y", "counter")]))
    with pytest.raises(MetricsUsageError, match="rendered twice"):
        r.render()


def test_empty_registry_and_unused_families() -> None:
    assert Registry().render() == ""
    r = Registry()
    r.counter("demo_total", "Nothing yet.", ["a"])
    assert parse(r.render())["demo_total"].samples == []  # HELP and TYPE, no samples


@pytest.mark.parametrize(
    "text",
    [
        "demo_total 1\n",  # no HELP/TYPE
        '# HELP demo_total x\n# TYPE demo_total counter\ndemo_total{a="1",a="2"} 1\n',
        "# HELP demo_total x\n# TYPE demo_total counter\nother_total 1\n",
        "# HELP demo_total x\n# TYPE demo_total counter\ndemo_total one\n",
        '# HELP h x\n# TYPE h histogram\nh_bucket{le="1"} 2\nh_bucket{le="+Inf"} 1\n'
        "h_sum 1\nh_count 1\n",
        '# HELP h x\n# TYPE h histogram\nh_bucket{le="1"} 1\nh_bucket{le="+Inf"} 1\n'
        "h_sum 1\nh_count 2\n",
    ],
)
def test_the_test_reader_rejects_broken_text(text: str) -> None:
    # The reader the other tests rely on does catch what it claims to.
    with pytest.raises(ExpositionError):
        parse(text)


def test_render_of_hand_made_families() -> None:
    text = render([Family("x_total", "X.", "counter", [("", {}, 1.0)])])
    assert text == "# HELP x_total X.\n# TYPE x_total counter\nx_total 1\n"

"""The HTML report: self-contained, escaped, with every section; the SVG charts underneath."""

from __future__ import annotations

import pathlib
import re
import xml.etree.ElementTree as ET
from html.parser import HTMLParser

import pytest

from trunkline.lab.report import write_reports
from trunkline.lab.report.html_plots import (
    Bar,
    Series,
    bar_chart,
    line_chart,
    nice_ticks,
    segments,
    tick_label,
)
from trunkline.lab.results import CallResult, LabHealth, RunResult

SVG = "{http://www.w3.org/2000/svg}"
HOSTILE = '<script>alert("x")</script>&'


class Tags(HTMLParser):
    """Collects start tags with their attributes and checks every element is closed."""

    VOID = {"meta", "br", "img", "input", "link", "hr"}
    SVG_EMPTY = {"line", "path", "rect", "circle"}

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.open: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        if tag not in self.VOID and tag not in self.SVG_EMPTY:
            self.open.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_endtag(self, tag: str) -> None:
        assert self.open and self.open[-1] == tag, f"</{tag}> closes {self.open[-1:]}"
        self.open.pop()


def parse(html: str) -> Tags:
    tags = Tags()
    tags.feed(html)
    tags.close()
    assert tags.open == [], f"unclosed: {tags.open}"
    return tags


def svgs(html: str) -> list[ET.Element]:
    """Every inline SVG, parsed as the XML it must be."""
    return [ET.fromstring(m) for m in re.findall(r"<svg .*?</svg>", html, flags=re.S)]


def test_report_is_self_contained_with_every_section(
    run: RunResult, tmp_path: pathlib.Path
) -> None:
    write_reports(run, tmp_path)
    html = (tmp_path / "report.html").read_text(encoding="utf-8")
    tags = parse(html)
    for tag, attrs in tags.tags:
        assert tag not in {"link", "img", "iframe", "object"}, tag
        assert not attrs.get("src") and not attrs.get("href"), (tag, attrs)
    # The only URL is the SVG namespace name, which is never fetched.
    assert set(re.findall(r"https?://[^\s\"'<]+", html)) == {"http://www.w3.org/2000/svg"}
    ids = {attrs.get("id") for _, attrs in tags.tags}
    assert {"verdict", "checks", "figures", "scenarios", "worst", "lab"} <= ids
    titles = [svg.findtext(f"{SVG}title") for svg in svgs(html)]
    assert titles == [
        "Turn latency over time",
        "Active calls",
        "Failures by category",
        "Task success by scenario",
    ]
    assert 'class="banner not_ready"' in html and "NOT READY" in html
    for call in run.calls:
        if call.failure is not None and call.index < 10:
            assert call.replay in html  # the first failures are in the worst-calls table


def test_charts_have_data(run: RunResult, tmp_path: pathlib.Path) -> None:
    write_reports(run, tmp_path)
    latency, active, failures, scenarios = svgs((tmp_path / "report.html").read_text("utf-8"))
    assert len(latency.findall(f"{SVG}path")) == 2  # p50 and p95, one run each
    assert len(active.findall(f"{SVG}path")) == 1
    assert len(failures.findall(f"{SVG}rect")) == len(set(c.failure for c in run.calls) - {None})
    assert len(scenarios.findall(f"{SVG}rect")) == len(run.scenarios)


def test_every_text_is_escaped(tmp_path: pathlib.Path) -> None:
    call = CallResult(0, HOSTILE, HOSTILE, "sip", 1, failure="no_reply",
                      failure_detail=HOSTILE, replay=HOSTILE)  # fmt: skip
    run = RunResult(HOSTILE, HOSTILE, [HOSTILE], HOSTILE, 1.0, 1, calls=[call],
                    lab=LabHealth(50.0, 300.0, True, HOSTILE), label=HOSTILE)  # fmt: skip
    write_reports(run, tmp_path)
    html = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert HOSTILE not in html and "<script>alert" not in html
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&amp;" in html
    parse(html)
    assert 'class="banner inconclusive"' in html and "OVERLOADED" in html
    for svg in svgs(html):  # still well-formed XML with hostile labels inside
        assert svg.tag == f"{SVG}svg"


def test_empty_run_still_renders(tmp_path: pathlib.Path) -> None:
    write_reports(RunResult("sip:t", "p", [], "now", 0.0, 1), tmp_path)
    html = (tmp_path / "report.html").read_text(encoding="utf-8")
    parse(html)
    assert "INCONCLUSIVE" in html and "No call failed." in html and "no data" in html


@pytest.mark.parametrize(
    ("lo", "hi", "ticks"),
    [
        (0, 1000, [0, 200, 400, 600, 800, 1000]),
        (0, 83, [0, 20, 40, 60, 80, 100]),
        (0, 7, [0, 2, 4, 6, 8]),
        (0, 0.37, [0, 0.1, 0.2, 0.3, 0.4]),
        (5, 5, [5, 5.2, 5.4, 5.6, 5.8, 6]),
    ],
)
def test_nice_ticks(lo: float, hi: float, ticks: list[float]) -> None:
    assert nice_ticks(lo, hi) == pytest.approx(ticks)


def test_tick_labels_and_bad_ranges() -> None:
    assert [tick_label(x, 0.1) for x in (0.0, 0.1, 0.30000000000000004)] == ["0", "0.1", "0.3"]
    assert tick_label(2000.0, 500.0) == "2,000"
    with pytest.raises(ValueError, match="not finite"):
        nice_ticks(0, float("nan"))


def test_segments_break_at_missing_points() -> None:
    points = [(0.0, 1.0), (1.0, None), (2.0, 2.0), (3.0, float("nan")), (4.0, 3.0), (5.0, 4.0)]
    assert segments(points) == [[(0.0, 1.0)], [(2.0, 2.0)], [(4.0, 3.0), (5.0, 4.0)]]


def test_line_chart_geometry() -> None:
    svg = ET.fromstring(
        line_chart(
            [Series("a<b", [(0, 0), (10, 100)]), Series("dots", [(5, 50), (6, None)])],
            title="T",
            x_label="x",
            y_label="y",
            width=400,
            height=200,
        )
    )
    (path,) = svg.findall(f"{SVG}path")
    # x 0..10 maps to 64..384 px; y 0..100 maps to 156..34 px (the margins).
    assert path.get("d") == "M64.0,156.0 L384.0,34.0"
    (dot,) = svg.findall(f"{SVG}circle")
    assert (dot.get("cx"), dot.get("cy")) == ("224.0", "95.0")
    texts = [t.text for t in svg.iter(f"{SVG}text")]
    assert "a<b" in texts and "dots" in texts and "100" in texts
    empty = ET.fromstring(line_chart([Series("a", [])], title="E", x_label="x", y_label="y"))
    assert [t.text for t in empty.iter(f"{SVG}text")][-1] == "no data"


def test_bar_chart_lengths_are_proportional() -> None:
    svg = ET.fromstring(
        bar_chart(
            [Bar("half", 50, "50%"), Bar("full", 100, "100%"), Bar("bad", float("nan"))],
            title="B",
            x_label="%",
            width=500,
            max_value=100,
        )
    )
    widths = [float(r.get("width", "")) for r in svg.findall(f"{SVG}rect")]
    assert widths[1] == pytest.approx(2 * widths[0]) and widths[2] == 0


def test_time_axis_ends_with_the_data() -> None:
    svg = ET.fromstring(
        line_chart(
            [Series("a", [(0, 1), (83, 2)])],
            title="T",
            x_label="s",
            y_label="y",
            width=400,
            height=200,
        )  # fmt: skip
    )
    (path,) = svg.findall(f"{SVG}path")
    assert path.get("d", "").split()[-1].startswith("L384.0,")  # the right edge of the plot
    labels = [t.text for t in svg.iter(f"{SVG}text")]
    assert "80" in labels and "100" not in labels

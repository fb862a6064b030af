"""Small inline-SVG charts for the HTML reports: a line chart and a horizontal bar chart.

The report is one self-contained file with no scripts to fetch, so the charts are drawn
here as SVG text. Both take data in their own units and map it onto a fixed pixel box
(``viewBox``), so the page can scale them with CSS. Axis ticks are "nice numbers" (1, 2
or 5 times a power of ten, Heckbert's *Graphics Gems* rule), so a reader sees 0, 200,
400 ms rather than 0, 187, 374. A None in a series breaks its line (no data that second)
instead of drawing a drop to zero. Every text is escaped.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from html import escape

#: Colours that stay apart for the common colour-blindnesses (Okabe & Ito, 2008).
PALETTE = ("#0072b2", "#d55e00", "#009e73", "#cc79a7", "#e69f00", "#56b4e9", "#000000")
#: Room around the plot area for tick labels, the axis titles and the legend (px).
MARGIN_LEFT, MARGIN_RIGHT, MARGIN_TOP, MARGIN_BOTTOM = 64, 16, 34, 44
#: Ticks wanted per axis; the nice-number rule gives between about 4 and 10.
TICKS = 5
FONT = 'font-family="system-ui, sans-serif" font-size="12"'


@dataclass(slots=True)
class Series:
    """One line: ``(x, y)`` points in data units; a None y breaks the line."""

    name: str
    points: list[tuple[float, float | None]]
    color: str = PALETTE[0]
    dashed: bool = False


@dataclass(slots=True)
class Bar:
    """One horizontal bar with its label and the text printed at its end."""

    label: str
    value: float
    text: str = ""
    color: str = PALETTE[0]


@dataclass(slots=True)
class Axis:
    """A linear map from ``[lo, hi]`` in data units to ``[start, end]`` in pixels."""

    lo: float
    hi: float
    start: float
    end: float
    ticks: list[float] = field(default_factory=list)

    def __call__(self, value: float) -> float:
        span = self.hi - self.lo or 1.0
        return self.start + (value - self.lo) / span * (self.end - self.start)


def nice_number(value: float, round_: bool) -> float:
    """The nice number (1, 2 or 5 times a power of ten) nearest ``value`` (or above it)."""
    exponent = math.floor(math.log10(value))
    fraction = value / 10**exponent
    if round_:
        nice = 1 if fraction < 1.5 else 2 if fraction < 3 else 5 if fraction < 7 else 10
    else:
        nice = 1 if fraction <= 1 else 2 if fraction <= 2 else 5 if fraction <= 5 else 10
    return nice * 10.0**exponent


def nice_ticks(lo: float, hi: float, count: int = TICKS) -> list[float]:
    """Tick values covering ``[lo, hi]``, from the first nice value at or below ``lo``."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise ValueError(f"axis range [{lo}, {hi}] is not finite")
    if hi <= lo:
        hi = lo + 1.0
    step = nice_number(nice_number(hi - lo, False) / max(1, count - 1), True)
    first = math.floor(lo / step) * step
    last = math.ceil(hi / step) * step
    n = round((last - first) / step)
    return [first + i * step for i in range(n + 1)]


def tick_label(value: float, step: float) -> str:
    """``value`` with as many decimals as the tick step needs (none for whole steps)."""
    decimals = max(0, -math.floor(math.log10(step))) if step > 0 and step < 1 else 0
    text = f"{value:,.{decimals}f}"
    return "0" if text.strip("-0.,") == "" else text


def svg_open(width: int, height: int, title: str) -> list[str]:
    return [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" role="img" aria-label="{escape(title)}" {FONT}>',
        f"<title>{escape(title)}</title>",
        f'<text x="{MARGIN_LEFT}" y="18" font-size="14" font-weight="600">{escape(title)}</text>',
    ]


def no_data(parts: list[str], width: int, height: int) -> str:
    parts.append(
        f'<text x="{width / 2:.0f}" y="{height / 2:.0f}" text-anchor="middle" '
        'fill="#666">no data</text></svg>'
    )
    return "\n".join(parts)


def y_axis(parts: list[str], y: Axis, x0: float, x1: float, label: str) -> None:
    step = y.ticks[1] - y.ticks[0] if len(y.ticks) > 1 else 1.0
    for tick in y.ticks:
        py = y(tick)
        parts.append(
            f'<line x1="{x0:.1f}" y1="{py:.1f}" x2="{x1:.1f}" y2="{py:.1f}" stroke="#e3e3e3"/>'
            f'<text x="{x0 - 6:.1f}" y="{py + 4:.1f}" text-anchor="end" fill="#444">'
            f"{escape(tick_label(tick, step))}</text>"
        )
    mid = (y.start + y.end) / 2
    parts.append(
        f'<text x="14" y="{mid:.1f}" text-anchor="middle" fill="#444" '
        f'transform="rotate(-90 14 {mid:.1f})">{escape(label)}</text>'
    )


def x_axis(parts: list[str], x: Axis, y0: float, label: str) -> None:
    step = x.ticks[1] - x.ticks[0] if len(x.ticks) > 1 else 1.0
    for tick in x.ticks:
        px = x(tick)
        parts.append(
            f'<line x1="{px:.1f}" y1="{y0:.1f}" x2="{px:.1f}" y2="{y0 + 4:.1f}" stroke="#444"/>'
            f'<text x="{px:.1f}" y="{y0 + 17:.1f}" text-anchor="middle" fill="#444">'
            f"{escape(tick_label(tick, step))}</text>"
        )
    parts.append(
        f'<line x1="{x.start:.1f}" y1="{y0:.1f}" x2="{x.end:.1f}" y2="{y0:.1f}" stroke="#444"/>'
        f'<text x="{(x.start + x.end) / 2:.1f}" y="{y0 + 36:.1f}" text-anchor="middle" '
        f'fill="#444">{escape(label)}</text>'
    )


def legend(parts: list[str], series: list[Series], right: float) -> None:
    """Swatches and names in one row at the top right, laid out from the right edge."""
    x = right
    for s in reversed(series):
        x -= 7 * len(s.name) + 34
        dash = ' stroke-dasharray="6 3"' if s.dashed else ""
        parts.append(
            f'<line x1="{x:.1f}" y1="14" x2="{x + 20:.1f}" y2="14" stroke="{s.color}" '
            f'stroke-width="2.5"{dash}/>'
            f'<text x="{x + 25:.1f}" y="18" fill="#222">{escape(s.name)}</text>'
        )


def segments(points: list[tuple[float, float | None]]) -> list[list[tuple[float, float]]]:
    """Runs of consecutive measured points: a None (or NaN) ends a run."""
    out: list[list[tuple[float, float]]] = [[]]
    for px, py in points:
        if py is None or not math.isfinite(py) or not math.isfinite(px):
            if out[-1]:
                out.append([])
            continue
        out[-1].append((px, py))
    return [run for run in out if run]


def line_chart(
    series: list[Series],
    *,
    title: str,
    x_label: str,
    y_label: str,
    width: int = 760,
    height: int = 240,
    x_range: tuple[float, float] | None = None,
) -> str:
    """An SVG line chart of ``series`` with axes, ticks, axis titles and a legend.

    The y axis starts at zero (latency and call counts are read against zero);
    ``x_range`` lets two stacked charts share their time axis.
    """
    parts = svg_open(width, height, title)
    runs = [(s, segments(s.points)) for s in series]
    xs = [px for _, rs in runs for run in rs for px, _ in run]
    ys = [py for _, rs in runs for run in rs for _, py in run]
    if not ys:
        return no_data(parts, width, height)
    lo, hi = x_range if x_range is not None else (min(xs), max(xs))
    # The x axis ends where the data does (a run of 83 s is not drawn to 100 s); the y
    # axis ends on a tick, so the top gridline is labelled.
    slack = (hi - lo) * 1e-9
    x_ticks = [t for t in nice_ticks(lo, hi) if lo - slack <= t <= hi + slack]
    y_ticks = nice_ticks(0.0, max(max(ys), 1e-9))
    bottom = height - MARGIN_BOTTOM
    x = Axis(lo, hi, MARGIN_LEFT, width - MARGIN_RIGHT, x_ticks)
    y = Axis(y_ticks[0], y_ticks[-1], bottom, MARGIN_TOP, y_ticks)
    y_axis(parts, y, x.start, x.end, y_label)
    x_axis(parts, x, bottom, x_label)
    for s, rs in runs:
        dash = ' stroke-dasharray="6 3"' if s.dashed else ""
        for run in rs:
            if len(run) == 1:
                (px, py) = run[0]
                parts.append(
                    f'<circle cx="{x(px):.1f}" cy="{y(py):.1f}" r="2.5" fill="{s.color}"/>'
                )
                continue
            path = " ".join(
                f"{'M' if i == 0 else 'L'}{x(px):.1f},{y(py):.1f}" for i, (px, py) in enumerate(run)
            )
            parts.append(
                f'<path d="{path}" fill="none" stroke="{s.color}" stroke-width="2"{dash}/>'
            )
    legend(parts, series, width - MARGIN_RIGHT)
    parts.append("</svg>")
    return "\n".join(parts)


def bar_chart(
    bars: list[Bar],
    *,
    title: str,
    x_label: str,
    width: int = 760,
    bar_height: int = 22,
    label_width: int = 180,
    max_value: float | None = None,
) -> str:
    """An SVG chart of horizontal bars, one row per ``Bar``, labels on the left.

    ``max_value`` fixes the scale (100 for percentages); otherwise the largest bar sets it.
    """
    height = MARGIN_TOP + MARGIN_BOTTOM + max(1, len(bars)) * (bar_height + 6)
    parts = svg_open(width, height, title)
    values = [b.value for b in bars if math.isfinite(b.value)]
    if not values:
        return no_data(parts, width, height)
    top = max_value if max_value is not None else max(max(values), 1e-9)
    ticks = nice_ticks(0.0, top)
    left = label_width + 8
    x = Axis(0.0, ticks[-1], left, width - MARGIN_RIGHT - 60, ticks)
    bottom = height - MARGIN_BOTTOM
    step = ticks[1] - ticks[0] if len(ticks) > 1 else 1.0
    for tick in ticks:
        px = x(tick)
        parts.append(
            f'<line x1="{px:.1f}" y1="{MARGIN_TOP - 4}" x2="{px:.1f}" y2="{bottom:.1f}" '
            f'stroke="#e3e3e3"/><text x="{px:.1f}" y="{bottom + 17:.1f}" text-anchor="middle" '
            f'fill="#444">{escape(tick_label(tick, step))}</text>'
        )
    parts.append(
        f'<text x="{(x.start + x.end) / 2:.1f}" y="{bottom + 36:.1f}" text-anchor="middle" '
        f'fill="#444">{escape(x_label)}</text>'
    )
    for i, bar in enumerate(bars):
        top_px = MARGIN_TOP + i * (bar_height + 6)
        value = bar.value if math.isfinite(bar.value) else 0.0
        end = x(max(0.0, min(value, x.hi)))
        label = bar.label if len(bar.label) <= 28 else bar.label[:27] + "…"
        mid = top_px + bar_height / 2 + 4
        parts.append(
            f'<text x="{label_width:.1f}" y="{mid:.1f}" text-anchor="end" fill="#222">'
            f"<title>{escape(bar.label)}</title>{escape(label)}</text>"
            f'<rect x="{left}" y="{top_px}" width="{max(0.0, end - left):.1f}" '
            f'height="{bar_height}" fill="{bar.color}" rx="2"/>'
            f'<text x="{end + 6:.1f}" y="{mid:.1f}" fill="#222">{escape(bar.text)}</text>'
        )
    parts.append("</svg>")
    return "\n".join(parts)

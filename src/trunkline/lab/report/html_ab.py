"""``ab.html``: the A/B comparison as a page, in the same style as ``report.html``.

Tables of task success (overall and per scenario) and of latencies with their tests, the
turn-latency distributions of both sides as two cumulative curves on one chart (where
one curve lies left of the other, that side is faster at that share of turns), the
sample-size sentences and the caveats. Every text from the runs is escaped.
"""

from __future__ import annotations

import math
from html import escape
from typing import TYPE_CHECKING

from ..results import RunResult
from .html import ms, page, pct
from .html_plots import PALETTE, Series, line_chart
from .stats import BootstrapCI, finite

if TYPE_CHECKING:
    from .ab import AbReport, SuccessComparison

#: Points per cumulative curve: enough for a smooth line, few enough for a small file.
CDF_POINTS = 200
#: The curves stop at this percentile: the last 1% is a long, flat tail that would
#: squeeze the part worth reading into the left edge of the chart.
CDF_TOP_PCT = 99


def cdf_points(values: list[float]) -> list[tuple[float, float | None]]:
    """(latency, % of turns at or below it), up to ``CDF_TOP_PCT``, at evenly spaced ranks."""
    data = sorted(finite(values))
    if not data:
        return []
    top = max(1, math.ceil(CDF_TOP_PCT / 100 * len(data)))  # nearest rank, 1-based
    step = max(1, top // CDF_POINTS)
    ranks = [*range(step - 1, top, step)]
    if ranks[-1] != top - 1:
        ranks.append(top - 1)
    return [(data[i], 100 * (i + 1) / len(data)) for i in ranks]


def p_text(p: float | None) -> str:
    if p is None:
        return "—"
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


def ci_text(ci: BootstrapCI | None) -> str:
    if ci is None:
        return "—"
    return f"{ci.diff:+,.0f} ms [{ci.low:+,.0f}, {ci.high:+,.0f}]"


def success_row(row: SuccessComparison, alpha: float) -> str:
    t = row.test
    diff = "—" if t.diff is None else f"{100 * t.diff:+.1f} pts"
    verdict = "yes" if row.significant else "no"
    return (
        f"<tr><td>{escape(row.scope)}</td>"
        f"<td class='num'>{pct(t.rate_a)} of {t.n_a:,}</td>"
        f"<td class='num'>{pct(t.rate_b)} of {t.n_b:,}</td><td class='num'>{diff}</td>"
        f"<td class='num'>{'—' if t.z is None else f'{t.z:.2f}'}</td>"
        f"<td class='num'>{p_text(t.p_value)}</td>"
        f"<td class='{'sig' if row.significant else ''}'>{verdict}</td></tr>"
    )


def success_table(report: AbReport) -> str:
    rows = [success_row(report.overall, report.alpha)]
    rows += [success_row(r, report.alpha) for r in report.per_scenario]
    return (
        f"<table id='ab-success'><thead><tr><th>scope</th>"
        f"<th class='num'>{escape(report.label_a)}</th>"
        f"<th class='num'>{escape(report.label_b)}</th>"
        "<th class='num'>B − A</th><th class='num'>z</th><th class='num'>p</th>"
        f"<th>p &lt; {report.alpha:g}</th></tr></thead><tbody>{''.join(rows)}</tbody></table>"
    )


def latency_table(report: AbReport) -> str:
    rows = []
    for lat in report.latencies:
        rows.append(
            f"<tr><td>{escape(lat.measure)}</td>"
            f"<td class='num'>{ms(lat.median_a)} / {ms(lat.p95_a)}</td>"
            f"<td class='num'>{ms(lat.median_b)} / {ms(lat.p95_b)}</td>"
            f"<td class='num'>{ci_text(lat.median_diff)}</td>"
            f"<td class='num'>{ci_text(lat.p95_diff)}</td>"
            f"<td class='num'>{p_text(lat.mann_whitney.p_value)}</td>"
            f"<td class='{'sig' if lat.significant else ''}'>"
            f"{'yes' if lat.significant else 'no'}</td></tr>"
        )
    confidence = next(
        (f"{100 * x.median_diff.confidence:g}%" for x in report.latencies if x.median_diff), "95%"
    )
    return (
        f"<table id='ab-latency'><thead><tr><th>measure</th>"
        f"<th class='num'>{escape(report.label_a)} p50 / p95</th>"
        f"<th class='num'>{escape(report.label_b)} p50 / p95</th>"
        f"<th class='num'>median B − A [{confidence} CI]</th>"
        f"<th class='num'>p95 B − A [{confidence} CI]</th><th class='num'>Mann-Whitney p</th>"
        f"<th>p &lt; {report.alpha:g}</th></tr></thead><tbody>{''.join(rows)}</tbody></table>"
    )


def render_ab_html(report: AbReport, a: RunResult, b: RunResult) -> str:
    """The A/B page; ``a`` and ``b`` give the curves (the report keeps only figures)."""
    scenarios = set(report.scenarios)

    def turns(run: RunResult) -> list[float]:
        return [
            t
            for c in run.calls
            if c.scenario in scenarios and not c.lab_fault
            for t in c.turn_latencies_ms
        ]

    chart = line_chart(
        [
            Series(report.label_a, cdf_points(turns(a)), PALETTE[0]),
            Series(report.label_b, cdf_points(turns(b)), PALETTE[1], dashed=True),
        ],
        title=f"Turn latency, cumulative (to p{CDF_TOP_PCT})",
        x_label="turn latency (ms)",
        y_label="% of turns",
        height=280,
    )
    sizes = "".join(
        f"<li>{escape(s.purpose)}: {escape(s.sentence)}</li>" for s in report.sample_sizes
    )
    notes = "".join(f"<li>{escape(n)}</li>" for n in report.notes) or "<li>none</li>"
    header = (
        f"<h1>A/B: {escape(report.label_a)} vs {escape(report.label_b)}</h1>"
        f'<p class="meta">{escape(report.label_a)}: <b>{escape(a.target)}</b> '
        f"({escape(a.profile)}, {escape(a.started_at)}) · {escape(report.label_b)}: "
        f"<b>{escape(b.target)}</b> ({escape(b.profile)}, {escape(b.started_at)}) · "
        f"{report.calls_a:,} vs {report.calls_b:,} calls on {len(report.scenarios)} scenarios · "
        f"alpha {report.alpha:g} · bootstrap seed {report.seed}</p>"
    )
    body = "".join(
        [
            header,
            f"<section><h2>Task success</h2>{success_table(report)}</section>",
            f"<section><h2>Latency</h2>{latency_table(report)}{chart}</section>",
            f"<section><h2>Sample size</h2><ul id='ab-sample-size'>{sizes}</ul></section>",
            f"<section><h2>Caveats</h2><ul id='ab-notes'>{notes}</ul></section>",
        ]
    )
    return page(f"A/B {report.label_a} vs {report.label_b}", body)

"""``report.html``: one self-contained page a person reads after a run.

Everything is inline: the CSS, the charts (SVG drawn by ``html_plots``) and a dozen lines
of script that sort the worst-calls table when a header is clicked (the page reads fine
without it). Nothing is fetched, so the file can be mailed, archived or opened offline.
Every text that came from the run (target, scenario names, failure details, replay
commands) goes through ``html.escape``: a target can put anything in a reason phrase.

The page, top to bottom: the run's header and the verdict banner with its checks; the
key figures; turn latency p50/p95 and active calls over time (two stacked charts on one
time axis); failures by category; task success per scenario; the worst calls with their
replay commands; the lab's health.
"""

from __future__ import annotations

import pathlib
from html import escape

from ..results import LAB_FAILURES, RunResult
from .html_plots import PALETTE, Bar, Series, bar_chart, line_chart
from .summary import Distribution, RunSummary
from .verdict import Verdict

REPORT_HTML = "report.html"
#: Failure colours: the target's failures in vermilion, setup ones in orange, ours in grey.
FAILURE_COLOR, SETUP_COLOR, LAB_COLOR = "#d55e00", "#e69f00", "#999999"

CSS = """
:root { --ok: #1b7f3b; --bad: #b3261e; --warn: #8a6d00; --line: #ddd; --muted: #555; }
* { box-sizing: border-box; }
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: #1d1d1d;
       margin: 0; background: #f6f7f9; }
main { max-width: 1040px; margin: 0 auto; padding: 24px 20px 48px; }
h1 { font-size: 24px; margin: 0 0 4px; }
h2 { font-size: 18px; margin: 28px 0 10px; border-bottom: 1px solid var(--line);
     padding-bottom: 4px; }
section > h2:first-child { margin-top: 4px; }
.meta { color: var(--muted); margin: 0 0 16px; }
.meta b { color: #1d1d1d; font-weight: 600; }
.banner { border-radius: 8px; padding: 14px 18px; color: #fff; margin: 12px 0; }
.banner strong { font-size: 22px; letter-spacing: .04em; display: block; }
.banner.ready { background: var(--ok); }
.banner.not_ready { background: var(--bad); }
.banner.inconclusive { background: var(--warn); }
section, .card { background: #fff; border: 1px solid var(--line); border-radius: 8px;
                 padding: 12px 16px; margin: 12px 0; }
table { border-collapse: collapse; width: 100%; font-size: 14px; }
th, td { text-align: left; padding: 5px 8px; border-bottom: 1px solid #eee;
         vertical-align: top; }
th { background: #fafafa; font-weight: 600; }
th[data-sort] { cursor: pointer; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
td.num { white-space: nowrap; }
.sig { font-weight: 600; }
.pass { color: var(--ok); font-weight: 600; }
.fail { color: var(--bad); font-weight: 600; }
.not_measured { color: var(--muted); font-style: italic; }
.tiles { display: grid; grid-template-columns: repeat(auto-fill, minmax(190px, 1fr));
         gap: 10px; }
.tile { background: #fff; border: 1px solid var(--line); border-radius: 8px;
        padding: 8px 12px; }
.tile .k { color: var(--muted); font-size: 13px; }
.tile .v { font-size: 20px; font-weight: 600; font-variant-numeric: tabular-nums; }
.tile .s { color: var(--muted); font-size: 12px; }
svg.chart { width: 100%; height: auto; display: block; }
code { font: 12px ui-monospace, Menlo, Consolas, monospace; background: #f1f2f4;
       padding: 1px 4px; border-radius: 3px; word-break: break-all; }
.lab { color: var(--muted); }
.lab.overloaded { color: var(--bad); font-weight: 600; }
"""

#: Sorts a table by the clicked header; numeric cells carry ``data-v``.
SORT_JS = """
document.querySelectorAll("table.sortable th[data-sort]").forEach(function (th) {
  var col = th.cellIndex;
  th.addEventListener("click", function () {
    var body = th.closest("table").tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    var down = th.dataset.dir !== "down";
    th.dataset.dir = down ? "down" : "up";
    function key(r) { var c = r.cells[col]; return c.dataset.v !== undefined ?
      parseFloat(c.dataset.v) : c.textContent; }
    rows.sort(function (a, b) { var x = key(a), y = key(b);
      return (x > y ? 1 : x < y ? -1 : 0) * (down ? -1 : 1); });
    rows.forEach(function (r) { body.appendChild(r); });
  });
});
"""


def ms(value: float | None) -> str:
    return "—" if value is None else f"{value:,.0f} ms"


def secs(value_ms: float | None) -> str:
    """A long duration (talk-over, dead air) in seconds, which reads better than 41,453 ms."""
    return "—" if value_ms is None else f"{value_ms / 1000:,.1f} s"


def pct(rate: float | None) -> str:
    return "—" if rate is None else f"{100 * rate:.1f}%"


def num(value: float | None, digits: int = 2) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def page(title: str, body: str, script: str = "") -> str:
    """A whole HTML document with the report's CSS; ``title`` is escaped here."""
    js = f"<script>{script}</script>" if script else ""
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title><style>{CSS}</style></head>"
        f"<body><main>{body}</main>{js}</body></html>\n"
    )


def tile(key: str, value: str, sub: str = "") -> str:
    return (
        f'<div class="tile"><div class="k">{escape(key)}</div><div class="v">{escape(value)}</div>'
        f'<div class="s">{escape(sub)}</div></div>'
    )


def dist_tile(key: str, d: Distribution) -> str:
    sub = f"p95 {ms(d.p95)} · p99 {ms(d.p99)} · n={d.n}"
    return tile(f"{key} p50", ms(d.p50), sub)


def header(run: RunResult, verdict: Verdict) -> str:
    meta = (
        f"target <b>{escape(run.target)}</b> · profile <b>{escape(run.profile)}</b> · "
        f"started <b>{escape(run.started_at)}</b> · {run.duration_s:,.0f} s · "
        f"{len(run.calls):,} calls · seed {run.seed}"
    )
    return (
        f"<h1>Pretest report{(' — ' + escape(run.label)) if run.label else ''}</h1>"
        f'<p class="meta">{meta}</p>'
        f'<div class="banner {verdict.status}" id="verdict">'
        f"<strong>{verdict.headline}</strong>{escape(verdict.reason)}</div>"
    )


def checks_table(verdict: Verdict) -> str:
    rows = []
    for c in verdict.checks:
        status = {"pass": "pass", "fail": "fail", "not_measured": "not measured"}[c.status]
        threshold = f"{c.op} {c.threshold:g}{(' ' + c.unit) if c.unit == 'ms' else c.unit}"
        rows.append(
            f"<tr><td>{escape(c.label)} <code>{escape(c.key)}</code></td>"
            f'<td class="num">{escape(threshold)}</td><td>{escape(c.detail)}</td>'
            f'<td class="{c.status}">{status}</td></tr>'
        )
    return (
        '<table id="checks"><thead><tr><th>check</th><th class="num">threshold</th>'
        f"<th>measured</th><th>result</th></tr></thead><tbody>{''.join(rows)}</tbody></table>"
    )


def figures(s: RunSummary) -> str:
    target_failures = [(k, v) for k, v in s.failures.items() if k not in LAB_FAILURES]
    failures = ", ".join(f"{k} {v}" for k, v in target_failures[:3])
    tiles = [
        tile(
            "calls", f"{s.calls:,}", f"peak {s.peak_concurrency} at once · {num(s.calls_per_s)}/s"
        ),
        tile("completed", pct(s.completion_rate), f"{s.completed:,} of {s.measured_calls:,}"),
        tile("failed", f"{s.failed:,}", failures or "none"),
        tile("task success", pct(s.task_success_rate), f"{s.task_successes:,} calls"),
        dist_tile("time to first word", s.time_to_first_word_ms),
        dist_tile("turn latency", s.turn_latency_ms),
        dist_tile("barge-in reaction", s.barge_in_reaction_ms),
        dist_tile("setup", s.setup_ms),
        tile("setup failures", pct(s.setup_failure_rate), f"{s.setup_failures:,} calls"),
        tile("talk-over", secs(s.talk_over_total_ms), f"in {s.talk_over_calls:,} calls"),
        tile("dead air > 2 s", f"{s.dead_air_count:,}", f"worst {secs(s.dead_air_worst_ms)}"),
        tile(
            "transfers",
            pct(s.transfer_success_rate),
            f"{s.transfers_ok} of {s.transfers_expected} expected · {s.transfers_requested} asked",
        ),
        tile("MOS median", num(s.mos.median), f"p5 {num(s.mos.p5)} · n={s.mos.n}"),
        tile("R-factor median", num(s.r_factor.median, 1), f"p5 {num(s.r_factor.p5, 1)}"),
        tile("packet loss", "—" if s.loss_pct is None else f"{s.loss_pct:.2f}%", "all packets"),
        tile("jitter p50", ms(s.jitter_ms.p50), f"p95 {ms(s.jitter_ms.p95)}"),
        tile("WER", pct(s.wer), f"{s.wer_words:,} words in {s.wer_calls:,} calls"),
        tile("lab errors", f"{s.lab_errors:,}", "our fault, not counted against the target"),
    ]
    return f'<div class="tiles" id="figures">{"".join(tiles)}</div>'


def timeline_charts(run: RunResult) -> str:
    points = run.timeline
    x_range = (0.0, max([run.duration_s, *(p.t_s for p in points)], default=1.0) or 1.0)
    latency = line_chart(
        [
            Series("p50", [(p.t_s, p.turn_latency_p50_ms) for p in points], PALETTE[0]),
            Series("p95", [(p.t_s, p.turn_latency_p95_ms) for p in points], PALETTE[1]),
        ],
        title="Turn latency over time",
        x_label="seconds since start",
        y_label="ms",
        x_range=x_range,
    )
    active = line_chart(
        [Series("active calls", [(p.t_s, float(p.active_calls)) for p in points], PALETTE[2])],
        title="Active calls",
        x_label="seconds since start",
        y_label="calls",
        height=200,
        x_range=x_range,
    )
    return latency + active


def failure_chart(s: RunSummary) -> str:
    bars = [
        Bar(
            category,
            float(n),
            f"{n:,} ({pct(n / s.calls)})",
            LAB_COLOR
            if category in LAB_FAILURES
            else SETUP_COLOR
            if category.startswith("setup")
            else FAILURE_COLOR,
        )
        for category, n in s.failures.items()
    ]
    if not bars:
        return "<p>No call failed.</p>"
    return bar_chart(bars, title="Failures by category", x_label="calls")


def scenario_section(s: RunSummary) -> str:
    bars = [
        Bar(
            sc.name,
            100 * (sc.success_rate or 0.0),
            f"{pct(sc.success_rate)} of {sc.calls:,}",
            PALETTE[2] if (sc.success_rate or 0.0) >= 0.85 else PALETTE[1],
        )
        for sc in s.scenarios
    ]
    chart = bar_chart(bars, title="Task success by scenario", x_label="%", max_value=100.0)
    rows = "".join(
        f"<tr><td>{escape(sc.name)}</td><td class='num'>{sc.calls:,}</td>"
        f"<td class='num'>{sc.successes:,}</td><td class='num'>{sc.failed:,}</td>"
        f"<td class='num'>{pct(sc.success_rate)}</td>"
        f"<td class='num'>{ms(sc.turn_latency_p95_ms)}</td></tr>"
        for sc in s.scenarios
    )
    table = (
        "<table id='scenarios'><thead><tr><th>scenario</th><th class='num'>calls</th>"
        "<th class='num'>succeeded</th><th class='num'>failed</th><th class='num'>success</th>"
        f"<th class='num'>turn p95</th></tr></thead><tbody>{rows}</tbody></table>"
    )
    return chart + table


def worst_table(s: RunSummary) -> str:
    if not s.worst_calls:
        return "<p>No call to show.</p>"
    rows = []
    for w in s.worst_calls:
        what = w.failure or "slow"
        detail = w.detail if w.failure else f"slowest turn {ms(w.worst_turn_ms)}"
        replay = f"<code>{escape(w.replay)}</code>" if w.replay else "<i>none recorded</i>"
        rows.append(
            f"<tr><td class='num' data-v='{w.index}'>{w.index}</td><td>{escape(w.scenario)}</td>"
            f"<td>{escape(what)}</td><td>{escape(detail)}</td>"
            f"<td class='num' data-v='{w.worst_turn_ms or 0:.1f}'>{ms(w.worst_turn_ms)}</td>"
            f"<td>{replay}</td></tr>"
        )
    return (
        "<table id='worst' class='sortable'><thead><tr><th class='num' data-sort>call</th>"
        "<th data-sort>scenario</th><th data-sort>failure</th><th>detail</th>"
        "<th class='num' data-sort>worst turn</th><th>replay</th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table>"
    )


def lab_line(run: RunResult) -> str:
    lab = run.lab
    text = (
        f"Lab health: send lateness p99 {lab.send_lateness_p99_ms:.1f} ms, "
        f"CPU {lab.cpu_pct:.0f}% of a core"
    )
    if lab.overloaded:
        text += f" — OVERLOADED: {lab.note or 'measurements not trusted'}"
    cls = "lab overloaded" if lab.overloaded else "lab"
    return f'<p class="{cls}" id="lab">{escape(text)}</p>'


def render_html(run: RunResult, summary: RunSummary, verdict: Verdict) -> str:
    """The whole report page as a string; see the module docstring."""
    body = "".join(
        [
            header(run, verdict),
            f"<section><h2>Readiness checks</h2>{checks_table(verdict)}{lab_line(run)}</section>",
            f"<h2>Key figures</h2>{figures(summary)}",
            f"<section><h2>Over time</h2>{timeline_charts(run)}</section>",
            f"<section><h2>Failures</h2>{failure_chart(summary)}</section>",
            f"<section><h2>Scenarios</h2>{scenario_section(summary)}</section>",
            f"<section><h2>Worst calls</h2>{worst_table(summary)}</section>",
        ]
    )
    return page(f"Pretest {run.target} — {verdict.status}", body, SORT_JS)


def write_html(
    run: RunResult, summary: RunSummary, verdict: Verdict, out_dir: pathlib.Path
) -> pathlib.Path:
    """Write ``out_dir/report.html`` and return its path."""
    path = out_dir / REPORT_HTML
    path.write_text(render_html(run, summary, verdict), encoding="utf-8")
    return path

"""Live progress of a run in the terminal, fed by the caller engine.

The engine calls ``call_started()``, ``call_finished(result)`` and ``lab_health(health)``
as things happen; ``LiveProgress`` keeps running counts and the last ``window`` calls'
turn latencies and times to first word, and redraws at most ``MAX_RENDERS_PER_S`` times
a second, whatever the call rate (a thousand calls a second must not mean a thousand
redraws). A redraw happens inside whichever feed call finds it due, so there is no
thread or task of its own; an engine with quiet stretches calls ``refresh()`` from its
once-a-second timeline tick.

On a terminal the display is a ``rich.live.Live`` panel redrawn in place. Elsewhere (CI
logs, a pipe) it prints one plain line every ``plain_interval_s`` and a last one at
``stop()``, since cursor movement would only litter a log.
"""

from __future__ import annotations

import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType

from rich.console import Console
from rich.live import Live
from rich.markup import escape as escape_markup
from rich.table import Table

from ..results import LAB_FAILURES, CallResult, LabHealth
from .stats import percentile

#: The terminal is redrawn at most this often: faster is unreadable and costs CPU the
#: lab needs for pacing its callers.
MAX_RENDERS_PER_S = 4
#: Calls whose latencies make the rolling percentiles: recent enough to show a trend,
#: enough turns (several per call) for a p95 that means something.
ROLLING_CALLS = 200
#: Calls per second are counted over this trailing window.
RATE_WINDOW_S = 5.0
#: Without a terminal, one line this often (a CI log of a 10-minute run gets 60 lines).
PLAIN_INTERVAL_S = 10.0


@dataclass(frozen=True, slots=True)
class ProgressSnapshot:
    """The figures on display at one moment."""

    elapsed_s: float
    started: int
    active: int
    completed: int
    failed: int
    lab_errors: int
    failures: dict[str, int]
    calls_per_s: float
    turn_p50_ms: float | None
    turn_p95_ms: float | None
    ttfw_p50_ms: float | None
    ttfw_p95_ms: float | None
    lab: LabHealth


def ms(value: float | None) -> str:
    return "—" if value is None else f"{value:,.0f} ms"


class LiveProgress:
    """Counts and rolling latencies of a run in progress, drawn to ``console``.

    Use as a context manager (or ``start()`` / ``stop()``) around the run.
    """

    def __init__(
        self,
        *,
        console: Console | None = None,
        title: str = "pretest",
        window: int = ROLLING_CALLS,
        plain_interval_s: float = PLAIN_INTERVAL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if window < 1:
            raise ValueError("the rolling window needs at least one call")
        self.console = console or Console()
        self.title = title
        self.plain_interval_s = plain_interval_s
        self.clock = clock
        self.started = 0
        self.finished = 0
        self.failures: Counter[str] = Counter()
        self.health = LabHealth()
        self.renders = 0
        self.window_turns: deque[list[float]] = deque(maxlen=window)
        self.window_ttfw: deque[float] = deque(maxlen=window)
        self.start_times: deque[float] = deque()
        self.began = clock()
        self.last_render: float | None = None
        self.live: Live | None = None

    @property
    def is_terminal(self) -> bool:
        return self.console.is_terminal

    def start(self) -> None:
        """Begin drawing (on a terminal, take over the bottom of the screen)."""
        self.began = self.clock()
        if self.is_terminal and self.live is None:
            self.live = Live(console=self.console, auto_refresh=False, transient=False)
            self.live.start()
        self.render(self.began)

    def stop(self) -> None:
        """Draw the final figures and give the terminal back."""
        self.render(self.clock())
        if self.live is not None:
            self.live.stop()
            self.live = None

    def __enter__(self) -> LiveProgress:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def call_started(self) -> None:
        """A call was placed."""
        now = self.clock()
        self.started += 1
        self.start_times.append(now)
        self.refresh()

    def call_finished(self, result: CallResult) -> None:
        """A call ended (completed or failed); its latencies join the rolling window."""
        self.finished += 1
        if result.failure is not None:
            self.failures[result.failure] += 1
        if result.turn_latencies_ms:
            self.window_turns.append(result.turn_latencies_ms)
        if result.time_to_first_word_ms is not None:
            self.window_ttfw.append(result.time_to_first_word_ms)
        self.refresh()

    def lab_health(self, health: LabHealth) -> None:
        """The lab's latest view of its own load."""
        self.health = health
        self.refresh()

    def snapshot(self) -> ProgressSnapshot:
        """The figures as of now."""
        now = self.clock()
        while self.start_times and self.start_times[0] < now - RATE_WINDOW_S:
            self.start_times.popleft()
        elapsed = now - self.began
        span = min(RATE_WINDOW_S, elapsed)
        turns = [t for call in self.window_turns for t in call]
        lab_errors = sum(self.failures.get(f, 0) for f in LAB_FAILURES)
        failed = sum(self.failures.values()) - lab_errors
        return ProgressSnapshot(
            elapsed_s=elapsed,
            started=self.started,
            active=max(0, self.started - self.finished),
            completed=self.finished - failed - lab_errors,
            failed=failed,
            lab_errors=lab_errors,
            failures=dict(self.failures.most_common()),
            calls_per_s=len(self.start_times) / span if span > 0 else 0.0,
            turn_p50_ms=percentile(turns, 50),
            turn_p95_ms=percentile(turns, 95),
            ttfw_p50_ms=percentile(self.window_ttfw, 50),
            ttfw_p95_ms=percentile(self.window_ttfw, 95),
            lab=self.health,
        )

    def refresh(self) -> None:
        """Redraw if a redraw is due (see the module docstring); cheap when it is not."""
        now = self.clock()
        interval = 1 / MAX_RENDERS_PER_S if self.is_terminal else self.plain_interval_s
        if self.last_render is None or now - self.last_render >= interval:
            self.render(now)

    def render(self, now: float) -> None:
        self.last_render = now
        self.renders += 1
        snap = self.snapshot()
        if self.live is not None:
            self.live.update(self.table(snap), refresh=True)
        elif not self.is_terminal:
            self.console.print(self.line(snap), highlight=False, markup=False, soft_wrap=True)

    def table(self, snap: ProgressSnapshot) -> Table:
        """The terminal panel."""
        grid = Table.grid(padding=(0, 2))
        grid.add_column(style="bold")
        grid.add_column()
        failed = f"failed [red]{snap.failed}[/red]"
        if snap.failures:
            kinds = ", ".join(f"{k} {v}" for k, v in list(snap.failures.items())[:4])
            failed += f" ({escape_markup(kinds)})"
        grid.add_row(escape_markup(self.title), f"{snap.elapsed_s:,.0f} s")
        grid.add_row(
            "calls",
            f"started {snap.started} · active {snap.active} · "
            f"completed [green]{snap.completed}[/green] · {failed}",
        )
        grid.add_row("rate", f"{snap.calls_per_s:.1f} calls/s")
        window = f"(last {len(self.window_turns)} calls)"
        grid.add_row(
            "turn latency", f"p50 {ms(snap.turn_p50_ms)} · p95 {ms(snap.turn_p95_ms)} {window}"
        )
        grid.add_row("first word", f"p50 {ms(snap.ttfw_p50_ms)} · p95 {ms(snap.ttfw_p95_ms)}")
        grid.add_row("lab", self.lab_text(snap.lab, rich=True))
        return grid

    def line(self, snap: ProgressSnapshot) -> str:
        """The plain line for a log."""
        return (
            f"{self.title} {snap.elapsed_s:,.0f} s: started {snap.started}, active {snap.active}, "
            f"completed {snap.completed}, failed {snap.failed}"
            + (f", lab errors {snap.lab_errors}" if snap.lab_errors else "")
            + f"; {snap.calls_per_s:.1f} calls/s; turn p50 {ms(snap.turn_p50_ms)} "
            f"p95 {ms(snap.turn_p95_ms)}; first word p50 {ms(snap.ttfw_p50_ms)} "
            f"p95 {ms(snap.ttfw_p95_ms)}; {self.lab_text(snap.lab, rich=False)}"
        )

    @staticmethod
    def lab_text(lab: LabHealth, *, rich: bool) -> str:
        text = f"lateness p99 {lab.send_lateness_p99_ms:.1f} ms · CPU {lab.cpu_pct:.0f}%"
        if lab.overloaded:
            warning = f"OVERLOADED: {lab.note or 'figures not trusted'}"
            # The note is the lab's own text; escape it so a bracket is not read as markup.
            text += f" · [bold red]{escape_markup(warning)}[/bold red]" if rich else f" · {warning}"
        return text

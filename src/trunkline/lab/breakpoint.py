"""Breakpoint search: raise the load until the target fails, then narrow down the knee.

Theory of operation
-------------------
The driver asks :meth:`BreakpointSearch.next_level`, holds that load for the profile's
``hold_s``, judges the step against its thresholds (error rate, latency percentiles: the
driver's business, not ours) and reports ``passed`` with the figures it measured. The
search is a table ``(phase, passed) -> transition``:

==========  ======  ===================================================================
phase       passed  what happens
==========  ======  ===================================================================
CLIMB       yes     remember the level as the best pass; at ``max_level``: DONE (the
                    target never failed), else climb one rung (step or factor)
CLIMB       no      remember the first failure; no pass yet: DONE (no knee); refine
                    steps left and a gap to split: REFINE at the midpoint, else DONE
REFINE      yes     the midpoint is the new best pass; split again or DONE
REFINE      no      the midpoint is the new first failure; split again or DONE
DONE        any     a usage error: the search is over
==========  ======  ===================================================================

The *knee* is the highest level that passed below the lowest that failed. Levels of a
closed profile are whole calls, so bisection stops when the pass and the failure are
adjacent. The search is finite: at most ``len(ladder) + refine`` steps.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from trunkline.lab.profiles import BreakpointProfile, LoadModel


class BreakpointUsageError(RuntimeError):
    """The driver reported out of turn (a bug in the driver, not in the target)."""


class Phase(enum.StrEnum):
    CLIMB = "climb"
    REFINE = "refine"
    DONE = "done"


@dataclass(frozen=True, slots=True)
class BreakpointStep:
    """One held level and its verdict."""

    level: float
    passed: bool
    phase: Phase
    figures: Mapping[str, float] = field(default_factory=lambda: MappingProxyType({}))


@dataclass(frozen=True, slots=True)
class BreakpointResult:
    """Where the search ended.

    Attributes:
        knee: the highest level that passed below the lowest failure (None: even
            ``start`` failed).
        first_failure: the lowest level that failed (None: nothing failed).
        reached_max: every climbing level passed, up to ``max_level``.
        steps: every level held, in order.
    """

    knee: float | None
    first_failure: float | None
    reached_max: bool
    steps: tuple[BreakpointStep, ...]

    @property
    def knee_figures(self) -> Mapping[str, float] | None:
        """The figures measured at the knee."""
        for step in reversed(self.steps):
            if step.passed and step.level == self.knee:
                return step.figures
        return None


class BreakpointSearch:
    """The search's state (see the module docstring)."""

    def __init__(self, profile: BreakpointProfile) -> None:
        self.profile = profile
        self.phase = Phase.CLIMB
        self._next: float | None = profile.start
        self._best: float | None = None  # highest pass below the lowest failure
        self._fail: float | None = None  # lowest failure
        self._refine_left = profile.refine
        self._reached_max = False
        self._steps: list[BreakpointStep] = []

    @property
    def done(self) -> bool:
        return self.phase is Phase.DONE

    def next_level(self) -> float | None:
        """The level to hold next; None once the search is done."""
        return self._next

    def report(
        self, level: float, passed: bool, figures: Mapping[str, float] | None = None
    ) -> float | None:
        """The verdict on the level just held; returns the next level (None: done).

        Raises:
            BreakpointUsageError: the search is done, or ``level`` is not the level
                :meth:`next_level` asked for.
        """
        transition = _TABLE.get((self.phase, passed))
        if transition is None:  # DONE has no transitions
            raise BreakpointUsageError("the search is over; read result")
        if level != self._next:
            message = f"reported level {level}, but the search asked for {self._next}"
            raise BreakpointUsageError(message)
        figs = MappingProxyType(dict(figures or {}))
        self._steps.append(BreakpointStep(level, passed, self.phase, figs))
        self.phase = transition(self, level)
        if self.phase is Phase.DONE:
            self._next = None
        return self._next

    @property
    def result(self) -> BreakpointResult:
        """The knee and the history so far (final once :attr:`done`)."""
        return BreakpointResult(self._best, self._fail, self._reached_max, tuple(self._steps))

    # --- transitions ----------------------------------------------------------------

    def _climb_pass(self, level: float) -> Phase:
        self._best = level
        if level >= self.profile.max_level:
            self._reached_max = True
            return Phase.DONE
        self._next = self.profile.next_up(level)
        return Phase.CLIMB

    def _climb_fail(self, level: float) -> Phase:
        self._fail = level
        if self._best is None:
            return Phase.DONE
        return self._split()

    def _refine_pass(self, level: float) -> Phase:
        self._best = level
        return self._split()

    def _refine_fail(self, level: float) -> Phase:
        self._fail = level
        return self._split()

    def _split(self) -> Phase:
        """Hold the midpoint of (best pass, first failure) if refinement is left."""
        assert self._best is not None and self._fail is not None
        if self._refine_left <= 0:
            return Phase.DONE
        mid = (self._best + self._fail) / 2.0
        if self.profile.model is LoadModel.CLOSED:
            mid = float(math.floor(mid))
        if not self._best < mid < self._fail:
            return Phase.DONE  # adjacent whole levels (or float resolution): nothing between
        self._refine_left -= 1
        self._next = mid
        return Phase.REFINE


_Transition = Callable[[BreakpointSearch, float], Phase]
_TABLE: dict[tuple[Phase, bool], _Transition] = {
    (Phase.CLIMB, True): BreakpointSearch._climb_pass,
    (Phase.CLIMB, False): BreakpointSearch._climb_fail,
    (Phase.REFINE, True): BreakpointSearch._refine_pass,
    (Phase.REFINE, False): BreakpointSearch._refine_fail,
}

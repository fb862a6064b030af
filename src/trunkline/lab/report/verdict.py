"""The readiness verdict: the run's figures against thresholds, and the lab's own health.

Each check compares one figure of the ``RunSummary`` with a threshold. Defaults are in
``CHECKS``; any can be overridden from the command line (``--threshold ttfw_p95_ms=500``,
parsed by ``parse_thresholds``) or from a mapping (``thresholds_from_mapping``).

A check whose figure was not measured (WER when the agent exposes no transcript, MOS
over WebSocket) is shown as "not measured" and does not fail the verdict: a target
should not fail for what the lab could not see. With ``require_all`` it fails instead,
for a pipeline that insists on every figure.

The verdict is one of three, each with its exit code:

- ``ready`` (0): every measured check passed;
- ``not_ready`` (1): a check failed;
- ``inconclusive`` (3): the lab was overloaded (its timings are its own lateness as much
  as the target's), or nothing at all was measured. Exit code 2 is left to usage errors.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from ..results import WORKER_LOST, LabHealth
from .summary import RunSummary

Op = Literal["<", ">", ">="]
Status = Literal["pass", "fail", "not_measured"]
VerdictStatus = Literal["ready", "not_ready", "inconclusive"]

EXIT_READY = 0
EXIT_NOT_READY = 1
#: Not 2: argparse exits 2 on a usage error, and CI must tell the two apart.
EXIT_INCONCLUSIVE = 3
EXIT_CODES: dict[VerdictStatus, int] = {
    "ready": EXIT_READY,
    "not_ready": EXIT_NOT_READY,
    "inconclusive": EXIT_INCONCLUSIVE,
}


def pct(value: float | None) -> float | None:
    return None if value is None else 100 * value


@dataclass(frozen=True, slots=True)
class CheckSpec:
    """One readiness check: ``measure(summary) <op> threshold``."""

    key: str
    label: str
    op: Op
    default: float
    unit: str  # "ms", "%" or ""
    measure: Callable[[RunSummary], float | None]


CHECKS: tuple[CheckSpec, ...] = (
    CheckSpec(
        "ttfw_p95_ms", "time to first word p95", "<", 400.0, "ms",
        lambda s: s.time_to_first_word_ms.p95,
    ),
    CheckSpec(
        "turn_latency_p95_ms", "turn latency p95", "<", 800.0, "ms",
        lambda s: s.turn_latency_ms.p95,
    ),
    CheckSpec("wer_pct", "word error rate", "<", 5.0, "%", lambda s: pct(s.wer)),
    CheckSpec(
        "task_success_pct", "task success", ">", 85.0, "%",
        lambda s: pct(s.task_success_rate),
    ),
    CheckSpec(
        "setup_failure_pct", "setup failures", "<", 2.0, "%",
        lambda s: pct(s.setup_failure_rate),
    ),
    CheckSpec("mos_median", "MOS (median)", ">=", 4.0, "", lambda s: s.mos.median),
)  # fmt: skip
CHECKS_BY_KEY = {c.key: c for c in CHECKS}


class ThresholdError(ValueError):
    """A threshold override that cannot be used; the message says which and why."""


def parse_thresholds(items: Iterable[str]) -> dict[str, float]:
    """Parse ``KEY=VALUE`` strings (``ttfw_p95_ms=500``, ``task_success_pct=90%``).

    Raises:
        ThresholdError: no ``=``, an unknown key, or a value that is not a finite number.
    """
    out: dict[str, float] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep:
            raise ThresholdError(f"threshold {item!r} is not KEY=VALUE (e.g. ttfw_p95_ms=500)")
        key = key.strip()
        out[key] = threshold_value(key, raw.strip())
    return out


def thresholds_from_mapping(values: Mapping[str, object]) -> dict[str, float]:
    """Check a mapping of overrides (from a config file); values may be numbers or strings.

    Raises:
        ThresholdError: as ``parse_thresholds``.
    """
    out: dict[str, float] = {}
    for key, value in values.items():
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise ThresholdError(f"threshold {key}: {value!r} is not a number")
        out[key] = threshold_value(key, str(value))
    return out


def threshold_value(key: str, raw: str) -> float:
    spec = CHECKS_BY_KEY.get(key)
    if spec is None:
        known = ", ".join(CHECKS_BY_KEY)
        raise ThresholdError(f"unknown threshold {key!r}; known: {known}")
    text = raw.removesuffix(spec.unit).strip() if spec.unit else raw
    try:
        value = float(text)
    except ValueError:
        raise ThresholdError(f"threshold {key}: {raw!r} is not a number") from None
    if not math.isfinite(value):
        raise ThresholdError(f"threshold {key}: {raw!r} is not a finite number")
    return value


@dataclass(frozen=True, slots=True)
class CheckResult:
    """One check's outcome; ``value`` is None when not measured."""

    key: str
    label: str
    op: Op
    threshold: float
    unit: str
    value: float | None
    status: Status
    detail: str


@dataclass(frozen=True, slots=True)
class Verdict:
    """The run's readiness, the checks behind it and the lab's health."""

    status: VerdictStatus
    reason: str
    checks: list[CheckResult] = field(default_factory=list)
    require_all: bool = False
    lab_overloaded: bool = False
    lab_note: str = ""

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.status]

    @property
    def headline(self) -> str:
        """``READY``, ``NOT READY`` or ``INCONCLUSIVE``."""
        return self.status.replace("_", " ").upper()

    def sentence(self) -> str:
        """One line for a terminal: ``NOT READY: turn latency p95 881 ms (misses < 800 ms)``."""
        return f"{self.headline}: {self.reason}"

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["exit_code"] = self.exit_code
        return out


def holds(value: float, op: Op, threshold: float) -> bool:
    if op == "<":
        return value < threshold
    if op == ">":
        return value > threshold
    return value >= threshold


def fmt_value(value: float, unit: str) -> str:
    if unit == "ms":
        return f"{value:.0f} ms"
    if unit == "%":
        return f"{value:.1f}%"
    return f"{value:.2f}"


def run_check(spec: CheckSpec, summary: RunSummary, threshold: float, require: bool) -> CheckResult:
    value = spec.measure(summary)
    if value is None or not math.isfinite(value):
        status: Status = "fail" if require else "not_measured"
        detail = "not measured" + (" (every check is required)" if require else "")
        return CheckResult(
            spec.key, spec.label, spec.op, threshold, spec.unit, None, status, detail
        )
    ok = holds(value, spec.op, threshold)
    want = f"{spec.op} {fmt_value(threshold, spec.unit)}"
    detail = f"{fmt_value(value, spec.unit)} ({'meets' if ok else 'misses'} {want})"
    return CheckResult(
        spec.key, spec.label, spec.op, threshold, spec.unit, value, "pass" if ok else "fail", detail
    )


def judge(
    summary: RunSummary,
    lab: LabHealth,
    thresholds: Mapping[str, float] | None = None,
    *,
    require_all: bool = False,
) -> Verdict:
    """Run every check and decide; see the module docstring.

    Raises:
        ThresholdError: ``thresholds`` names an unknown check.
    """
    overrides = dict(thresholds or {})
    for key in overrides:
        if key not in CHECKS_BY_KEY:
            raise ThresholdError(f"unknown threshold {key!r}; known: {', '.join(CHECKS_BY_KEY)}")
    checks = [
        run_check(spec, summary, overrides.get(spec.key, spec.default), require_all)
        for spec in CHECKS
    ]
    status, reason = decide(checks, summary, lab)
    note = (lab.note or "the lab was overloaded") if lab.overloaded else ""
    return Verdict(status, reason, checks, require_all, lab.overloaded, note)


def decide(
    checks: list[CheckResult], summary: RunSummary, lab: LabHealth
) -> tuple[VerdictStatus, str]:
    """The verdict and the sentence saying why."""
    if lab.overloaded:
        lost = summary.failures.get(WORKER_LOST, 0)
        reason = (
            f"{lost} calls were lost with a lab process, the run is incomplete"
            if lost
            else "the lab was overloaded, its timings are not trusted"
        )
        return "inconclusive", reason + (f" ({lab.note})" if lab.note else "")
    if all(c.value is None for c in checks):
        return "inconclusive", f"nothing was measured ({summary.calls} calls)"
    failed = [c for c in checks if c.status == "fail"]
    if failed:
        return "not_ready", "; ".join(f"{c.label} {c.detail}" for c in failed)
    unmeasured = [c.label for c in checks if c.status == "not_measured"]
    reason = "every measured check passed"
    if unmeasured:
        reason += f" (not measured: {', '.join(unmeasured)})"
    return "ready", reason

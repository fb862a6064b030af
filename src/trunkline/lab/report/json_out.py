"""``report.json``: the run, its summary and its verdict in one file that loads back.

The file is strict JSON (RFC 8259): a NaN or an infinity that slipped into a measurement
is written as ``null`` ("not measured") instead of the ``NaN`` token Python would emit
and every other JSON reader refuses. ``load_run`` reads the run back into a
``RunResult`` (refusing a report of another schema, see ``results``).
"""

from __future__ import annotations

import json
import math
import pathlib
from typing import Any

from ..results import RunResult
from .summary import RunSummary
from .verdict import Verdict

REPORT_JSON = "report.json"


def finite_json(value: Any) -> Any:
    """``value`` with every non-finite float replaced by None, recursively."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: finite_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite_json(v) for v in value]
    return value


def dump_json(document: dict[str, Any]) -> str:
    """Strict, compact JSON (see the module docstring).

    Compact because a run of 20,000 calls is some 45 MB either way (``jq .`` indents it),
    and indenting tripled the time to write it. The walk that replaces non-finite
    numbers runs only when the fast path finds one.
    """
    options: dict[str, Any] = {"allow_nan": False, "ensure_ascii": False, "separators": (",", ":")}
    try:
        return json.dumps(document, **options)
    except ValueError:  # a NaN or an infinity somewhere
        return json.dumps(finite_json(document), **options)


def report_document(run: RunResult, summary: RunSummary, verdict: Verdict) -> dict[str, Any]:
    return {"run": run.as_dict(), "summary": summary.as_dict(), "verdict": verdict.as_dict()}


def write_json(
    run: RunResult, summary: RunSummary, verdict: Verdict, out_dir: pathlib.Path
) -> pathlib.Path:
    """Write ``out_dir/report.json`` and return its path."""
    path = out_dir / REPORT_JSON
    path.write_text(dump_json(report_document(run, summary, verdict)) + "\n", encoding="utf-8")
    return path


def load_run(path: pathlib.Path) -> RunResult:
    """The ``RunResult`` of a ``report.json`` (or of a bare ``run.as_dict()`` file).

    Raises:
        ValueError: the file is not JSON, is not a report, or has another schema.
    """
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not JSON ({e})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: not a pretest report (top level is not an object)")
    run = data.get("run", data)
    if not isinstance(run, dict) or "calls" not in run:
        raise ValueError(f"{path}: not a pretest report (no run with calls)")
    try:
        return RunResult.from_dict(run)
    except (TypeError, KeyError) as e:
        raise ValueError(f"{path}: the run does not fit the result model ({e})") from None

"""Reports of a pretest run: the summary, the readiness verdict, JSON, JUnit, HTML, A/B.

Everything here reads a ``RunResult`` (``lab.results``) and nothing else. The command
line calls ``write_reports`` once at the end of a run and exits with the verdict's code.
"""

from __future__ import annotations

import pathlib
from collections.abc import Mapping

from ..results import RunResult
from .html import write_html
from .json_out import write_json
from .junit import write_junit
from .summary import RunSummary, summarize
from .verdict import Verdict, judge

__all__ = ["RunSummary", "Verdict", "judge", "summarize", "write_reports"]


def write_reports(
    run: RunResult,
    out_dir: pathlib.Path,
    thresholds: Mapping[str, float] | None = None,
    *,
    require_all: bool = False,
) -> Verdict:
    """Write ``report.json``, ``junit.xml`` and ``report.html`` into ``out_dir``.

    ``thresholds`` are overrides as ``verdict.parse_thresholds`` returns them. The
    caller exits with ``verdict.exit_code``.

    Raises:
        ThresholdError: a threshold names an unknown check.
        OSError: ``out_dir`` cannot be created or written.
    """
    summary = summarize(run)
    verdict = judge(summary, run.lab, thresholds, require_all=require_all)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_json(run, summary, verdict, out_dir)
    write_junit(run, verdict, out_dir)
    write_html(run, summary, verdict, out_dir)
    return verdict

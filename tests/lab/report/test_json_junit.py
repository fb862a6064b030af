"""report.json loads back into the same RunResult; junit.xml parses back with sane counts."""

from __future__ import annotations

import json
import math
import pathlib
import xml.etree.ElementTree as ET

import pytest

from trunkline.lab.report import write_reports
from trunkline.lab.report.json_out import load_run
from trunkline.lab.report.junit import write_junit
from trunkline.lab.report.summary import summarize
from trunkline.lab.report.verdict import CHECKS, judge
from trunkline.lab.results import CallResult, LabHealth, RunResult


def strict_json(text: str) -> object:
    def refuse(token: str) -> object:
        raise AssertionError(f"non-standard JSON token {token}")

    return json.loads(text, parse_constant=refuse)


def test_report_json_round_trip(run: RunResult, tmp_path: pathlib.Path) -> None:
    verdict = write_reports(run, tmp_path)
    document = strict_json((tmp_path / "report.json").read_text(encoding="utf-8"))
    assert isinstance(document, dict)
    assert set(document) == {"run", "summary", "verdict"}
    assert document["verdict"]["status"] == verdict.status
    assert document["verdict"]["exit_code"] == verdict.exit_code
    assert document["summary"]["calls"] == len(run.calls)
    assert document["summary"]["failures"] == summarize(run).failures
    assert load_run(tmp_path / "report.json") == run


def test_non_finite_numbers_become_null(tmp_path: pathlib.Path) -> None:
    call = CallResult(0, "x", "sip:t", "sip", 1, time_to_first_word_ms=math.nan,
                      dead_air_ms=[math.inf, 2500.0])  # fmt: skip
    run = RunResult("sip:t", "p", ["x"], "now", 1.0, 1, calls=[call])
    write_reports(run, tmp_path)
    document = strict_json((tmp_path / "report.json").read_text(encoding="utf-8"))
    assert isinstance(document, dict)
    assert document["run"]["calls"][0]["time_to_first_word_ms"] is None
    assert document["run"]["calls"][0]["dead_air_ms"] == [None, 2500.0]
    loaded = load_run(tmp_path / "report.json")
    assert loaded.calls[0].time_to_first_word_ms is None
    assert summarize(loaded).dead_air_count == 1  # the null is "not measured", not a crash


def test_load_refuses_what_is_not_a_report(tmp_path: pathlib.Path, run: RunResult) -> None:
    path = tmp_path / "report.json"
    cases = {
        "{not json": "not JSON",
        "[1, 2]": "top level is not an object",
        '{"run": {"target": "x"}}': "no run with calls",
        json.dumps({**run.as_dict(), "schema": 99}): "schema 99 is not 1",
        json.dumps({"calls": [], "target": "x", "schema": 1}): "does not fit the result model",
        json.dumps({**run.as_dict(), "calls": [{"index": 0}]}): "does not fit",
    }
    for text, message in cases.items():
        path.write_text(text, encoding="utf-8")
        with pytest.raises(ValueError, match=message):
            load_run(path)
    path.write_text(json.dumps(run.as_dict()), encoding="utf-8")  # a bare run is fine
    assert load_run(path) == run


def test_junit_counts_and_messages(run: RunResult, tmp_path: pathlib.Path) -> None:
    summary = summarize(run)
    verdict = judge(summary, run.lab)
    root = ET.parse(write_junit(run, verdict, tmp_path)).getroot()
    assert root.tag == "testsuites"
    suites = {s.get("name"): s for s in root.findall("testsuite")}
    assert list(suites) == ["readiness", *run.scenarios]

    readiness = suites["readiness"]
    cases = readiness.findall("testcase")
    assert [c.get("name") for c in cases] == [c.key for c in CHECKS] + ["lab_health"]
    failed_checks = sum(1 for c in verdict.checks if c.status == "fail")
    assert (
        readiness.get("failures")
        == str(failed_checks)
        == str(len(readiness.findall("testcase/failure")))
    )
    assert readiness.get("errors") == "0"  # the lab was healthy

    per_call = [c for name in run.scenarios for c in suites[name].findall("testcase")]
    assert len(per_call) == len(run.calls)
    errors = [c for c in per_call if c.find("error") is not None]
    assert len(errors) == summary.lab_errors  # our own failures are errors, not failures
    failures = [c.find("failure") for c in per_call if c.find("failure") is not None]
    # Failed calls, plus completed calls whose task failed.
    assert len(failures) == summary.failed + (summary.completed - sum(
        1 for c in run.calls if c.failure is None and c.task_success))  # fmt: skip
    assert int(root.get("tests", "0")) == len(run.calls) + len(CHECKS) + 1
    assert int(root.get("failures", "0")) == len(failures) + failed_checks
    assert int(root.get("errors", "0")) == summary.lab_errors

    by_name = {c.get("name"): c for c in per_call}
    for call in run.calls:
        case = by_name[f"call {call.index} (seed {call.seed})"]
        if call.failure is not None:
            problem = case.find("error" if call.lab_fault else "failure")
            assert problem is not None
            assert problem.get("message") == f"{call.failure}: {call.failure_detail}"
            assert problem.text is not None and call.replay in problem.text
        elif call.task_success:
            assert len(case) == 0


def test_junit_skips_what_was_not_measured_and_errors_on_an_overloaded_lab(
    tmp_path: pathlib.Path,
) -> None:
    call = CallResult(0, "x", "ws://t", "ws", 1, failure="setup_timeout",
                      failure_detail="no answer \x00\x1b[31m in 5 s", replay="")  # fmt: skip
    run = RunResult("ws://t", "p", ["x"], "now", 1.0, 1, calls=[call],
                    lab=LabHealth(30.0, 200.0, True, "late by 30 ms"))  # fmt: skip
    verdict = judge(summarize(run), run.lab)
    root = ET.parse(write_junit(run, verdict, tmp_path)).getroot()  # parses: no raw NUL
    readiness = root.find("testsuite[@name='readiness']")
    assert readiness is not None
    assert readiness.get("errors") == "1"
    lab = readiness.find("testcase[@name='lab_health']/error")
    assert lab is not None and "late by 30 ms" in lab.get("message", "")
    assert readiness.get("skipped") == str(sum(c.status == "not_measured" for c in verdict.checks))
    failure = root.find("testsuite[@name='x']/testcase/failure")
    assert failure is not None
    assert failure.get("message") == "setup_timeout: no answer \ufffd\ufffd[31m in 5 s"
    assert failure.text is not None and "(no replay command recorded)" in failure.text

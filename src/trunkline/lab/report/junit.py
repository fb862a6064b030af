"""``junit.xml``: the verdict and every call as JUnit test cases, for any CI to show.

The layout is the common JUnit XML that Jenkins, GitLab and GitHub reporters read:
``<testsuites>`` holding

- one ``<testsuite name="readiness">`` with a ``<testcase>`` per verdict check (a failed
  check is a ``<failure>``, one not measured is ``<skipped>``) and one for the lab's own
  health (an overloaded lab is an ``<error>``: the harness, not the target, went wrong);
- one ``<testsuite>`` per scenario with a ``<testcase>`` per call. A failed call is a
  ``<failure>`` whose message is its category and detail and whose text ends with the
  replay command; a ``lab_error`` call is an ``<error>``, never blamed on the target.

Every count attribute (``tests``, ``failures``, ``errors``, ``skipped``) is computed from
the cases written, so the file agrees with itself.
"""

from __future__ import annotations

import pathlib
import re
import xml.etree.ElementTree as ET
from collections import defaultdict

from ..results import CallResult, RunResult
from .verdict import Verdict

JUNIT_XML = "junit.xml"
#: Characters XML 1.0 cannot hold at all, even escaped (a target's reason phrase may
#: carry them); ElementTree would write them and make the file unreadable.
XML_ILLEGAL = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def xml_safe(text: str) -> str:
    """``text`` with the characters XML 1.0 forbids replaced by U+FFFD."""
    return XML_ILLEGAL.sub("\ufffd", text)


def replay_text(call: CallResult) -> str:
    return xml_safe(call.replay) or "(no replay command recorded)"


def call_case(call: CallResult) -> ET.Element:
    case = ET.Element(
        "testcase",
        name=f"call {call.index} (seed {call.seed})",
        classname=xml_safe(f"pretest.{call.scenario}"),
        time=f"{(call.duration_ms or 0.0) / 1000:.3f}",
    )
    if call.failure is not None:
        tag = "error" if call.lab_fault else "failure"
        message = xml_safe(
            f"{call.failure}: {call.failure_detail}" if call.failure_detail else call.failure
        )
        problem = ET.SubElement(case, tag, message=message, type=xml_safe(call.failure))
        problem.text = f"{message}\nreplay: {replay_text(call)}"
    elif not call.task_success:
        failed = [f"{e.name}: {e.detail}" for e in call.expectations if not e.ok]
        failed += [f"turn {t.index}: {t.expect_detail}" for t in call.turns if t.expect_ok is False]
        message = xml_safe("task failed: " + ("; ".join(failed) or "an expectation did not hold"))
        problem = ET.SubElement(case, "failure", message=message, type="task")
        problem.text = f"{message}\nreplay: {replay_text(call)}"
    return case


def readiness_suite(verdict: Verdict) -> ET.Element:
    suite = ET.Element("testsuite", name="readiness")
    for check in verdict.checks:
        case = ET.SubElement(suite, "testcase", name=check.key, classname="pretest.readiness")
        if check.status == "fail":
            ET.SubElement(case, "failure", message=f"{check.label}: {check.detail}", type="check")
        elif check.status == "not_measured":
            ET.SubElement(case, "skipped", message=f"{check.label}: not measured")
    lab = ET.SubElement(suite, "testcase", name="lab_health", classname="pretest.readiness")
    if verdict.lab_overloaded:
        message = xml_safe(f"lab overloaded: {verdict.lab_note}")
        ET.SubElement(lab, "error", message=message, type="lab")
    return suite


def count(suite: ET.Element) -> dict[str, int]:
    """Set and return the suite's count attributes from its cases."""
    cases = suite.findall("testcase")
    counts = {
        "tests": len(cases),
        "failures": sum(1 for c in cases if c.find("failure") is not None),
        "errors": sum(1 for c in cases if c.find("error") is not None),
        "skipped": sum(1 for c in cases if c.find("skipped") is not None),
    }
    for key, value in counts.items():
        suite.set(key, str(value))
    return counts


def junit_tree(run: RunResult, verdict: Verdict) -> ET.ElementTree[ET.Element]:
    """The whole JUnit document; see the module docstring."""
    root = ET.Element("testsuites", name=xml_safe(f"pretest {run.target}"))
    root.append(readiness_suite(verdict))
    by_scenario: dict[str, list[CallResult]] = defaultdict(list)
    for call in run.calls:
        by_scenario[call.scenario].append(call)
    for name in dict.fromkeys([*run.scenarios, *by_scenario]):
        suite = ET.SubElement(
            root, "testsuite", name=xml_safe(name), timestamp=xml_safe(run.started_at)
        )
        for call in by_scenario.get(name, []):
            suite.append(call_case(call))
    totals = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    for suite in root.findall("testsuite"):
        for key, value in count(suite).items():
            totals[key] += value
    for key, value in totals.items():
        root.set(key, str(value))
    ET.indent(root)
    return ET.ElementTree(root)


def write_junit(run: RunResult, verdict: Verdict, out_dir: pathlib.Path) -> pathlib.Path:
    """Write ``out_dir/junit.xml`` and return its path."""
    path = out_dir / JUNIT_XML
    junit_tree(run, verdict).write(path, encoding="utf-8", xml_declaration=True)
    return path

"""``trunkline demo``: the Acme agent in a child process, a pretest against it, the report.

These run the real command as a newcomer would (``python -m trunkline demo --once``),
with a short profile and one short scenario so that the test stays within a minute.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

from tests.conftest import ACME
from tests.interop.sipp import free_port

SCENARIO = ACME.parent / "scenarios" / "talk-to-a-person.yaml"
#: Agent start-up (ASR worker pool) plus two calls of about 15 s each, with a margin for
#: a loaded machine; a hang fails the test instead of stalling the suite.
DEMO_TIMEOUT_S = 240


def _demo(
    out: Path, *extra: str, sip: int | None = None, http: int | None = None
) -> subprocess.CompletedProcess[str]:
    argv = [
        sys.executable, "-m", "trunkline", "demo", "--once", "--quiet",
        "--sip", f"127.0.0.1:{sip or free_port()}", "--http", f"127.0.0.1:{http or free_port()}",
        "--out", str(out), *extra,
    ]  # fmt: skip
    return subprocess.run(
        argv, capture_output=True, text=True, timeout=DEMO_TIMEOUT_S, check=False
    )


def test_the_demo_pretests_the_acme_agent_and_writes_the_reports(tmp_path: Path) -> None:
    out = tmp_path / "report"
    http = free_port()
    done = _demo(
        out,
        "--scenarios", str(SCENARIO),
        "--profile", "constant:rate=1,duration=2,arrivals=even",
        http=http,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"The report: {(out / 'report.html').resolve()}" in done.stdout
    assert "pretest: " in done.stdout  # the verdict's sentence
    for name in ("report.html", "report.json", "junit.xml", "agent.log"):
        assert (out / name).is_file(), name
    run = json.loads((out / "report.json").read_text())["run"]
    assert len(run["calls"]) == 2
    for call in run["calls"]:
        assert call["scenario"] == "talk-to-a-person"
        # The agent answered and spoke: the lab heard its greeting.
        assert call["setup_status"] == 200, call
        assert call["time_to_first_word_ms"] is not None, call
        # The agent's record was fetched through its records API (the transcript URL).
        assert call["agent_call_id"], call
    # The agent stopped with the demo: its HTTP port is free again.
    assert "serving" in (out / "agent.log").read_text()
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", http))


def test_an_agent_that_cannot_start_is_reported_with_its_log(tmp_path: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as busy:
        busy.bind(("127.0.0.1", 0))
        port = busy.getsockname()[1]
        done = _demo(tmp_path / "out", sip=port)
    assert done.returncode == 2
    assert "the agent exited" in done.stderr
    assert "cannot listen" in done.stderr  # the agent's own message, from its log


def test_missing_scenarios_are_refused(tmp_path: Path) -> None:
    done = _demo(tmp_path / "out", "--scenarios", str(tmp_path / "nowhere"))
    assert done.returncode == 2
    assert "nowhere does not exist" in done.stderr

"""CPU time and CPU pinning for the lab benchmarks (``lab_accuracy``, ``lab_capacity``)."""

from __future__ import annotations

import contextlib
import os
import resource
from pathlib import Path


def proc_cpu_s(pid: int) -> float:
    """User + system CPU seconds of another process, from /proc/<pid>/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def own_cpu_s() -> float:
    """User + system CPU seconds of this process."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def pin(cpu: int, pid: int = 0) -> None:
    """Pin ``pid`` (0: this process) to ``cpu`` when the machine has it."""
    if (os.cpu_count() or 1) > cpu:
        with contextlib.suppress(OSError):
            os.sched_setaffinity(pid, {cpu})

"""Agent errors, split by whose fault it was (the h11 pattern).

``AgentSpecError``: the agent spec (YAML written by a person) is wrong. It carries every
problem found, not just the first, each naming the file, line and field path, so one
edit-run cycle fixes them all. ``AgentUsageError``: our own code misused the brain's API
(feeding input while a turn is still running, restoring a snapshot of another spec);
that is a bug here, never the spec author's.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


class AgentError(Exception):
    """Base of every error the agent package raises."""


@dataclass(frozen=True, slots=True)
class SpecIssue:
    """One problem in a spec: where (line, dotted field path) and what."""

    line: int | None
    path: str
    message: str

    def format(self, source: str) -> str:
        """``agent.yaml:27: states.main.prompt: expected text, got int``."""
        where = f"{source}:{self.line}" if self.line is not None else source
        return f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"


class AgentSpecError(AgentError):
    """The spec does not load: YAML syntax, structure, or meaning. Lists every issue."""

    def __init__(self, source: str, issues: Sequence[SpecIssue]) -> None:
        self.source = source
        self.issues: tuple[SpecIssue, ...] = tuple(
            sorted(issues, key=lambda i: (i.line if i.line is not None else 0, i.path))
        )
        lines = [issue.format(source) for issue in self.issues]
        count = len(lines)
        head = f"{source}: {count} problem{'s' if count != 1 else ''} in agent spec"
        super().__init__("\n".join([head, *lines]))


class AgentUsageError(AgentError):
    """We called the agent API in a way its state does not allow (a bug on our side)."""

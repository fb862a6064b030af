"""Whether each provider works, for ``GET /health`` and the ``trunkline_provider_up`` gauge.

A provider is reported at start (``trunkline serve`` checks its chat models) and then by
its own requests, through :class:`~trunkline.api.metrics.ProviderCollector`: a first
byte marks it up, a failure that will not be retried marks it down with the error. So a
model that was down at start shows up again after its first good answer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["ProviderHealth", "ProviderState"]

#: Longest detail kept per provider (an error message; a page of HTML is not useful).
MAX_DETAIL_CHARS = 300


@dataclass(slots=True)
class ProviderState:
    up: bool
    detail: str


class ProviderHealth:
    """The latest known state of each provider, by label."""

    def __init__(self) -> None:
        self._states: dict[str, ProviderState] = {}

    def report(self, provider: str, *, up: bool, detail: str = "") -> None:
        """Record ``provider``'s state now."""
        self._states[provider] = ProviderState(up, detail[:MAX_DETAIL_CHARS])

    @property
    def all_up(self) -> bool:
        return all(state.up for state in self._states.values())

    def states(self) -> dict[str, ProviderState]:
        """Each provider's state, by label (a copy)."""
        return dict(self._states)

    def as_dict(self) -> dict[str, dict[str, Any]]:
        """JSON for ``/health``: ``{label: {"up": bool, "detail": str}}``."""
        return {k: {"up": v.up, "detail": v.detail} for k, v in sorted(self._states.items())}

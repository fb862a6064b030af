"""Small asyncio helpers shared by every layer (STYLE.md: one ``cancel_and_wait``)."""

from __future__ import annotations

import asyncio
from typing import Any


async def cancel_and_wait(task: asyncio.Task[Any]) -> None:
    """Cancel ``task`` and wait until it has finished, whatever it raises."""
    task.cancel()
    await asyncio.wait({task})

"""Keypad input: collect DTMF digits into one ``Digits`` turn per ``ListenSpec.dtmf``.

Theory of operation
-------------------
Sans-IO and frame-timed, like the endpointer. With a :class:`~trunkline.agent.spec.
DtmfSpec` the collector gathers keys until one of:

- the terminator (``#``) is pressed: the digits so far are the entry (a terminator
  alone is delivered as itself, so the brain can say "that was not a number");
- ``max_digits`` keys have been pressed;
- ``timeout_ms`` passes after the last key (the inter-digit timeout): what was typed is
  the entry.

With no spec (the state takes no keypad entry), each key is delivered on its own at
once, so a menu key still reaches the brain. Keys outside the 16 DTMF symbols are
ignored: a leg only produces those, and the brain need not guess at others.
"""

from __future__ import annotations

from trunkline.agent.spec import DtmfSpec
from trunkline.pipeline.endpointing import NEVER, frames_for

#: The 16 DTMF events of RFC 4733 §3.2 (0-9, *, #, A-D).
DTMF_KEYS = frozenset("0123456789*#ABCD")


class DigitCollector:
    """Collects one keypad entry; ``deadline`` is the frame at which :meth:`poll` fires."""

    __slots__ = ("_timeout", "deadline", "digits", "spec")

    def __init__(self, spec: DtmfSpec | None = None) -> None:
        self.spec = spec
        self.digits = ""
        self.deadline = NEVER
        self._timeout = frames_for(spec.timeout_ms) if spec is not None else NEVER

    @property
    def active(self) -> bool:
        """True while an entry is being typed."""
        return bool(self.digits)

    def configure(self, spec: DtmfSpec | None) -> None:
        """Use ``spec`` from the next key on (an entry in progress keeps its digits)."""
        self.spec = spec
        self._timeout = frames_for(spec.timeout_ms) if spec is not None else NEVER

    def press(self, key: str, frame: int) -> str | None:
        """A key at ``frame``; returns the finished entry, if this key finished one."""
        key = key.upper()
        if key not in DTMF_KEYS:
            return None
        spec = self.spec
        if spec is None:
            return key
        if spec.terminator and key == spec.terminator:
            entry = self.digits or key
            self.reset()
            return entry
        self.digits += key
        if len(self.digits) >= spec.max_digits:
            entry = self.digits
            self.reset()
            return entry
        self.deadline = frame + self._timeout
        return None

    def poll(self, frame: int) -> str | None:
        """The entry, once the inter-digit timeout has passed at ``frame``."""
        if frame < self.deadline:
            return None
        entry = self.digits
        self.reset()
        return entry or None

    def reset(self) -> None:
        self.digits = ""
        self.deadline = NEVER

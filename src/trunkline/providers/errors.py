"""Provider errors: one type the pipeline catches, with retryability decided here.

Follows livekit-agents' ``_exceptions.py``. A provider (ASR, TTS, LLM; embedded or
remote) that fails raises a ``ProviderError``; the pipeline catches that one type and
falls back (a reprompt, a canned message, a transfer), so a provider's failure never
ends a call. Whether an error is worth retrying is decided by these classes and nowhere
else: the retry helper (:mod:`trunkline.providers.retry`) only reads ``retryable``.

- ``APIStatusError``: the service answered with an error status. 408, 429 and 5xx are
  transient (the server says "later" or broke); any other 4xx is our request's fault and
  will fail the same way again.
- ``APIConnectionError``: no answer at all (refused, reset, a worker process that died):
  always retryable. ``APITimeoutError`` is the case where the answer came too late.
- ``ProviderError`` itself: anything else, retryable only when the raiser says so (an
  embedded engine's binary missing is not; a half-written pipe may be).

``ProviderUsageError`` is the other side of the h11 split: our own code misused the
interface (audio pushed after ``end_input``, a stream opened on a closed provider). It
is a bug here, not a provider failure, so it is not a ``ProviderError`` and the
pipeline's fallback does not swallow it.
"""

from __future__ import annotations

__all__ = [
    "APIConnectionError",
    "APIStatusError",
    "APITimeoutError",
    "ProviderError",
    "ProviderUsageError",
    "status_is_retryable",
]


def status_is_retryable(status: int) -> bool:
    """Whether an HTTP-style status is worth retrying: 408, 429 and 5xx are."""
    return status in (408, 429) or status >= 500


class ProviderError(Exception):
    """A provider failed; ``retryable`` says whether trying again may succeed.

    Args:
        message: what failed, for logs.
        provider: the provider's label (``"espeak"``, ``"pocketsphinx"``, ``"openai"``).
        retryable: whether a new attempt may succeed.
    """

    def __init__(self, message: str, *, provider: str, retryable: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.provider = provider
        self.retryable = retryable

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.message!r}, provider={self.provider!r}, "
            f"retryable={self.retryable!r})"
        )


class APIStatusError(ProviderError):
    """The service answered with an error status; retryable iff 408, 429 or >= 500."""

    def __init__(self, message: str, *, provider: str, status: int, body: object = None) -> None:
        super().__init__(message, provider=provider, retryable=status_is_retryable(status))
        self.status = status
        self.body = body

    def __str__(self) -> str:
        return f"{self.message} (status {self.status})"


class APIConnectionError(ProviderError):
    """The service could not be reached or the connection broke; always retryable."""

    def __init__(self, message: str = "connection error", *, provider: str) -> None:
        super().__init__(message, provider=provider, retryable=True)


class APITimeoutError(APIConnectionError):
    """The service did not answer in time; retryable like any connection error."""

    def __init__(self, message: str = "request timed out", *, provider: str) -> None:
        super().__init__(message, provider=provider)


class ProviderUsageError(RuntimeError):
    """Our code called a provider interface in a way its state does not allow (a bug)."""

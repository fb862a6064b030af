"""The LLM brain's chat history: what was said, cut to what was heard, kept consistent.

The history is a list of OpenAI chat messages (no system message: that comes from the
spec on every request, so a restored call uses the current prompt). Two things need
care:

- **Barge-in.** The model must not believe the caller heard a whole reply they cut off.
  Every sentence spoken in a turn is remembered with the message it belongs to (or none,
  for our own fillers); ``Interrupted(played_text)`` keeps, in order, as many words as
  were played, and the rest of each message is dropped (an assistant message left
  empty with no tool calls is removed).
- **Consistency.** A request whose last assistant message has tool calls without their
  ``tool`` answers is refused by OpenAI. A snapshot taken while a tool runs drops that
  unfinished tail; ``trim`` keeps the history bounded, cutting only at a user message
  so no tool answer loses its call.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

__all__ = ["INTERRUPTED_NOTE", "MAX_HISTORY_MESSAGES", "ChatHistory", "valid_message"]

#: Messages kept: a long call's early turns matter less than a bounded request size and
#: cost (a turn is 2 to 4 messages, so this is the last 30 to 60 turns).
MAX_HISTORY_MESSAGES = 120
_ROLES = ("user", "assistant", "tool")
#: Appended, in the request only, to an assistant message the caller cut off. In
#: brackets, as a transcript would note it, so the model reads it as an annotation.
INTERRUPTED_NOTE = " [the caller interrupted here]"


@dataclass(slots=True)
class _Spoken:
    message: dict[str, Any] | None  # the history message it belongs to (None: a filler)
    text: str


class ChatHistory:
    """A call's chat messages and what was spoken in the latest turn."""

    def __init__(self, messages: list[dict[str, Any]] | None = None) -> None:
        self.messages: list[dict[str, Any]] = messages or []
        self._spoken: list[_Spoken] = []

    def new_turn(self) -> None:
        """Forget what the previous turn spoke (a barge-in refers to the latest turn)."""
        self._spoken = []

    def user(self, text: str) -> None:
        self.messages.append({"role": "user", "content": text})
        self._trim()

    def assistant(
        self, sentences: list[str], tool_calls: list[dict[str, Any]] | None = None
    ) -> None:
        """An assistant message of spoken ``sentences`` (and tool calls, if any)."""
        if not sentences and not tool_calls:
            return
        message: dict[str, Any] = {"role": "assistant", "content": " ".join(sentences) or None}
        if tool_calls:
            message["tool_calls"] = tool_calls
        self.messages.append(message)
        self._spoken.extend(_Spoken(message, s) for s in sentences)

    def filler(self, text: str) -> None:
        """Something we said that is not the model's (it still counts for barge-in)."""
        self._spoken.append(_Spoken(None, text))

    def tool(self, call_id: str, content: str) -> None:
        self.messages.append({"role": "tool", "tool_call_id": call_id, "content": content})

    def answer_missing(self, content: str) -> None:
        """Answer, with ``content``, the latest tool calls that have no answer yet."""
        for i in range(len(self.messages) - 1, -1, -1):
            message = self.messages[i]
            if message["role"] == "assistant" and message.get("tool_calls"):
                answered = {m.get("tool_call_id") for m in self.messages[i + 1 :]}
                for call in message["tool_calls"]:
                    if call.get("id") not in answered:
                        self.tool(str(call.get("id")), content)
                return
            if message["role"] == "user":
                return

    def interrupted(self, played_text: str) -> None:
        """Cut the latest turn's spoken messages to the words that were played."""
        left = len(played_text.split())
        kept: dict[int, list[str]] = {}
        touched: dict[int, dict[str, Any]] = {}
        for spoken in self._spoken:
            words = spoken.text.split()
            heard, left = words[:left], max(0, left - len(words))
            if spoken.message is None:
                continue
            key = id(spoken.message)
            touched[key] = spoken.message
            if heard:
                kept.setdefault(key, []).append(" ".join(heard))
        for key, message in touched.items():
            content = " ".join(kept.get(key, [])) or None
            if content != message.get("content"):
                message["interrupted"] = True
            message["content"] = content
        self.messages = [m for m in self.messages if not _empty_assistant(m)]
        self._spoken = []

    def request(self) -> list[dict[str, Any]]:
        """The messages as a chat request takes them: interrupted ones carry
        ``INTERRUPTED_NOTE`` instead of the flag (other messages are shared, not copied)."""
        out: list[dict[str, Any]] = []
        for message in self.messages:
            if message.get("interrupted"):
                message = {k: v for k, v in message.items() if k != "interrupted"}
                if message.get("content"):
                    message["content"] += INTERRUPTED_NOTE
            out.append(message)
        return out

    def last_question(self) -> str | None:
        """The last sentence the agent said, if it was a question (to ask again)."""
        for message in reversed(self.messages):
            if message["role"] == "assistant" and message.get("content"):
                last = str(message["content"]).rsplit(". ", 1)[-1].strip()
                return last if last.endswith("?") else None
        return None

    def consistent(self) -> list[dict[str, Any]]:
        """A deep copy without an unfinished tool call at the end (for a snapshot)."""
        messages = self.messages
        for i in range(len(messages) - 1, -1, -1):
            calls = messages[i].get("tool_calls") if messages[i]["role"] == "assistant" else None
            if calls:
                answered = {m.get("tool_call_id") for m in messages[i + 1 :]}
                if not all(c.get("id") in answered for c in calls):
                    messages = messages[:i]
                break
        return copy.deepcopy(messages)

    def _trim(self) -> None:
        if len(self.messages) <= MAX_HISTORY_MESSAGES:
            return
        cut = len(self.messages) - MAX_HISTORY_MESSAGES
        while cut < len(self.messages) and self.messages[cut]["role"] != "user":
            cut += 1
        del self.messages[:cut]


def _empty_assistant(message: dict[str, Any]) -> bool:
    return (
        message["role"] == "assistant"
        and message.get("content") is None
        and not message.get("tool_calls")
    )


def valid_message(message: Any) -> bool:
    """Whether a restored message is one of ours (user, assistant or tool, JSON values)."""
    if not isinstance(message, dict) or message.get("role") not in _ROLES:
        return False
    content = message.get("content")
    if message["role"] == "tool":
        return isinstance(message.get("tool_call_id"), str) and isinstance(content, str)
    if message["role"] == "user":
        return isinstance(content, str)
    calls = message.get("tool_calls")
    return (
        (content is None or isinstance(content, str))
        and (calls is None or isinstance(calls, list))
        and isinstance(message.get("interrupted", False), bool)
    )

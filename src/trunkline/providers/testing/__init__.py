"""Local servers that speak the remote providers' real protocols, for tests, benchmarks, demos.

- :class:`OpenAIServer`: OpenAI's streaming chat completions (SSE, tool calls) and
  ``/audio/speech`` (streamed ``pcm`` and ``wav``);
- :class:`DeepgramServer`: Deepgram's live-streaming WebSocket protocol.

They run on 127.0.0.1 (port 0 by default), answer scripted content with scripted
latency, and take injected faults (error statuses, hangs, stalls, garbage, cut
streams, closed sockets), so the adapters are tested on the wire, not against mocks.
They do not think or listen: replies and transcripts are scripts (each module says
exactly what they derive from the request).
"""

from trunkline.providers.testing.base import Fault, LocalServer
from trunkline.providers.testing.deepgram_server import DeepgramServer, DeepgramStats
from trunkline.providers.testing.openai_server import (
    ChatReply,
    OpenAIServer,
    RecordedRequest,
    ScriptedToolCall,
    rule_reply,
)

__all__ = [
    "ChatReply",
    "DeepgramServer",
    "DeepgramStats",
    "Fault",
    "LocalServer",
    "OpenAIServer",
    "RecordedRequest",
    "ScriptedToolCall",
    "rule_reply",
]

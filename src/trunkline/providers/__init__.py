"""ASR, TTS and LLM providers behind small interfaces with capabilities.

- :mod:`.errors`: ``ProviderError`` and its kinds; retryability is decided there.
- :mod:`.retry`: ``RetryPolicy``, ``ProviderMetrics`` and the one retry helper.
- :mod:`.asr`, :mod:`.tts`, :mod:`.llm`: the interfaces.
- :mod:`.fakes`: scripted providers for tests and benchmarks.
- :mod:`.embedded_tts`: espeak-ng; :mod:`.embedded_asr`: pocketsphinx worker pool.
- :mod:`.openai_llm`, :mod:`.openai_tts`: OpenAI-compatible chat and speech over HTTP;
  :mod:`.deepgram_asr`: Deepgram's live recognition over a WebSocket;
  :mod:`.testing`: local servers speaking those protocols.

The embedded providers are imported from their modules (they pull in more).
"""

from trunkline.providers.asr import (
    ASR,
    ASRCapabilities,
    ASREvent,
    ASRStream,
    Final,
    Partial,
    WordTiming,
)
from trunkline.providers.deepgram_asr import DeepgramASR
from trunkline.providers.errors import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    ProviderError,
    ProviderUsageError,
)
from trunkline.providers.llm import LLM, LLMCapabilities, LLMChunk, TextDelta, ToolCallChunk
from trunkline.providers.openai_llm import OpenAILLM
from trunkline.providers.openai_tts import OpenAITTS
from trunkline.providers.retry import ProviderMetrics, RetryPolicy, retry_stream
from trunkline.providers.tts import TTS, TTSCapabilities

__all__ = [
    "ASR",
    "LLM",
    "TTS",
    "APIConnectionError",
    "APIStatusError",
    "APITimeoutError",
    "ASRCapabilities",
    "ASREvent",
    "ASRStream",
    "DeepgramASR",
    "Final",
    "LLMCapabilities",
    "LLMChunk",
    "OpenAILLM",
    "OpenAITTS",
    "Partial",
    "ProviderError",
    "ProviderMetrics",
    "ProviderUsageError",
    "RetryPolicy",
    "TTSCapabilities",
    "TextDelta",
    "ToolCallChunk",
    "WordTiming",
    "retry_stream",
]

"""Pipecat's server for ``agent_density.py``: the same conversation as trunkline's, in Pipecat.

Run by the benchmark with ``bench/.venv-pipecat/bin/python`` (see ``pipecat_side.py``);
it imports Pipecat and not trunkline.

Per call (one WebSocket on ``/media``, Twilio Media Streams): ``connected`` and ``start``
are read as Pipecat's telephony examples do, then a pipeline runs

    transport.input() -> [Silero VAD] -> FakeSTT -> ScriptedBrain -> FakeTTS -> transport.output()

with ``FastAPIWebsocketTransport`` and ``TwilioFrameSerializer`` (auto hang-up off: it
would call Twilio's REST API; nothing here touches the network beyond loopback). The
pipeline runs at 8 kHz in and out, so the serializer never resamples.

- FakeSTT (an ``STTService``): the turn ends ``--endpoint-ms`` after the last voiced
  20 ms frame, voiced meaning louder than -45 dBFS (trunkline's VAD energy gate, without
  its webrtcvad stage), or, with ``--vad silero``, on Pipecat's VAD stop (``stop_secs``
  = the endpoint silence). The transcript follows ``--asr-final-ms`` later: the caller's
  scripted words for that turn. No interim results.
- ScriptedBrain: answers turn i with the flow brain's reply i (computed by
  ``agent_script.agent_texts`` and passed in ``--script``), as one LLM response.
- FakeTTS (a ``TTSService``, sentence aggregation as Pipecat does by default): per
  sentence, ``--tts-first-byte-ms`` of wait, then a 440 Hz tone of 65 ms per character in
  200 ms chunks (what trunkline's ``FakeTTS`` yields).

Event-loop lag is sampled in the process (``loop_lag``: SIGUSR1 resets, SIGUSR2 prints).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import sys
from collections.abc import AsyncGenerator
from typing import Any

import numpy as np
import uvicorn
import uvloop
from fastapi import FastAPI, WebSocket
from loguru import logger
from pipecat.audio.vad.silero import SileroVADAnalyzer
from pipecat.audio.vad.vad_analyzer import VADParams
from pipecat.frames.frames import (
    Frame,
    LLMFullResponseEndFrame,
    LLMFullResponseStartFrame,
    LLMTextFrame,
    TranscriptionFrame,
    TTSAudioRawFrame,
    TTSSpeakFrame,
    VADUserStoppedSpeakingFrame,
)
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.runner import PipelineRunner
from pipecat.pipeline.task import PipelineParams, PipelineTask
from pipecat.processors.audio.vad_processor import VADProcessor
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
from pipecat.serializers.twilio import TwilioFrameSerializer
from pipecat.services.settings import STTSettings, TTSSettings
from pipecat.services.stt_service import STTService
from pipecat.services.tts_service import TTSService
from pipecat.transports.websocket.fastapi import (
    FastAPIWebsocketParams,
    FastAPIWebsocketTransport,
)
from pipecat.utils.time import time_now_iso8601

from loop_lag import LoopLag

SAMPLE_RATE = 8000
FRAME_SAMPLES = 160  # 20 ms
#: trunkline's VAD energy gate (``pipeline.vad.MIN_DBFS``) as a sum of squares per frame.
MIN_DBFS = -45.0
ENERGY_FLOOR = (32768.0 * 10.0 ** (MIN_DBFS / 20.0)) ** 2 * FRAME_SAMPLES
#: trunkline's ``FakeTTS``: 65 ms of audio per character, 200 ms chunks, a 440 Hz tone.
MS_PER_CHAR, CHUNK_MS, TONE_HZ = 65.0, 200, 440.0
#: Messages read before giving up on a ``start`` (Twilio sends ``connected`` first).
MAX_HANDSHAKE_MESSAGES = 4


def tone(text: str) -> bytes:
    frames = math.ceil(len(text) * MS_PER_CHAR / 20)
    t = np.arange(frames * FRAME_SAMPLES) / SAMPLE_RATE
    pcm: bytes = (np.sin(2 * np.pi * TONE_HZ * t) * 8192).astype("<i2").tobytes()
    return pcm


class FakeSTT(STTService):
    """Ends a turn on silence (or Pipecat's VAD) and hears the caller's scripted words."""

    def __init__(self, words: list[str], *, final_s: float, endpoint_ms: float, vad: bool):
        super().__init__(
            sample_rate=SAMPLE_RATE,
            ttfs_p99_latency=final_s,
            settings=STTSettings(model=None, language=None),
        )
        self._words = words
        self._final_s = final_s
        self._endpoint_frames = math.ceil(endpoint_ms / 20)
        self._vad = vad
        self._turn = 0
        self._speaking = False
        self._silent = 0

    async def run_stt(self, audio: bytes) -> AsyncGenerator[Frame | None, None]:
        if not self._vad:
            samples = np.frombuffer(audio, dtype=np.int16).astype(np.float32)
            if float(np.dot(samples, samples)) >= ENERGY_FLOOR * len(samples) / FRAME_SAMPLES:
                self._speaking, self._silent = True, 0
            elif self._speaking:
                self._silent += 1
                if self._silent >= self._endpoint_frames:
                    self._speaking = False
                    self._end_turn()
        yield None

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        if self._vad and isinstance(frame, VADUserStoppedSpeakingFrame):
            self._end_turn()
        await super().process_frame(frame, direction)

    def _end_turn(self) -> None:
        text = self._words[min(self._turn, len(self._words) - 1)]
        self._turn += 1
        self.create_task(self._deliver(text))

    async def _deliver(self, text: str) -> None:
        await asyncio.sleep(self._final_s)
        await self.push_frame(TranscriptionFrame(text, "", time_now_iso8601()))


class ScriptedBrain(FrameProcessor):
    """Turn i's transcript gets the flow brain's reply i, as one streamed LLM response."""

    def __init__(self, replies: list[str]) -> None:
        super().__init__()
        self._replies = replies
        self._turn = 0

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, TranscriptionFrame):
            reply = self._replies[min(self._turn, len(self._replies) - 1)]
            self._turn += 1
            await self.push_frame(LLMFullResponseStartFrame())
            await self.push_frame(LLMTextFrame(reply))
            await self.push_frame(LLMFullResponseEndFrame())
        else:
            await self.push_frame(frame, direction)


class FakeTTS(TTSService):
    """A tone per sentence after a fixed first-byte wait (trunkline's FakeTTS)."""

    def __init__(self, first_byte_s: float) -> None:
        super().__init__(
            sample_rate=SAMPLE_RATE,
            push_start_frame=True,
            push_stop_frames=True,
            settings=TTSSettings(model=None, voice=None, language=None),
        )
        self._first_byte_s = first_byte_s

    def can_generate_metrics(self) -> bool:
        return False

    async def run_tts(self, text: str, context_id: str) -> AsyncGenerator[Frame | None, None]:
        await asyncio.sleep(self._first_byte_s)
        pcm = tone(text)
        step = CHUNK_MS * SAMPLE_RATE * 2 // 1000
        for i in range(0, len(pcm), step):
            yield TTSAudioRawFrame(pcm[i : i + step], SAMPLE_RATE, 1, context_id=context_id)


def build_app(args: argparse.Namespace, script: dict[str, Any]) -> FastAPI:
    app = FastAPI()

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.websocket("/media")
    async def media(websocket: WebSocket) -> None:
        await websocket.accept()
        start = None
        for _ in range(MAX_HANDSHAKE_MESSAGES):
            message = json.loads(await websocket.receive_text())
            if message.get("event") == "start":
                start = message["start"]
                break
        if start is None:
            await websocket.close(code=1002)
            return
        serializer = TwilioFrameSerializer(
            stream_sid=start["streamSid"],
            call_sid=start.get("callSid"),
            params=TwilioFrameSerializer.InputParams(auto_hang_up=False),
        )
        transport = FastAPIWebsocketTransport(
            websocket,
            FastAPIWebsocketParams(
                audio_in_enabled=True,
                audio_out_enabled=True,
                add_wav_header=False,
                serializer=serializer,
            ),
        )
        vad = args.vad == "silero"
        stages: list[FrameProcessor] = [transport.input()]
        if vad:
            params = VADParams(stop_secs=args.endpoint_ms / 1000)
            stages.append(VADProcessor(vad_analyzer=SileroVADAnalyzer(params=params)))
        stages += [
            FakeSTT(
                script["caller"],
                final_s=args.asr_final_ms / 1000,
                endpoint_ms=args.endpoint_ms,
                vad=vad,
            ),
            ScriptedBrain(script["replies"]),
            FakeTTS(args.tts_first_byte_ms / 1000),
            transport.output(),
        ]
        task = PipelineTask(
            Pipeline(stages),
            params=PipelineParams(
                audio_in_sample_rate=SAMPLE_RATE, audio_out_sample_rate=SAMPLE_RATE
            ),
        )

        @transport.event_handler("on_client_connected")
        async def on_connected(_transport: Any, _ws: Any) -> None:
            await task.queue_frames([TTSSpeakFrame(script["greeting"])])

        @transport.event_handler("on_client_disconnected")
        async def on_disconnected(_transport: Any, _ws: Any) -> None:
            await task.cancel()

        await PipelineRunner(handle_sigint=False).run(task)

    return app


async def serve(args: argparse.Namespace, script: dict[str, Any]) -> None:
    LoopLag().install()
    config = uvicorn.Config(
        build_app(args, script),
        host="127.0.0.1",
        port=args.port,
        log_level="warning",
        access_log=False,
        lifespan="off",
    )
    await uvicorn.Server(config).serve()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--script", required=True, help="JSON: greeting, replies, caller")
    parser.add_argument("--vad", choices=["none", "silero"], default="none")
    parser.add_argument("--endpoint-ms", type=float, default=700.0)
    parser.add_argument("--asr-final-ms", type=float, default=150.0)
    parser.add_argument("--tts-first-byte-ms", type=float, default=100.0)
    args = parser.parse_args()
    # Pipecat logs every frame processor's life at DEBUG by default; a production bot
    # runs at WARNING, and so does this one (trunkline's server too).
    logger.remove()
    logger.add(sys.stderr, level="WARNING")
    with open(args.script) as fh:
        script = json.load(fh)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(serve(args, script))


if __name__ == "__main__":
    main()

"""The one audio format that flows between legs and apps.

Every leg (SIP/RTP, WebSocket) delivers and accepts 20 ms frames of 16-bit signed
little-endian mono PCM at 8 kHz. Telephony is narrowband G.711, so converting anywhere
else would only cost CPU; wideband can be added as a second format when a leg needs it.
"""

from __future__ import annotations

SAMPLE_RATE = 8000
FRAME_MS = 20
FRAME_SAMPLES = SAMPLE_RATE * FRAME_MS // 1000  # 160
SAMPLE_WIDTH = 2
FRAME_BYTES = FRAME_SAMPLES * SAMPLE_WIDTH  # 320
FRAME_SECONDS = FRAME_MS / 1000

SILENCE_FRAME = bytes(FRAME_BYTES)


def split_frames(pcm: bytes) -> list[bytes]:
    """Cut PCM into whole 20 ms frames; a short tail is padded with silence."""
    frames = [pcm[i : i + FRAME_BYTES] for i in range(0, len(pcm), FRAME_BYTES)]
    if frames and len(frames[-1]) < FRAME_BYTES:
        frames[-1] = frames[-1] + bytes(FRAME_BYTES - len(frames[-1]))
    return frames

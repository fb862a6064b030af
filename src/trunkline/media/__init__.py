"""PCM frames, WAV I/O, tone generation and other audio helpers (no I/O besides files)."""

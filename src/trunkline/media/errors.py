"""Media errors, split by whose fault it was (the h11 pattern).

``WavError``: a WAV file is not one we can read (garbage, truncated, or an encoding we
do not carry); the message says which and where. ``MediaUsageError``: our own code
called a helper with arguments it does not accept (an odd-length PCM buffer, a digit
that is not DTMF, a rate of zero); that is a bug here, never the file's.
"""

from __future__ import annotations


class MediaError(Exception):
    """Base of every error the media package raises."""


class WavError(MediaError):
    """A WAV file we cannot read: not RIFF/WAVE, truncated, or an unsupported encoding."""


class MediaUsageError(MediaError, ValueError):
    """We called a media helper with arguments it does not accept (a bug on our side)."""

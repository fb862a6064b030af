"""The caller's-ear speech detector on espeak-ng speech, and the timeline helpers."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from trunkline.lab.impair import g711_round_trip
from trunkline.lab.noise import add_noise, pink_noise, white_noise
from trunkline.lab.speech import (
    DEAD_AIR_FRAMES,
    Segment,
    SpeechDetector,
    dead_air,
    first_onset_after,
    merge,
    speech_segments,
    talk_over,
)
from trunkline.media.audio import FRAME_MS, FRAME_SAMPLES
from trunkline.rtp.g711 import alaw_decode, ulaw_decode

from .espeak_clips import first_sound, needs_espeak, speech

RATE = 8000
Samples = npt.NDArray[np.int16]

# Phrases an agent says. The first ones start with a voiced sound; "Thanks" and "Hello"
# start with a weak unvoiced one (th, h) that noise can hide (see the noise tests).
VOICED = [
    "Good morning, how can I help you today?",
    "Your appointment is confirmed for Tuesday.",
    "One moment please.",
    "Sorry, I did not catch that.",
    "What is your account number?",
]
PHRASES = [*VOICED, "Hello, thank you for calling Acme.", "Please hold.", "Five"]
PADS_MS = (500, 507, 513)  # on, and off, the 20 ms frame grid


def padded(text: str, voice: str, pad_ms: int) -> tuple[Samples, float]:
    """``pad_ms`` of silence, the phrase, 1 s of silence; and the true onset in ms."""
    clip = speech(text, voice)
    x = np.concatenate((np.zeros(pad_ms * RATE // 1000, np.int16), clip, np.zeros(RATE, np.int16)))
    return x, pad_ms + first_sound(clip) * 1000 / RATE


def tone(ms: int, amplitude: float = 6000.0, freq: float = 440.0) -> Samples:
    n = ms * RATE // 1000
    return np.rint(amplitude * np.sin(2 * np.pi * freq * np.arange(n) / RATE)).astype(np.int16)


def silence(ms: int) -> Samples:
    return np.zeros(ms * RATE // 1000, np.int16)


# --- onsets on espeak-ng speech ------------------------------------------------------


@needs_espeak
@pytest.mark.parametrize("voice", ["en-us", "en-us+f2"])
@pytest.mark.parametrize("text", PHRASES)
def test_onset_in_quiet_is_within_a_frame_of_the_first_sound(text: str, voice: str) -> None:
    for pad_ms in PADS_MS:
        x, truth_ms = padded(text, voice, pad_ms)
        segments = speech_segments(x)
        assert len(segments) == 1
        error = segments[0].start_ms - truth_ms
        # The frame holding the first sound, or the next one when the sound starts in
        # the last few ms of its frame: within 20 ms either way.
        assert -FRAME_MS < error <= FRAME_MS, (pad_ms, error)


@needs_espeak
@pytest.mark.parametrize("codec", ["pcmu", "pcma"])
def test_onset_survives_g711(codec: str) -> None:
    for text in VOICED[:3]:
        x, truth_ms = padded(text, "en-us", 500)
        error = speech_segments(g711_round_trip(x, codec))[0].start_ms - truth_ms
        assert -FRAME_MS < error <= FRAME_MS


@needs_espeak
@pytest.mark.parametrize("voice", ["en-us", "en-us+f2"])
@pytest.mark.parametrize("text", VOICED)
def test_onset_in_white_noise_at_20_db_snr(text: str, voice: str) -> None:
    for pad_ms in (500, 513):
        x, truth_ms = padded(text, voice, pad_ms)
        for seed in (0, 1):
            noisy = add_noise(x, "white", 20.0, np.random.default_rng(seed)).samples
            segments = speech_segments(noisy)
            assert len(segments) == 1, (pad_ms, seed, segments)
            error = segments[0].start_ms - truth_ms
            # The frame holding the first sound, or the next one: within 20 ms.
            assert -FRAME_MS < error <= FRAME_MS, (pad_ms, seed, error)


@needs_espeak
def test_a_weak_unvoiced_onset_is_found_late_in_noise_never_early() -> None:
    # The "th" of "Thanks" is about 20 dB below the vowel: at 20 dB SNR it is under the
    # noise, and the onset is the vowel's (measured: 80-90 ms after the first sound).
    x, truth_ms = padded("Thanks for calling, goodbye.", "en-us", 500)
    assert speech_segments(x)[0].start_ms <= truth_ms  # in quiet: the first sound
    noisy = add_noise(x, "white", 20.0, np.random.default_rng(0)).samples
    error = speech_segments(noisy)[0].start_ms - truth_ms
    assert 0 < error <= 120


@needs_espeak
def test_speech_from_the_first_frame() -> None:
    clip = speech("Your appointment is confirmed.")
    assert first_sound(clip) < FRAME_SAMPLES
    assert speech_segments(clip)[0].start == 0


# --- what must stay silent -----------------------------------------------------------


def _from_codes(code: int, n: int, decode: object) -> Samples:
    return np.frombuffer(decode(bytes([code]) * n), "<i2").astype(np.int16)  # type: ignore[operator]


@pytest.mark.parametrize(
    "make",
    [
        lambda: np.zeros(10 * RATE, np.int16),
        lambda: _from_codes(0xD5, 10 * RATE, alaw_decode),  # A-law idle: +-8
        lambda: _from_codes(0xFF, 10 * RATE, ulaw_decode),  # u-law idle: 0
        # comfort noise at -50 dBov, line hiss at -40 dBov, pink rumble at -40 dBov
        lambda: np.rint(
            white_noise(10 * RATE, np.random.default_rng(1)) * 32768 * 10 ** (-50 / 20)
        ).astype(np.int16),
        lambda: np.rint(
            white_noise(10 * RATE, np.random.default_rng(2)) * 32768 * 10 ** (-40 / 20)
        ).astype(np.int16),
        lambda: np.rint(
            pink_noise(10 * RATE, np.random.default_rng(3)) * 32768 * 10 ** (-40 / 20)
        ).astype(np.int16),
    ],
)
def test_quiet_lines_have_no_speech(make: object) -> None:
    assert speech_segments(make()) == []  # type: ignore[operator]


# --- segments and hangover -----------------------------------------------------------


def test_short_pauses_stay_inside_a_segment_long_ones_split_it() -> None:
    x = np.concatenate((silence(400), tone(1000), silence(160), tone(1000), silence(1000)))
    assert speech_segments(x) == [Segment(20, 20 + 50 + 8 + 50)]
    y = np.concatenate((silence(400), tone(1000), silence(600), tone(1000), silence(1000)))
    assert speech_segments(y) == [Segment(20, 70), Segment(100, 150)]


def test_a_click_is_not_speech() -> None:
    x = np.concatenate((silence(400), tone(20, 20000.0), silence(1000)))
    assert speech_segments(x) == []


def test_an_unfinished_segment_closes_at_the_end() -> None:
    x = np.concatenate((silence(200), tone(500)))
    assert speech_segments(x) == [Segment(10, 35)]


def test_streaming_matches_batch_and_takes_bytes() -> None:
    x = np.concatenate((silence(300), tone(700), silence(800), tone(300), silence(100)))
    detector = SpeechDetector()
    onsets = []
    for start in range(0, len(x), FRAME_SAMPLES):
        onset = detector.push(x[start : start + FRAME_SAMPLES].astype("<i2").tobytes())
        if onset is not None:
            onsets.append(onset)
    segments = detector.finish()
    assert segments == speech_segments(x)
    assert onsets == [s.start for s in segments]
    assert SpeechDetector().push(b"\x01") is None  # a stray odd byte is no sample


@settings(max_examples=60, deadline=None)
@given(hnp.arrays(np.int16, st.integers(0, 4000)))
def test_detector_never_fails(x: Samples) -> None:
    segments = speech_segments(x)
    frames = -(-len(x) // FRAME_SAMPLES)
    for seg in segments:
        assert 0 <= seg.start < seg.end <= frames
    for a, b in zip(segments, segments[1:], strict=False):
        assert a.end <= b.start


# --- timeline helpers ----------------------------------------------------------------


def test_segment_checks_and_units() -> None:
    seg = Segment(5, 10)
    assert (seg.frames, seg.start_ms, seg.end_ms) == (5, 100, 200)
    for bad in ((-1, 3), (4, 3)):
        with pytest.raises(ValueError):
            Segment(*bad)


def test_first_onset_after() -> None:
    segments = [Segment(50, 80), Segment(10, 20), Segment(100, 100)]
    assert first_onset_after(segments, 0) == 10
    assert first_onset_after(segments, 11) == 50
    assert first_onset_after(segments, 51) is None  # empty segments are not speech
    assert first_onset_after([], 0) is None


def test_merge() -> None:
    assert merge(
        [Segment(5, 9), Segment(0, 3), Segment(3, 4), Segment(8, 12), Segment(20, 20)]
    ) == [
        Segment(0, 4),
        Segment(5, 12),
    ]


def test_talk_over() -> None:
    agent = [Segment(0, 100), Segment(150, 200)]
    caller = [Segment(90, 160), Segment(300, 310)]
    assert talk_over(agent, caller) == [Segment(90, 100), Segment(150, 160)]
    assert talk_over(caller, agent) == talk_over(agent, caller)
    assert talk_over(agent, []) == []


def test_dead_air() -> None:
    agent = [Segment(0, 100), Segment(400, 450), Segment(470, 500)]
    # 300 frames of silence between the agent's first two segments: dead air.
    assert dead_air(agent) == [Segment(100, 400)]
    # The caller spoke until 350: the wait on the agent is 50 frames, not dead air.
    assert dead_air(agent, [Segment(120, 350)]) == []
    assert dead_air(agent, [Segment(120, 250)]) == [Segment(250, 400)]
    # After the agent's last words, until the call ended.
    assert dead_air(agent, end=700) == [Segment(100, 400), Segment(500, 700)]
    assert dead_air(agent, end=550) == [Segment(100, 400)]
    assert dead_air([Segment(0, 10), Segment(10 + DEAD_AIR_FRAMES - 1, 200)]) == []
    assert dead_air(agent, min_frames=10) == [Segment(100, 400), Segment(450, 470)]
    assert dead_air([], end=1000) == []  # before the first words: time to first word
    with pytest.raises(ValueError):
        dead_air(agent, min_frames=0)


segment_lists = st.lists(
    st.tuples(st.integers(0, 500), st.integers(0, 100)).map(lambda t: Segment(t[0], t[0] + t[1])),
    max_size=12,
)


@settings(max_examples=200, deadline=None)
@given(segment_lists, segment_lists, st.integers(1, 200), st.one_of(st.none(), st.integers(0, 800)))
def test_timeline_helpers_on_any_segments(
    a: list[Segment], b: list[Segment], min_frames: int, end: int | None
) -> None:
    both = talk_over(a, b)
    assert both == talk_over(b, a)
    covered_a = {f for s in a for f in range(s.start, s.end)}
    covered_b = {f for s in b for f in range(s.start, s.end)}
    assert {f for s in both for f in range(s.start, s.end)} == covered_a & covered_b
    merged = merge(a)
    assert {f for s in merged for f in range(s.start, s.end)} == covered_a
    for gap in dead_air(a, b, min_frames=min_frames, end=end):
        assert gap.frames >= min_frames
        assert not covered_a & set(range(gap.start, gap.end))
        assert not covered_b & set(range(gap.start, gap.end))
    onset = first_onset_after(a, 100)
    assert onset is None or onset >= 100


@settings(max_examples=100, deadline=None)
@given(st.lists(st.binary(max_size=400), max_size=30))
def test_detector_takes_any_bytes(frames: list[bytes]) -> None:
    detector = SpeechDetector()
    for frame in frames:
        onset = detector.push(frame)
        assert onset is None or 0 <= onset < detector.frames
    for seg in detector.finish():
        assert 0 <= seg.start < seg.end <= len(frames)

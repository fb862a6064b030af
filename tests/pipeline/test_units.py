"""Unit tests of the pipeline's sans-IO parts: frame tiers, processors, VAD, endpointing, DTMF."""

from __future__ import annotations

import struct
import subprocess

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trunkline.agent.spec import DtmfSpec
from trunkline.media.audio import split_frames
from trunkline.media.tones import silence, sine, white_noise
from trunkline.media.wav import decode_wav
from trunkline.net.leg import Dtmf, Hangup, MarkReached
from trunkline.pipeline.dtmf import DigitCollector
from trunkline.pipeline.endpointing import NEVER, Endpoint, Endpointer, frames_for
from trunkline.pipeline.frames import (
    Cancel,
    Frame,
    Interrupt,
    SpeechStarted,
    SpeechStopped,
    Tier,
    TieredQueue,
    tier_of,
)
from trunkline.pipeline.processor import Pipeline, Processor
from trunkline.pipeline.vad import MIN_DBFS, Hysteresis, VadProcessor, energy_floor

# --- frames and processors -------------------------------------------------------------------


def test_tiers() -> None:
    assert tier_of(b"\0" * 320) is Tier.DATA
    assert tier_of(Dtmf("1")) is Tier.DATA
    assert tier_of(SpeechStarted(3)) is Tier.CONTROL
    assert tier_of(MarkReached("m")) is Tier.CONTROL
    assert tier_of(Hangup("bye", "remote")) is Tier.SYSTEM
    assert tier_of(Interrupt()) is Tier.SYSTEM
    assert tier_of(object()) is Tier.CONTROL


async def test_system_frames_overtake_and_the_rest_keep_order() -> None:
    queue: TieredQueue[object] = TieredQueue()
    items: list[object] = [b"a", SpeechStarted(1), Cancel("x"), b"b", Interrupt(), Dtmf("5")]
    for item in items:
        queue.put(item)
    assert len(queue) == 6
    got = [await queue.get() for _ in range(6)]
    assert got == [Cancel("x"), Interrupt(), b"a", SpeechStarted(1), b"b", Dtmf("5")]
    assert queue.get_nowait() is None


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from(["d", "c", "s"]), max_size=30))
def test_tier_order_property(kinds: list[str]) -> None:
    make = {"d": lambda i: bytes([i]), "c": SpeechStarted, "s": lambda i: Cancel(str(i))}
    queue: TieredQueue[object] = TieredQueue()
    for i, kind in enumerate(kinds):
        queue.put(make[kind](i))
    out = []
    while (item := queue.get_nowait()) is not None:
        out.append(item)
    system = [x for x in out if isinstance(x, Cancel)]
    rest = [x for x in out if not isinstance(x, Cancel)]
    assert out == system + rest  # every system item first...
    assert [int(c.reason) for c in system] == sorted(int(c.reason) for c in system)

    def index(x: object) -> int:
        return x[0] if isinstance(x, bytes) else x.frame  # type: ignore[attr-defined,no-any-return]

    assert [index(x) for x in rest] == sorted(index(x) for x in rest)  # ...the rest in order


async def test_drop_ordered_keeps_system_items() -> None:
    queue: TieredQueue[object] = TieredQueue()
    queue.put(b"a")
    queue.put(Cancel("c"))
    queue.put(b"b")
    assert queue.drop_ordered() == [b"a", b"b"]
    assert await queue.get() == Cancel("c")
    assert len(queue) == 0


class Tag(Processor):
    def __init__(self, name: str, seen: list[str]) -> None:
        super().__init__()
        self.name = name
        self.seen = seen

    def process_frame(self, frame: Frame) -> None:
        self.seen.append(f"{self.name}:{frame!r}")
        self.push(frame)


def test_pipeline_chains_processors_by_direct_calls() -> None:
    seen: list[str] = []
    pipeline = Pipeline(Tag("a", seen), Tag("b", seen))
    pipeline.on_audio(b"x")
    pipeline.on_event(Dtmf("1"))
    assert seen == ["a:b'x'", "b:b'x'", "a:Dtmf(digit='1', duration_ms=0)",
                    "b:Dtmf(digit='1', duration_ms=0)"]  # fmt: skip


def test_pipeline_survives_a_failing_processor() -> None:
    class Broken(Processor):
        def process_frame(self, frame: Frame) -> None:
            raise RuntimeError("bug")

    errors: list[Exception] = []
    pipeline = Pipeline(Broken(), on_error=errors.append)
    pipeline.on_audio(b"x")
    pipeline.on_event(Dtmf("1"))
    assert pipeline.errors == 2 and len(errors) == 2


# --- VAD ---------------------------------------------------------------------------------------


def test_hysteresis_needs_three_voiced_frames_and_reports_the_last_voiced_one() -> None:
    h = Hysteresis(start_frames=3, stop_frames=4)
    pattern = "0110111" + "0001" + "0000" + "1"
    events = [h.update(c == "1", i) for i, c in enumerate(pattern, start=1)]
    changes = [(i, e) for i, e in enumerate(events, start=1) if e is not None]
    # 11 then a gap: no start; 111 confirms at frame 7; a 3-frame gap is a pause, not a
    # stop; four unvoiced frames (12..15) stop, reporting frame 11, the last voiced one.
    assert changes == [(7, SpeechStarted(7)), (15, SpeechStopped(11))]
    assert not h.speaking


@settings(max_examples=60, deadline=None)
@given(st.lists(st.booleans(), max_size=80))
def test_hysteresis_alternates_start_and_stop(verdicts: list[bool]) -> None:
    h = Hysteresis()
    kinds = [type(e) for i, v in enumerate(verdicts) if (e := h.update(v, i)) is not None]
    assert all(a is not b for a, b in zip(kinds, kinds[1:], strict=False))
    if kinds:
        assert kinds[0] is SpeechStarted


def run_vad(vad: VadProcessor, pcm: bytes) -> list[Frame]:
    out: list[Frame] = []

    class Sink(Processor):
        def process_frame(self, frame: Frame) -> None:
            if not isinstance(frame, bytes):
                out.append(frame)

    vad.link(Sink())
    for frame in split_frames(pcm):
        vad.process_frame(frame)
    return out


def test_vad_on_tone_silence_and_noise() -> None:
    vad = VadProcessor(2)
    # Silence, then quiet line noise (-51 dBFS, under the energy gate): no speech.
    assert run_vad(vad, silence(500) + white_noise(1000, 0.003, 7)) == []
    # A loud tone reads as voiced to webrtcvad: speech confirmed on its third frame.
    events = run_vad(vad, sine(440, 400, 0.3) + silence(600))
    assert events == [SpeechStarted(78), SpeechStopped(95)]
    assert vad.frame == 75 + 20 + 30


def test_vad_on_real_speech() -> None:
    wav = subprocess.run(
        ["espeak-ng", "--stdout", "order status"], capture_output=True, check=True
    ).stdout
    vad = VadProcessor(2)
    events = run_vad(vad, silence(400) + decode_wav(wav) + silence(800))
    assert [type(e) for e in events] == [SpeechStarted, SpeechStopped]
    assert 20 < events[0].frame < 30  # type: ignore[union-attr]


def test_vad_ignores_odd_sized_frames() -> None:
    assert not VadProcessor(2).voiced(b"\x10\x20" * 100)


def _frame(peak: int, *, at: int = 0, rest: int = 0) -> bytes:
    """A frame of ``rest`` everywhere but sample ``at``, which is ``peak``."""
    samples = [rest] * 160
    samples[at] = peak
    return struct.pack("<160h", *samples)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(-32768, 32767), min_size=160, max_size=160))
def test_vad_energy_gate_byte_test_agrees_with_the_energy_sum(samples: list[int]) -> None:
    # classify says "speech" to everything: the verdict is then the gate's alone.
    gate = VadProcessor(classify=lambda _pcm: True)
    pcm = struct.pack("<160h", *samples)
    loud = sum(x * x for x in samples) >= energy_floor(MIN_DBFS)
    assert gate.voiced(pcm) == loud
    small = [max(-128, min(127, x // 256)) for x in samples]  # within ±128: always quiet
    assert not gate.voiced(struct.pack("<160h", *small))


def test_vad_energy_gate_edges() -> None:
    gate = VadProcessor(classify=lambda _pcm: True)
    assert not gate.voiced(_frame(-128, rest=127))  # the byte test's edge: quiet
    assert not gate.voiced(_frame(129, rest=127))  # not the byte test's, under the floor
    assert gate.voiced(_frame(0, rest=200))  # -44.3 dBFS: over the -45 dBFS floor
    # A floor under -48 dBFS: frames within ±128 can be loud enough, so the energy decides.
    low = VadProcessor(classify=lambda _pcm: True, min_dbfs=-50.0)
    assert low.voiced(_frame(120, rest=120))  # -48.7 dBFS
    assert not low.voiced(_frame(0, rest=90))  # -51.2 dBFS


def test_vad_mode_is_checked() -> None:
    with pytest.raises(ValueError):
        VadProcessor(4)


# --- endpointing -------------------------------------------------------------------------------


def test_silence_endpoint_counts_from_the_last_voiced_frame() -> None:
    ep = Endpointer(silence_ms=700)  # 35 frames
    assert ep.speech_started(10)
    ep.speech_stopped(40)
    assert ep.deadline == 75
    assert ep.poll(74) is None
    assert ep.poll(75) is Endpoint.SILENCE
    assert not ep.in_utterance and ep.deadline == NEVER


def test_a_pause_shorter_than_the_silence_continues_the_utterance() -> None:
    ep = Endpointer(silence_ms=700)
    assert ep.speech_started(10)
    ep.speech_stopped(40)
    assert not ep.speech_started(60)  # same utterance
    ep.speech_stopped(80)
    assert ep.poll(114) is None
    assert ep.poll(115) is Endpoint.SILENCE


def test_no_input_fires_only_while_idle() -> None:
    ep = Endpointer()
    ep.arm_no_input(100, 6000)  # 300 frames
    assert ep.deadline == 400 and ep.no_input_armed
    assert ep.poll(399) is None
    assert ep.poll(400) is Endpoint.NO_INPUT
    ep.arm_no_input(500, 6000)
    ep.speech_started(510)  # speech disarms it
    assert not ep.no_input_armed
    ep.speech_stopped(520)
    assert ep.poll(800) is Endpoint.SILENCE
    assert ep.poll(10_000) is None


def test_max_utterance_length() -> None:
    ep = Endpointer(max_utterance_ms=1000)
    ep.speech_started(1)
    assert ep.poll(50) is None
    assert ep.poll(51) is Endpoint.MAX_LENGTH


def test_early_endpoint_reports_the_saving() -> None:
    ep = Endpointer(silence_ms=1000)  # 50 frames
    ep.speech_started(10)
    ep.speech_stopped(40)  # the silence endpoint would be frame 90
    assert ep.end_early(52) == 38
    assert not ep.in_utterance
    ep.speech_started(100)
    assert ep.end_early(120) == 50  # still talking: at least the whole silence
    assert ep.end_early(130) == 0


def test_shorten_and_configure() -> None:
    ep = Endpointer(silence_ms=1000)
    ep.speech_started(10)
    ep.speech_stopped(40)
    ep.shorten(300)
    assert ep.deadline == 55
    ep.configure(200)  # for the next utterance
    assert ep.deadline == 55
    assert ep.poll(55) is Endpoint.SILENCE
    ep.speech_started(100)
    ep.speech_stopped(110)
    assert ep.deadline == 120
    assert frames_for(1) == 1 and frames_for(20) == 1 and frames_for(21) == 2


# --- DTMF --------------------------------------------------------------------------------------


def test_digits_end_on_terminator_max_digits_or_timeout() -> None:
    c = DigitCollector(DtmfSpec(max_digits=4, terminator="#", timeout_ms=1000))
    assert c.press("1", 10) is None and c.press("2", 12) is None
    assert c.active and c.deadline == 62
    assert c.press("#", 20) == "12"
    assert not c.active and c.deadline == NEVER
    assert [c.press(d, 30) for d in "1234"] == [None, None, None, "1234"]
    assert c.press("9", 40) is None
    assert c.poll(89) is None
    assert c.poll(90) == "9"
    assert c.poll(200) is None
    assert c.press("#", 300) == "#"  # a lone terminator is delivered for the brain to judge
    assert c.press("x", 300) is None and not c.active  # not a DTMF key


def test_without_a_spec_each_key_is_an_entry() -> None:
    c = DigitCollector()
    assert c.press("0", 1) == "0"
    c.configure(DtmfSpec(2, None, 500))
    assert c.press("1", 1) is None
    assert c.press("2", 2) == "12"

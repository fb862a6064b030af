"""Audio impairments: P.56 level, noise at an SNR, level, G.711, drift, and Impairments."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from trunkline.lab.drift import MAX_DRIFT_PPM, drift
from trunkline.lab.impair import Impairments, change_level, g711_round_trip
from trunkline.lab.netem import PacketScheduler
from trunkline.lab.noise import (
    NOMINAL_SPEECH_DBOV,
    add_noise,
    babble_noise,
    noise_kind,
    pink_noise,
    white_noise,
)
from trunkline.lab.p56 import active_speech_level, dbov
from trunkline.rtp.g711 import alaw_decode, alaw_encode, ulaw_decode, ulaw_encode

from .espeak_clips import needs_espeak, speech

RATE = 8000
Samples = npt.NDArray[np.int16]

int16_arrays = hnp.arrays(np.int16, st.integers(0, 3000))


def sine(freq: float, seconds: float, amplitude: float) -> npt.NDArray[np.float64]:
    return amplitude * np.sin(2 * np.pi * freq * np.arange(int(seconds * RATE)) / RATE)


def bursts(amplitude: float = 8000.0) -> tuple[Samples, npt.NDArray[np.bool_]]:
    """Speech-like test signal: 2 s bursts of a 440 Hz sine, 2 s apart; the active mask."""
    on = sine(440.0, 2.0, amplitude)
    off = np.zeros(2 * RATE)
    x = np.concatenate([on, off, on, off, on])
    mask = np.concatenate(
        [np.ones(len(on), bool), np.zeros(len(off), bool)] * 2 + [np.ones(len(on), bool)]
    )
    return np.rint(x).astype(np.int16), mask


# --- P.56 active speech level ----------------------------------------------------------


def test_level_of_a_continuous_sine_is_its_rms() -> None:
    x = np.rint(sine(1000.0, 3.0, 10000.0)).astype(np.int16)
    level = active_speech_level(x)
    assert level is not None
    assert level.level_dbov == pytest.approx(dbov(float(np.mean(x.astype(float) ** 2))), abs=0.1)
    assert level.activity > 0.99


def test_level_ignores_pauses() -> None:
    x, mask = bursts()
    level = active_speech_level(x)
    assert level is not None
    true_active = dbov(float(np.mean(x[mask].astype(float) ** 2)))
    plain_rms = dbov(float(np.mean(x.astype(float) ** 2)))
    assert level.level_dbov == pytest.approx(true_active, abs=0.5)
    assert plain_rms < true_active - 1.5  # so the test tells the two apart
    assert level.activity == pytest.approx(mask.mean(), abs=0.1)


def test_level_follows_gain() -> None:
    x, _ = bursts(4000.0)
    louder = (x.astype(np.int32) * 2).astype(np.int16)
    a, b = active_speech_level(x), active_speech_level(louder)
    assert a is not None and b is not None
    assert b.level_dbov - a.level_dbov == pytest.approx(20 * math.log10(2), abs=0.05)


@needs_espeak
def test_level_of_espeak_speech_is_plausible() -> None:
    level = active_speech_level(speech("Thank you for calling. How can I help you today?"))
    assert level is not None
    assert -35.0 < level.level_dbov < -10.0
    assert 0.3 < level.activity < 1.0


def test_level_of_nothing_is_none() -> None:
    assert active_speech_level(np.zeros(0, np.int16)) is None
    assert active_speech_level(np.zeros(8000, np.int16)) is None


@settings(max_examples=60, deadline=None)
@given(int16_arrays)
def test_level_never_fails(x: Samples) -> None:
    level = active_speech_level(x)
    if level is not None:
        assert math.isfinite(level.level_dbov)
        assert 0.0 < level.activity <= 1.0


# --- noise ---------------------------------------------------------------------------


def _achieved_snr(clean: Samples, noisy: Samples, mask: npt.NDArray[np.bool_]) -> float:
    """SNR measured independently: known active part of the speech over the added noise."""
    added = noisy.astype(float) - clean.astype(float)
    speech_power = float(np.mean(clean[mask].astype(float) ** 2))
    return 10 * math.log10(speech_power / float(np.mean(added**2)))


@pytest.mark.parametrize("kind", ["white", "pink", "babble"])
@pytest.mark.parametrize("snr", [0.0, 10.0, 20.0, 35.0])
def test_noise_reaches_the_target_snr(kind: str, snr: float) -> None:
    clean, mask = bursts()
    clips = [
        np.rint(sine(f, 1.3, 5000.0) * (1 + np.sin(np.arange(10400) / 300))).astype(np.int16)
        for f in (180.0, 230.0, 310.0)
    ]
    result = add_noise(clean, kind, snr, np.random.default_rng(1), babble=clips)
    assert result.clipped == 0
    assert _achieved_snr(clean, result.samples, mask) == pytest.approx(snr, abs=0.5)


@needs_espeak
@pytest.mark.parametrize("kind", ["white", "pink"])
def test_noise_snr_on_speech_is_against_its_p56_level(kind: str) -> None:
    clean = speech("Your order ships tomorrow. Is there anything else?")
    level = active_speech_level(clean)
    assert level is not None
    result = add_noise(clean, kind, 20.0, np.random.default_rng(5))
    added = result.samples.astype(float) - clean.astype(float)
    assert level.level_dbov - dbov(float(np.mean(added**2))) == pytest.approx(20.0, abs=0.5)


def _psd(
    x: npt.NDArray[np.float64], n: int = 1024
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Welch's averaged periodogram (Hann window, no overlap)."""
    segments = x[: len(x) // n * n].reshape(-1, n) * np.hanning(n)
    power = np.mean(np.abs(np.fft.rfft(segments, axis=1)) ** 2, axis=0)
    return np.fft.rfftfreq(n, 1 / RATE), power


def _slope_db_per_octave(x: npt.NDArray[np.float64]) -> float:
    freqs, power = _psd(x)
    band = (freqs >= 100) & (freqs <= 3500)
    slope, _ = np.polyfit(np.log2(freqs[band]), 10 * np.log10(power[band]), 1)
    return float(slope)


def test_pink_noise_falls_3_db_per_octave() -> None:
    x = pink_noise(1 << 18, np.random.default_rng(3))
    assert _slope_db_per_octave(x) == pytest.approx(-10 * math.log10(2), abs=0.3)
    assert float(np.mean(x * x)) == pytest.approx(1.0)


def test_white_noise_is_flat() -> None:
    x = white_noise(1 << 18, np.random.default_rng(3))
    assert _slope_db_per_octave(x) == pytest.approx(0.0, abs=0.3)


def test_noise_is_replayable_per_seed() -> None:
    clean, _ = bursts()
    for kind in ("white", "pink"):
        a = add_noise(clean, kind, 10.0, np.random.default_rng(7)).samples
        b = add_noise(clean, kind, 10.0, np.random.default_rng(7)).samples
        c = add_noise(clean, kind, 10.0, np.random.default_rng(8)).samples
        assert np.array_equal(a, b)
        assert not np.array_equal(a, c)


@needs_espeak
def test_babble_overlaps_several_talkers() -> None:
    clips = [
        speech(t, v)
        for t, v in (
            ("Where is my order", "en-us"),
            ("I need a refund", "en-us+f2"),
            ("Can you hear me", "en-gb"),
        )
    ]
    n = 4 * RATE
    one = babble_noise(n, clips[:1], np.random.default_rng(2))
    three = babble_noise(n, clips, np.random.default_rng(2))
    assert float(np.mean(three**2)) == pytest.approx(1.0)

    # Three talkers fill the pauses one talker leaves: fewer quiet 20 ms frames.
    def quiet_frames(x: npt.NDArray[np.float64]) -> int:
        frames = x[: len(x) // 160 * 160].reshape(-1, 160)
        return int(np.count_nonzero(np.mean(frames**2, axis=1) < 0.01))

    assert quiet_frames(three) < quiet_frames(one)
    assert np.array_equal(three, babble_noise(n, clips, np.random.default_rng(2)))


def test_babble_needs_speech() -> None:
    with pytest.raises(ValueError, match="babble"):
        babble_noise(100, [np.zeros(50, np.int16)], np.random.default_rng(0))
    with pytest.raises(ValueError, match="babble"):
        add_noise(np.zeros(100, np.int16), "babble", 10.0, np.random.default_rng(0))


def test_silent_speech_gets_noise_at_the_nominal_level() -> None:
    result = add_noise(np.zeros(RATE, np.int16), "white", 20.0, np.random.default_rng(0))
    assert result.speech_level is None
    measured = dbov(float(np.mean(result.samples.astype(float) ** 2)))
    assert measured == pytest.approx(NOMINAL_SPEECH_DBOV - 20.0, abs=0.2)


def test_reference_level_overrides_the_measurement() -> None:
    clean, _ = bursts()
    result = add_noise(clean, "white", 10.0, np.random.default_rng(0), reference_dbov=-40.0)
    added = result.samples.astype(float) - clean.astype(float)
    assert dbov(float(np.mean(added**2))) == pytest.approx(-50.0, abs=0.3)


def test_clipping_is_counted() -> None:
    loud = np.rint(sine(300.0, 1.0, 32000.0)).astype(np.int16)
    result = add_noise(loud, "white", 0.0, np.random.default_rng(0))
    assert result.clipped > 0
    assert result.samples.dtype == np.int16


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"kind": "brown", "snr_db": 10.0}, "noise kind"),
        ({"kind": "white", "snr_db": 81.0}, "snr_db"),
        ({"kind": "white", "snr_db": math.nan}, "snr_db"),
        ({"kind": "white", "snr_db": 10.0, "reference_dbov": 20.0}, "reference_dbov"),
    ],
)
def test_noise_refuses_bad_parameters(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        add_noise(np.zeros(10, np.int16), rng=np.random.default_rng(0), **kwargs)  # type: ignore[arg-type]


def test_noise_kind_and_counts_are_checked() -> None:
    assert noise_kind("pink") == "pink"
    with pytest.raises(ValueError):
        noise_kind("grey")
    with pytest.raises(ValueError):
        white_noise(-1, np.random.default_rng(0))


@settings(max_examples=60, deadline=None)
@given(
    int16_arrays, st.sampled_from(["white", "pink"]), st.floats(-20.0, 80.0), st.integers(0, 2**32)
)
def test_noise_never_fails(x: Samples, kind: str, snr: float, seed: int) -> None:
    result = add_noise(x, kind, snr, np.random.default_rng(seed))
    assert result.samples.dtype == np.int16 and len(result.samples) == len(x)
    assert 0 <= result.clipped <= len(x)


# --- level, G.711, drift -------------------------------------------------------------


def test_level_change_scales_and_counts_clips() -> None:
    x = np.array([20000, -20000, 100, -3], np.int16)
    result = change_level(x, 20 * math.log10(2))
    assert result.samples.tolist() == [32767, -32768, 200, -6]
    assert result.clipped == 2
    quieter = change_level(x, -20.0)
    assert quieter.samples.tolist() == [2000, -2000, 10, 0] and quieter.clipped == 0
    with pytest.raises(ValueError, match="level change"):
        change_level(x, 31.0)
    with pytest.raises(ValueError, match="level change"):
        change_level(x, math.nan)


@pytest.mark.parametrize(
    ("codec", "encode", "decode"),
    [("pcmu", ulaw_encode, ulaw_decode), ("pcma", alaw_encode, alaw_decode)],
)
def test_g711_round_trip_is_the_codecs_quantisation(
    codec: str, encode: object, decode: object
) -> None:
    x = np.rint(sine(700.0, 0.5, 12000.0)).astype(np.int16)
    out = g711_round_trip(x, codec)
    expected = decode(encode(x.astype("<i2").tobytes()))  # type: ignore[operator]
    assert out.tobytes() == expected
    assert np.array_equal(g711_round_trip(out, codec), out)  # a second pass changes nothing
    error = out.astype(float) - x.astype(float)
    assert 10 * math.log10(np.mean(x.astype(float) ** 2) / np.mean(error**2)) > 30.0


def test_g711_refuses_an_unknown_codec() -> None:
    with pytest.raises(ValueError, match="codec"):
        g711_round_trip(np.zeros(4, np.int16), "g729")


@pytest.mark.parametrize("ppm", [100.0, -100.0, 1000.0, -1000.0, 37.3])
def test_drift_changes_length_by_the_ppm(ppm: float) -> None:
    x = np.rint(sine(1000.0, 10.0, 8000.0)).astype(np.int16)
    out = drift(x, ppm)
    assert len(out) == round(len(x) * (1 + ppm * 1e-6))
    if ppm == 100.0:
        assert len(out) == 80_008  # 10 s at 100 ppm: 8 samples more


@pytest.mark.parametrize("freq", [300.0, 1000.0, 3400.0])
def test_drift_resamples_the_waveform(freq: float) -> None:
    ppm = 500.0
    x = np.rint(sine(freq, 2.0, 8000.0)).astype(np.int16)
    out = drift(x, ppm).astype(float)
    k = np.arange(len(out))
    expected = 8000.0 * np.sin(2 * np.pi * freq * k / (1 + ppm * 1e-6) / RATE)
    inner = slice(200, -200)  # away from the zero-padded edges
    error = out[inner] - expected[inner]
    assert 10 * math.log10(np.mean(expected[inner] ** 2) / np.mean(error**2)) > 55.0


def test_drift_edge_cases() -> None:
    x = np.arange(-50, 50, dtype=np.int16)
    assert np.array_equal(drift(x, 0.0), x)
    assert len(drift(np.zeros(0, np.int16), 500.0)) == 0
    assert len(drift(np.array([1000], np.int16), -1000.0)) == 1
    for bad in (MAX_DRIFT_PPM + 1, -MAX_DRIFT_PPM - 1, math.nan):
        with pytest.raises(ValueError, match="drift"):
            drift(x, bad)


@settings(max_examples=60, deadline=None)
@given(int16_arrays, st.floats(-MAX_DRIFT_PPM, MAX_DRIFT_PPM))
def test_drift_never_fails(x: Samples, ppm: float) -> None:
    out = drift(x, ppm)
    assert out.dtype == np.int16
    assert len(out) == (len(x) if ppm == 0 else round(len(x) * (1 + ppm * 1e-6)))


# --- Impairments ---------------------------------------------------------------------


@dataclass(frozen=True)
class Noise:
    kind: str
    snr_db: float


@dataclass(frozen=True)
class Loss:
    model: str
    percent: float = 0.0
    p: float = 0.0
    r: float = 1.0
    h: float = 0.0
    k: float = 1.0


@dataclass(frozen=True)
class Jitter:
    ms: float
    reorder_pct: float = 0.0


@dataclass(frozen=True)
class Spec:
    noise: Noise | None = None
    loss: Loss | None = None
    jitter: Jitter | None = None
    drift_ppm: float | None = None
    level_db: float | None = None
    codec: str | None = None


FULL = Spec(
    noise=Noise("pink", 15.0),
    loss=Loss("gilbert_elliott", p=0.02, r=0.4),
    jitter=Jitter(30.0, 1.0),
    drift_ppm=50.0,
    level_db=-6.0,
    codec="pcma",
)


def test_a_clean_spec_leaves_audio_alone() -> None:
    x, _ = bursts()
    out = Impairments.from_spec(Spec(), seed=1).audio(x)
    assert np.array_equal(out.samples, x) and out.clipped == 0


def test_full_spec_applies_every_stage() -> None:
    x, mask = bursts()
    out = Impairments.from_spec(FULL, seed=1).audio(x).samples
    assert len(out) == round(len(x) * (1 + 50e-6))
    assert np.array_equal(g711_round_trip(out, "pcma"), out)  # A-law values only
    level = active_speech_level(out)
    clean = active_speech_level(x)
    assert level is not None and clean is not None
    assert level.level_dbov == pytest.approx(clean.level_dbov - 6.0, abs=0.5)


def test_audio_replays_per_utterance() -> None:
    x, _ = bursts()
    a = Impairments.from_spec(FULL, seed=9)
    b = Impairments.from_spec(FULL, seed=9)
    first, second = a.audio(x).samples, a.audio(x).samples
    assert not np.array_equal(first, second)  # each utterance gets its own noise
    assert np.array_equal(b.audio(x, utterance=1).samples, second)  # whatever came before
    assert np.array_equal(b.audio(x, utterance=0).samples, first)
    other = Impairments.from_spec(FULL, seed=10).audio(x, utterance=0).samples
    assert not np.array_equal(other, first)


def test_schedulers_replay_per_seed_and_stream() -> None:
    imp = Impairments.from_spec(FULL, seed=4)
    packets = [(i * 0.02, i) for i in range(500)]
    s1: PacketScheduler[int] = imp.scheduler()
    s2: PacketScheduler[int] = Impairments.from_spec(FULL, seed=4).scheduler()
    s3: PacketScheduler[int] = imp.scheduler(stream=1)
    out1, out2, out3 = s1.schedule(packets), s2.schedule(packets), s3.schedule(packets)
    assert out1 == out2
    assert out1 != out3
    assert s1.stats.dropped > 0 and s1.stats.reordered > 0


def test_the_scenario_spec_plugs_in() -> None:
    spec_module = pytest.importorskip("trunkline.lab.impairment_spec")
    spec = spec_module.ImpairmentSpec(
        noise=spec_module.NoiseSpec(spec_module.NoiseKind.WHITE, 20.0),
        loss=spec_module.LossSpec(spec_module.LossModel.RANDOM, percent=5.0),
        jitter=spec_module.JitterSpec(10.0),
        codec=spec_module.Codec.PCMU,
    )
    imp = Impairments.from_spec(spec, seed=3)
    x, _ = bursts()
    assert len(imp.audio(x).samples) == len(x)
    scheduler: PacketScheduler[int] = imp.scheduler()
    scheduler.schedule((i * 0.02, i) for i in range(1000))
    assert 0.02 < scheduler.stats.loss_rate < 0.09


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (Spec(noise=Noise("babble", 10.0)), "babble"),
        (Spec(noise=Noise("brown", 10.0)), "noise kind"),
        (Spec(noise=Noise("white", math.nan)), "snr_db"),
        (Spec(codec="g729"), "codec"),
        (Spec(drift_ppm=5000.0), "drift"),
        (Spec(level_db=-70.0), "level"),
        (Spec(loss=Loss("pareto")), "loss model"),
        (Spec(loss=Loss("random", percent=120.0)), "percent"),
        (Spec(loss=Loss("gilbert_elliott", p=0.1, r=0.0)), "never leaves"),
        (Spec(jitter=Jitter(-1.0)), "jitter"),
        (Spec(jitter=Jitter(10.0, 101.0)), "reorder"),
    ],
)
def test_impairments_refuse_bad_parameters(spec: Spec, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Impairments.from_spec(spec, seed=0)


def test_bad_seed_utterance_and_stream() -> None:
    with pytest.raises(ValueError, match="utterance"):
        Impairments(0).audio(np.zeros(10, np.int16), utterance=-1)
    with pytest.raises(ValueError, match="seed"):
        Impairments(-1)
    with pytest.raises(ValueError, match="stream"):
        Impairments(0).scheduler(stream=-1)


def test_silence_carries_the_calls_background_noise() -> None:
    imp = Impairments.from_spec(Spec(noise=Noise("white", 20.0)), seed=2)
    pause = imp.audio(np.zeros(RATE, np.int16), speech_dbov=-22.0).samples
    assert dbov(float(np.mean(pause.astype(float) ** 2))) == pytest.approx(-42.0, abs=0.2)


@settings(max_examples=40, deadline=None)
@given(
    int16_arrays,
    st.integers(0, 2**32),
    st.floats(-20.0, 80.0),
    st.floats(-60.0, 30.0),
    st.floats(-1000.0, 1000.0),
)
def test_impairments_never_fail(
    x: Samples, seed: int, snr: float, level: float, ppm: float
) -> None:
    spec = Spec(noise=Noise("white", snr), level_db=level, drift_ppm=ppm, codec="pcmu")
    out = Impairments.from_spec(spec, seed).audio(x)
    assert out.samples.dtype == np.int16
    assert out.clipped >= 0


@settings(max_examples=40, deadline=None)
@given(st.lists(int16_arrays, max_size=4), st.integers(0, 3000), st.integers(0, 2**32))
def test_babble_is_noise_or_a_clear_error(clips: list[Samples], n: int, seed: int) -> None:
    try:
        out = babble_noise(n, clips, np.random.default_rng(seed))
    except ValueError as e:
        assert all(active_speech_level(c) is None for c in clips), e
        return
    assert len(out) == n and np.all(np.isfinite(out))


@settings(max_examples=60, deadline=None)
@given(int16_arrays, st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=8))
def test_level_codec_and_kind_never_fail_otherwise(x: Samples, db: float, name: str) -> None:
    try:
        out = change_level(x, db)
    except ValueError:
        assert not -60.0 <= db <= 30.0
    else:
        assert len(out.samples) == len(x) and 0 <= out.clipped <= len(x)
    for codec in ("pcmu", "pcma", name):
        try:
            assert len(g711_round_trip(x, codec)) == len(x)
        except ValueError:
            assert codec not in ("pcmu", "pcma")
    try:
        noise_kind(name)
    except ValueError:
        assert name not in ("white", "pink", "babble")

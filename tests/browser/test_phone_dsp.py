"""The page's signal processing, run in Chromium and checked in Python.

u-law must be bit-exact with :mod:`trunkline.rtp.g711` (the runtime decodes what the page
encodes, and a caller that rounds differently would be a different codec). The
resampler must keep the voice band and remove what does not fit: decimating 48 kHz to
8 kHz without a low-pass would fold a 6 kHz whistle onto 2 kHz at full level.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import numpy as np
import numpy.typing as npt
import pytest
import pytest_asyncio
from aiohttp import web

from trunkline.rtp.g711 import ULAW_TO_LINEAR, ulaw_encode
from trunkline.web.phone import add_phone_routes

from .cdp import Chromium, Page, open_page
from .test_phone_routes import serving

DSP = "/phone/dsp.js"


# One tab for the whole module: the tests only evaluate functions in it.
pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def dsp_page(chromium: Chromium) -> AsyncIterator[Page]:
    """A tab showing the phone (not calling), so ``import('/phone/dsp.js')`` works."""
    app = web.Application()
    add_phone_routes(app)
    async with serving(app) as base, open_page(chromium) as page:
        await page.navigate(f"{base}/phone")
        yield page


async def test_ulaw_matches_the_runtimes_codec_bit_for_bit(dsp_page: Page) -> None:
    codes = await dsp_page.evaluate(f"""(async () => {{
        const {{ ulawEncode, ulawDecode }} = await import('{DSP}');
        const samples = new Int16Array(65536);
        for (let i = 0; i < 65536; i++) samples[i] = i - 32768;
        const all = new Uint8Array(256);
        for (let c = 0; c < 256; c++) all[c] = c;
        return {{ encoded: Array.from(ulawEncode(samples)),
                  decoded: Array.from(ulawDecode(all)) }};
    }})()""")
    every_sample = np.arange(-32768, 32768, dtype="<i2").tobytes()
    assert bytes(codes["encoded"]) == ulaw_encode(every_sample)
    assert tuple(codes["decoded"]) == ULAW_TO_LINEAR
    assert dsp_page.errors == []


async def resample(page: Page, in_rate: int, out_rate: int, hz: float) -> npt.NDArray[np.float64]:
    """One second of a 0.5-amplitude sine at ``hz`` through the page's Resampler, pushed
    in render quanta of 128 samples as the worklet does."""
    out = await page.evaluate(f"""(async () => {{
        const {{ Resampler }} = await import('{DSP}');
        const r = new Resampler({in_rate}, {out_rate});
        const out = [];
        const pulled = new Float32Array(256);
        for (let start = 0; start < {in_rate}; start += 128) {{
            const quantum = new Float32Array(128);
            for (let i = 0; i < 128; i++) {{
                quantum[i] = 0.5 * Math.sin(2 * Math.PI * {hz} * (start + i) / {in_rate});
            }}
            r.push(quantum);
            for (let n; (n = r.pull(pulled)) > 0; ) out.push(...pulled.subarray(0, n));
        }}
        return JSON.stringify(out);
    }})()""")
    return np.array(json.loads(out), dtype=np.float64)


def assert_length(out: npt.NDArray[np.float64], in_rate: int, out_rate: int) -> None:
    """As many samples out as went in, at the new rate, less the filter's delay (2.2 ms)."""
    expected = -(-in_rate // 128) * 128 * out_rate // in_rate
    assert expected - 0.003 * out_rate <= len(out) <= expected


def level_db(signal: npt.NDArray[np.float64], rate: int, lo_hz: float, hi_hz: float) -> float:
    """Power between ``lo_hz`` and ``hi_hz`` relative to the 0.5-amplitude input, in dB."""
    steady = signal[rate // 10 :]  # skip the filter's start-up
    window = np.hanning(len(steady))
    spectrum = np.abs(np.fft.rfft(steady * window)) ** 2
    freqs = np.fft.rfftfreq(len(steady), 1 / rate)
    band = spectrum[(freqs >= lo_hz) & (freqs <= hi_hz)].sum()
    ideal = 0.5 * np.sin(2 * np.pi * 1000 * np.arange(len(steady)) / rate)
    reference = (np.abs(np.fft.rfft(ideal * window)) ** 2).sum()
    return float(10 * np.log10(band / reference + 1e-30))


@pytest.mark.parametrize("in_rate", [48000, 44100])
async def test_downsampling_keeps_the_voice_and_removes_what_would_alias(
    dsp_page: Page, in_rate: int
) -> None:
    voice = await resample(dsp_page, in_rate, 8000, 1000)
    assert_length(voice, in_rate, 8000)
    assert abs(level_db(voice, 8000, 950, 1050)) < 0.2
    # 6 kHz would fold onto 2 kHz; 4.5 kHz onto 3.5 kHz, just past the transition band.
    assert level_db(await resample(dsp_page, in_rate, 8000, 6000), 8000, 0, 4000) < -60
    assert level_db(await resample(dsp_page, in_rate, 8000, 4500), 8000, 0, 4000) < -40


async def test_upsampling_keeps_the_voice_and_leaves_no_images(dsp_page: Page) -> None:
    out = await resample(dsp_page, 8000, 48000, 1000)
    assert_length(out, 8000, 48000)
    assert abs(level_db(out, 48000, 950, 1050)) < 0.2
    assert level_db(out, 48000, 6500, 24000) < -60  # images at 7, 9, 15, 17 kHz...


async def test_the_resampler_refuses_rates_it_cannot_handle(dsp_page: Page) -> None:
    refusals = await dsp_page.evaluate(f"""(async () => {{
        const {{ Resampler }} = await import('{DSP}');
        const out = [];
        for (const [a, b] of [[0, 8000], [8000, 44100.5], [8000, 1000003]]) {{
            try {{ new Resampler(a, b); out.push('accepted'); }}
            catch (err) {{ out.push(err.name); }}
        }}
        return out;
    }})()""")
    assert refusals == ["RangeError", "RangeError", "RangeError"]

// The browser phone's signal processing: G.711 u-law and a band-limited resampler.
//
// Shared by the page (u-law, levels) and the audio worklet (resampling). Plain ES module,
// no dependencies, so it loads the same way in a window and in an AudioWorkletGlobalScope.

// --- G.711 u-law ---------------------------------------------------------------------
//
// A port of trunkline.rtp.g711 (the Sun/CCITT reference g711.c), bit-exact with it: the
// 16-bit sample is first rounded to the nearest 14-bit step (half up, clipped at the top),
// as sox does, then coded by segment. The tests compare all 65,536 inputs with Python.

const ULAW_BIAS = 0x84; // 132: added so that every segment starts at a power of two
const ULAW_CLIP = 8159; // largest 14-bit magnitude u-law can represent
const ULAW_SEG_END = [0x3f, 0x7f, 0xff, 0x1ff, 0x3ff, 0x7ff, 0xfff, 0x1fff];

/** The u-law code of one 16-bit signed sample (the reference linear2ulaw, rounding). */
export function ulawEncodeSample(sample) {
  let value = Math.min((sample + 2) >> 2, 0x1fff);
  const mask = value < 0 ? 0x7f : 0xff;
  value = Math.min(Math.abs(value), ULAW_CLIP) + (ULAW_BIAS >> 2);
  let seg = 0;
  while (seg < 8 && value > ULAW_SEG_END[seg]) seg++;
  const code = seg >= 8 ? 0x7f : (seg << 4) | ((value >> (seg + 1)) & 0x0f);
  return (code ^ mask) & 0xff;
}

/** The 16-bit sample a u-law code stands for (the reference ulaw2linear). */
export function ulawDecodeSample(code) {
  const u = ~code & 0xff;
  const t = (((u & 0x0f) << 3) + ULAW_BIAS) << ((u & 0x70) >> 4);
  return u & 0x80 ? ULAW_BIAS - t : t - ULAW_BIAS;
}

// Tables, as in Python: encoding indexes by the sample read as unsigned 16 bit.
const ENCODE = new Uint8Array(65536);
for (let i = 0; i < 65536; i++) ENCODE[i] = ulawEncodeSample(i < 32768 ? i : i - 65536);
const DECODE = new Int16Array(256);
for (let c = 0; c < 256; c++) DECODE[c] = ulawDecodeSample(c);

/** Int16Array of samples -> Uint8Array of u-law codes. */
export function ulawEncode(samples) {
  const out = new Uint8Array(samples.length);
  for (let i = 0; i < samples.length; i++) out[i] = ENCODE[samples[i] & 0xffff];
  return out;
}

/** Uint8Array of u-law codes -> Int16Array of samples. */
export function ulawDecode(codes) {
  const out = new Int16Array(codes.length);
  for (let i = 0; i < codes.length; i++) out[i] = DECODE[codes[i]];
  return out;
}

/** RMS level of 16-bit samples in dBFS (-Infinity for digital silence). */
export function levelDbfs(samples) {
  if (samples.length === 0) return -Infinity;
  let sum = 0;
  for (let i = 0; i < samples.length; i++) sum += samples[i] * samples[i];
  return 10 * Math.log10(sum / samples.length / (32768 * 32768));
}

// --- Resampling ------------------------------------------------------------------------
//
// A polyphase windowed-sinc resampler for any pair of integer rates. With g = gcd of the
// rates, output sample n sits at input time n * M / L (L = out/g, M = in/g), so its
// fractional part takes only L values: one precomputed kernel per phase. The kernel is a
// low-pass at 0.45 of the lower rate (3.6 kHz for telephony: the band G.711 carries) with
// a Blackman window (about 74 dB of stopband), so downsampling does not fold the upper band
// into the voice and upsampling does not leave images above 4 kHz. Each phase is
// normalised to unity gain at DC.

const CUTOFF = 0.45; // of the lower rate: the -6 dB point, 3.6 kHz when one side is 8 kHz
// Sinc lobes each side: sets the transition band (about 1.2 kHz wide at 8 kHz, 3 to
// 4.2 kHz); the window sets the stopband depth. Costs 36 taps per output upsampling 8 to
// 48 kHz and 214 downsampling 48 to 8 kHz: under 2 M multiply-adds a second each way.
const ZERO_CROSSINGS = 16;
const MAX_PHASES = 4096; // 8 kHz against 44.1 kHz needs 441; anything far above is odd

function gcd(a, b) {
  while (b) [a, b] = [b, a % b];
  return a;
}

function blackman(x) {
  // x in [-1, 1]
  return 0.42 + 0.5 * Math.cos(Math.PI * x) + 0.08 * Math.cos(2 * Math.PI * x);
}

/** Streaming resampler from `inRate` to `outRate` (integer Hz), mono Float32 samples. */
export class Resampler {
  constructor(inRate, outRate) {
    if (!(Number.isInteger(inRate) && Number.isInteger(outRate) && inRate > 0 && outRate > 0)) {
      throw new RangeError(`rates must be positive integers, got ${inRate} and ${outRate}`);
    }
    const g = gcd(inRate, outRate);
    this.L = outRate / g;
    this.M = inRate / g;
    if (this.L > MAX_PHASES) throw new RangeError(`unsupported rate pair ${inRate}/${outRate}`);
    const fc = (CUTOFF * Math.min(inRate, outRate)) / inRate; // cycles per input sample
    const halfWidth = ZERO_CROSSINGS / (2 * fc); // in input samples
    this.K = Math.ceil(halfWidth);
    this.taps = 2 * this.K;
    this.kernels = [];
    for (let p = 0; p < this.L; p++) {
      const frac = p / this.L;
      const kernel = new Float32Array(this.taps);
      let sum = 0;
      for (let j = 0; j < this.taps; j++) {
        const x = frac - (j - this.K + 1); // distance from the output time to input i0+j-K+1
        let h = 0;
        if (Math.abs(x) < halfWidth) {
          const arg = 2 * fc * x;
          const sinc = arg === 0 ? 1 : Math.sin(Math.PI * arg) / (Math.PI * arg);
          h = 2 * fc * sinc * blackman(x / halfWidth);
        }
        kernel[j] = h;
        sum += h;
      }
      for (let j = 0; j < this.taps; j++) kernel[j] /= sum;
      this.kernels.push(kernel);
    }
    // Input buffer; buf[0] is input sample number `base`. It starts with K-1 samples of
    // silence before sample 0, so the first output needs no history.
    this.buf = new Float32Array(4096);
    this.len = this.K - 1;
    this.base = -(this.K - 1);
    this.i0 = 0; // integer part of the next output's input time
    this.phase = 0; // its fractional part, in 1/L
  }

  /** How many more input samples `pull` needs to produce `count` outputs. */
  needed(count) {
    if (count <= 0) return 0;
    const last = this.i0 + Math.floor((this.phase + (count - 1) * this.M) / this.L);
    return Math.max(0, last + this.K + 1 - (this.base + this.len));
  }

  /** Append input samples (any array-like of numbers). */
  push(samples) {
    if (this.len + samples.length > this.buf.length) {
      const grown = new Float32Array(Math.max(this.buf.length * 2, this.len + samples.length));
      grown.set(this.buf.subarray(0, this.len));
      this.buf = grown;
    }
    this.buf.set(samples, this.len);
    this.len += samples.length;
  }

  /** Fill `out` with as many outputs as the input allows; returns how many were written. */
  pull(out) {
    const { buf, K, L, M, taps, kernels } = this;
    let n = 0;
    while (n < out.length) {
      const start = this.i0 - K + 1 - this.base; // buffer index of the first tap
      if (start + taps > this.len) break;
      const kernel = kernels[this.phase];
      let acc = 0;
      for (let j = 0; j < taps; j++) acc += buf[start + j] * kernel[j];
      out[n++] = acc;
      this.phase += M;
      while (this.phase >= L) {
        this.phase -= L;
        this.i0++;
      }
    }
    // Drop the input no future output can reach.
    const keepFrom = this.i0 - K + 1 - this.base;
    if (keepFrom > 0) {
      const drop = Math.min(keepFrom, this.len);
      buf.copyWithin(0, drop, this.len);
      this.len -= drop;
      this.base += drop;
    }
    return n;
  }
}

// The browser phone's audio worklet: the microphone side and the speaker side of a call.
//
// Theory of operation
// -------------------
// trunkline-capture takes the microphone at the context's rate, mixes it to mono,
// resamples it to 8 kHz (dsp.js: a proper low-pass, not decimation) and posts one
// Int16Array of 160 samples, 20 ms, per frame to the page, which u-law codes and sends it.
// The audio clock paces the frames, as a phone's codec clock paces RTP.
//
// trunkline-playback keeps the call's inbound 8 kHz audio in a ring buffer and, each
// render quantum, moves just what the resampler needs out of it to fill the quantum at
// the context's rate; when the ring runs dry it feeds silence instead. Every sample that
// leaves the ring (played, or dropped by a 'clear' or an overflow) advances `consumed`,
// which it reports to the page about every 20 ms: the page echoes a mark once `consumed`
// passes the audio that came before the mark. Reports run ahead of the loudspeaker by the
// resampler's delay (about 2 ms) and the output latency of the device.

import { Resampler } from './dsp.js';

const RATE = 8000; // G.711
const FRAME = 160; // 20 ms at 8 kHz
// 131 s at 8 kHz: an app may burst a whole prompt ahead of playback (Twilio buffers it),
// and 4 MiB of memory is a bound on one that never stops.
const RING = 1 << 20;
const REPORT_S = 0.02; // how often playback reports progress: a frame's worth

class Capture extends AudioWorkletProcessor {
  constructor() {
    super();
    this.resampler = new Resampler(sampleRate, RATE);
    this.mono = new Float32Array(128);
    this.pulled = new Float32Array(FRAME);
    this.frame = new Int16Array(FRAME);
    this.fill = 0;
    this.stopped = false;
    this.port.onmessage = (event) => {
      if (event.data === 'stop') this.stopped = true;
    };
  }

  process(inputs) {
    if (this.stopped) return false;
    const channels = inputs[0];
    if (!channels || channels.length === 0) return true; // the source has not started
    const length = channels[0].length;
    if (this.mono.length !== length) this.mono = new Float32Array(length);
    const mono = this.mono;
    mono.set(channels[0]);
    for (let c = 1; c < channels.length; c++) {
      const channel = channels[c];
      for (let i = 0; i < length; i++) mono[i] += channel[i];
    }
    if (channels.length > 1) for (let i = 0; i < length; i++) mono[i] /= channels.length;
    this.resampler.push(mono);
    for (;;) {
      const n = this.resampler.pull(this.pulled.subarray(0, FRAME - this.fill));
      if (n === 0) break;
      for (let i = 0; i < n; i++) {
        const s = Math.round(this.pulled[i] * 32768);
        this.frame[this.fill++] = s > 32767 ? 32767 : s < -32768 ? -32768 : s;
      }
      if (this.fill === FRAME) {
        this.port.postMessage(this.frame, [this.frame.buffer]);
        this.frame = new Int16Array(FRAME);
        this.fill = 0;
      }
    }
    return true;
  }
}

class Playback extends AudioWorkletProcessor {
  constructor() {
    super();
    this.ring = new Float32Array(RING);
    this.read = 0; // samples that left the ring (cumulative): `consumed`
    this.write = 0; // samples that entered it (cumulative)
    this.overflow = 0;
    this.resampler = new Resampler(RATE, sampleRate);
    this.silence = new Float32Array(64); // fed to the resampler when the ring runs dry
    this.reportEvery = Math.max(1, Math.round(REPORT_S * sampleRate));
    this.sinceReport = 0;
    this.reported = 0;
    this.stopped = false;
    this.port.onmessage = (event) => this.onMessage(event.data);
  }

  onMessage(message) {
    if (message instanceof Float32Array) {
      this.enqueue(message);
    } else if (message === 'clear') {
      this.read = this.write;
      this.report();
    } else if (message === 'stop') {
      this.stopped = true;
    }
  }

  enqueue(samples) {
    for (let i = 0; i < samples.length; i++) this.ring[(this.write + i) % RING] = samples[i];
    this.write += samples.length;
    if (this.write - this.read > RING) {
      // Overflow: the oldest audio is overwritten, and counts as consumed.
      this.overflow += this.write - RING - this.read;
      this.read = this.write - RING;
    }
  }

  report() {
    this.sinceReport = 0;
    this.reported = this.read;
    this.port.postMessage({ consumed: this.read, overflow: this.overflow });
  }

  process(inputs, outputs) {
    if (this.stopped) return false;
    const out = outputs[0][0];
    const need = this.resampler.needed(out.length);
    const take = Math.min(need, this.write - this.read);
    if (take > 0) {
      const from = this.read % RING;
      const first = Math.min(take, RING - from);
      this.resampler.push(this.ring.subarray(from, from + first));
      if (take > first) this.resampler.push(this.ring.subarray(0, take - first));
      this.read += take;
    }
    if (need > take) {
      if (this.silence.length < need - take) this.silence = new Float32Array(need - take);
      this.resampler.push(this.silence.subarray(0, need - take));
    }
    this.resampler.pull(out);
    for (let c = 1; c < outputs[0].length; c++) outputs[0][c].set(out);
    this.sinceReport += out.length;
    if (this.sinceReport >= this.reportEvery && this.read !== this.reported) this.report();
    return true;
  }
}

registerProcessor('trunkline-capture', Capture);
registerProcessor('trunkline-playback', Playback);

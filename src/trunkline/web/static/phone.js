// The browser phone: a call to the runtime from a web page, as one more media leg.
//
// Theory of operation
// -------------------
// The page speaks the same Twilio-compatible Media Streams protocol as a telephony
// provider, to the runtime's own WebSocket endpoint (/media), so the server treats it as
// any other stream. Per call:
//
//   Call   -> microphone (getUserMedia), an AudioContext with the worklet (worklet.js),
//             the WebSocket; on open we send `connected` and `start` (streamSid, callSid,
//             customParameters), as Twilio does.
//   mic    -> capture worklet: 8 kHz frames of 160 samples -> u-law -> `media` messages
//             (sequenceNumber, chunk, timestamp on the media clock), one per 20 ms.
//   media  <- u-law -> playback worklet's ring buffer -> loudspeaker.
//   mark   <- remembered with the position of the audio before it; echoed back once the
//             playback worklet reports that audio consumed (Twilio's semantics).
//   clear  <- the worklet drops its ring; every pending mark is echoed at once.
//   dtmf   -> keypad presses, out of band as Twilio reports them.
//   transfer <- shown; answered with `transfer_result` 501 (a page cannot transfer).
//   hangup <- (trunkline's extension) the agent ended the call.
//   stop   -> the caller hung up; then the socket closes.
//
// window.phoneState exposes the counters for tests and for anyone curious.

import { levelDbfs, ulawDecode, ulawEncode } from './dsp.js';

const FRAME = 160; // samples in 20 ms at 8 kHz
// A received frame counts as audible above this RMS level; line silence reads far lower.
const AUDIBLE_DBFS = -40;
// About a second of media (a 20 ms message is some 370 bytes): beyond this the socket
// is not draining, and sending more would pile up late audio rather than let the call
// catch up, so frames are dropped (and counted) until it drains.
const MAX_BUFFERED_BYTES = 16 * 1024;
const MAX_LOG_LINES = 200; // the event log is for reading, not an archive
const TRANSCRIPT_POLL_MS = 1000; // live transcript: a line a second is as fast as people read
const RECORD_TRIES = 6; // the record is written after the call, so ask a few times
const RECORD_RETRY_MS = 500;
// What getUserMedia's failures mean to someone holding the phone.
const MIC_ERRORS = {
  NotAllowedError: 'the microphone permission was denied',
  NotFoundError: 'no microphone was found',
  NotReadableError: 'the microphone is in use by another program',
};
const OPTIONS = new URLSearchParams(location.search);

// The current (or last) call, as window.phoneState; every call starts from these.
const fresh = () => ({
  status: 'idle',
  connected: false,
  ended: false,
  endReason: '',
  callSid: '',
  streamSid: '',
  framesSent: 0,
  framesDropped: 0, // not sent because the socket was not draining
  framesReceived: 0,
  framesAudible: 0, // received frames above AUDIBLE_DBFS
  marks: 0, // marks echoed back
  cleared: 0, // `clear` messages honoured
  dtmfSent: '',
  transfers: [],
  badMessages: 0, // messages from the runtime that were ignored
  errors: [],
});
const state = fresh();
window.phoneState = state;

const $ = (selector) => document.querySelector(selector);
const ui = {
  status: $('#status'),
  call: $('#call'),
  hangup: $('#hangup'),
  log: $('#log'),
  keypad: $('#keypad'),
  transcript: $('#transcript'),
  counters: $('#counters'),
};

function log(text) {
  const line = document.createElement('li');
  const time = new Date().toLocaleTimeString(undefined, { hour12: false });
  line.textContent = `${time}  ${text}`;
  ui.log.prepend(line);
  while (ui.log.childElementCount > MAX_LOG_LINES) ui.log.lastElementChild.remove();
}

function setStatus(text) {
  state.status = text;
  ui.status.textContent = text;
}

function error(text) {
  state.errors.push(text);
  log(`error: ${text}`);
}

function showCounters() {
  ui.counters.textContent =
    `sent ${state.framesSent}  received ${state.framesReceived}  ` +
    `marks ${state.marks}  cleared ${state.cleared}`;
}

function sid(prefix) {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return prefix + Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}

function toBase64(bytes) {
  let text = '';
  for (let i = 0; i < bytes.length; i++) text += String.fromCharCode(bytes[i]);
  return btoa(text);
}

function fromBase64(text) {
  const raw = atob(text); // throws on anything that is not base64
  const bytes = new Uint8Array(raw.length);
  for (let i = 0; i < raw.length; i++) bytes[i] = raw.charCodeAt(i);
  return bytes;
}

function mediaUrl() {
  const path = document.querySelector('meta[name="trunkline-media"]').content;
  const url = new URL(path, location.href);
  url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
  return url.href;
}

class Call {
  constructor() {
    this.callSid = sid('CA');
    this.streamSid = sid('MZ');
    this.accountSid = sid('AC');
    this.seq = 0;
    this.chunk = 0; // media messages sent
    this.produced = 0; // frames the microphone gave since the call connected
    this.posted = 0; // inbound samples handed to the playback worklet
    this.consumed = 0; // of those, the ones the worklet has played or dropped
    this.overflow = 0;
    this.rxFrame = new Int16Array(FRAME); // inbound audio, gathered into 20 ms frames
    this.rxFill = 0;
    this.wasConnected = false;
    this.pending = []; // marks waiting for their audio: {name, at}
    this.ws = null;
    this.ctx = null;
    this.mic = null;
    this.capture = null;
    this.playback = null;
    this.over = false;
  }

  async start() {
    if (!navigator.mediaDevices?.getUserMedia) {
      throw new Error('no microphone access here: open the page over https or on localhost');
    }
    // The browser's voice processing (echo cancellation, noise suppression, gain
    // control) is what a speakerphone needs; ?processing=off sends the microphone as it
    // is, for a headset or a test file (the noise suppressor cuts steady synthetic
    // voices by about 11 dB).
    const processing = OPTIONS.get('processing') !== 'off';
    this.mic = await navigator.mediaDevices.getUserMedia({
      audio: {
        channelCount: 1,
        echoCancellation: processing,
        noiseSuppression: processing,
        autoGainControl: processing,
      },
    });
    if (this.over) return this.release();
    this.ctx = new AudioContext({ latencyHint: 'interactive' });
    await this.ctx.audioWorklet.addModule(new URL('worklet.js', import.meta.url));
    if (this.over) return this.release();
    const source = this.ctx.createMediaStreamSource(this.mic);
    this.capture = new AudioWorkletNode(this.ctx, 'trunkline-capture', { numberOfOutputs: 0 });
    this.playback = new AudioWorkletNode(this.ctx, 'trunkline-playback', {
      numberOfInputs: 0,
      outputChannelCount: [1],
    });
    source.connect(this.capture);
    this.playback.connect(this.ctx.destination);
    this.capture.port.onmessage = (event) => this.sendFrame(event.data);
    this.playback.port.onmessage = (event) => this.played(event.data);
    await this.ctx.resume();
    if (this.ctx.state !== 'running') {
      log('audio is paused by the browser: click the page to start it');
      document.addEventListener('click', () => this.ctx?.resume(), { once: true });
    }
    log(`audio at ${this.ctx.sampleRate} Hz, resampled to 8000 Hz`);

    this.ws = new WebSocket(mediaUrl());
    this.ws.onopen = () => this.opened();
    this.ws.onmessage = (event) => this.received(event.data);
    this.ws.onclose = (event) => this.closed(event);
    this.ws.onerror = () => log('websocket error');
  }

  send(message) {
    if (this.ws?.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(message));
  }

  next() {
    this.seq += 1;
    return String(this.seq);
  }

  opened() {
    this.wasConnected = true;
    state.connected = true;
    state.callSid = this.callSid;
    state.streamSid = this.streamSid;
    this.send({ event: 'connected', protocol: 'Call', version: '1.0.0' });
    this.send({
      event: 'start',
      sequenceNumber: this.next(),
      start: {
        accountSid: this.accountSid,
        streamSid: this.streamSid,
        callSid: this.callSid,
        tracks: ['inbound'],
        customParameters: { source: 'browser-phone' },
        mediaFormat: { encoding: 'audio/x-mulaw', sampleRate: 8000, channels: 1 },
      },
      streamSid: this.streamSid,
    });
    setStatus('connected');
    log(`connected: call ${this.callSid}`);
    followTranscript(this);
  }

  sendFrame(samples) {
    const ws = this.ws;
    if (this.over || ws?.readyState !== WebSocket.OPEN) return;
    const ms = this.produced * 20; // the media clock: a dropped frame leaves a gap
    this.produced += 1;
    if (ws.bufferedAmount > MAX_BUFFERED_BYTES) {
      state.framesDropped += 1;
      return;
    }
    this.chunk += 1;
    this.send({
      event: 'media',
      sequenceNumber: this.next(),
      media: {
        track: 'inbound',
        chunk: String(this.chunk),
        timestamp: String(ms),
        payload: toBase64(ulawEncode(samples)),
      },
      streamSid: this.streamSid,
    });
    state.framesSent += 1;
  }

  received(text) {
    let message;
    try {
      message = JSON.parse(text);
      if (typeof message !== 'object' || message === null) throw new Error('not an object');
      if (message.event === 'media') return this.media(message.media?.payload);
    } catch (err) {
      return this.bad(`undecodable message (${err.message})`);
    }
    switch (message.event) {
      case 'mark':
        return this.mark(message.mark?.name);
      case 'clear':
        return this.clear();
      case 'transfer':
        return this.transfer(message.transfer?.target);
      case 'hangup':
        return this.end(`the agent hung up (${message.hangup?.reason ?? 'normal'})`);
      default:
        return this.bad(`unexpected event ${JSON.stringify(message.event)}`);
    }
  }

  bad(why) {
    state.badMessages += 1;
    log(`ignored: ${why}`);
  }

  media(payload) {
    if (typeof payload !== 'string') throw new Error('media.payload is not a string');
    const pcm = ulawDecode(fromBase64(payload));
    // Count whole 20 ms frames, whatever size the app's messages are.
    for (let i = 0; i < pcm.length; i++) {
      this.rxFrame[this.rxFill++] = pcm[i];
      if (this.rxFill === FRAME) {
        state.framesReceived += 1;
        if (levelDbfs(this.rxFrame) > AUDIBLE_DBFS) state.framesAudible += 1;
        this.rxFill = 0;
      }
    }
    const floats = new Float32Array(pcm.length);
    for (let i = 0; i < pcm.length; i++) floats[i] = pcm[i] / 32768;
    this.playback.port.postMessage(floats, [floats.buffer]);
    this.posted += pcm.length;
  }

  mark(name) {
    if (typeof name !== 'string') return this.bad('mark without a name');
    this.pending.push({ name, at: this.posted });
    this.echoPlayed(this.consumed);
  }

  played({ consumed, overflow }) {
    this.consumed = consumed;
    if (overflow && overflow !== this.overflow) log(`playback overflow: ${overflow} samples`);
    this.overflow = overflow;
    this.echoPlayed(consumed);
  }

  echoPlayed(consumed) {
    while (this.pending.length && this.pending[0].at <= consumed) {
      this.echo(this.pending.shift().name);
    }
  }

  echo(name) {
    this.send({
      event: 'mark',
      sequenceNumber: this.next(),
      streamSid: this.streamSid,
      mark: { name },
    });
    state.marks += 1;
  }

  clear() {
    this.playback.port.postMessage('clear');
    for (const { name } of this.pending.splice(0)) this.echo(name); // as Twilio does
    state.cleared += 1;
    log('clear: the agent stopped talking (barge-in)');
  }

  transfer(target) {
    state.transfers.push(String(target));
    log(`the agent asked to transfer the call to ${target}`);
    this.send({
      event: 'transfer_result',
      streamSid: this.streamSid,
      transfer_result: {
        target: String(target),
        ok: false,
        status: 501,
        detail: 'a browser phone cannot transfer',
      },
    });
  }

  dtmf(digit) {
    this.send({
      event: 'dtmf',
      streamSid: this.streamSid,
      sequenceNumber: this.next(),
      dtmf: { track: 'inbound_track', digit },
    });
    state.dtmfSent += digit;
    log(`key ${digit}`);
  }

  hangup() {
    if (this.over) return;
    this.send({
      event: 'stop',
      sequenceNumber: this.next(),
      stop: { accountSid: this.accountSid, callSid: this.callSid },
      streamSid: this.streamSid,
    });
    this.end('you hung up');
  }

  closed(event) {
    if (this.over) return;
    const why = `${event.code}${event.reason ? `: ${event.reason}` : ''}`;
    if (!this.wasConnected) error(`could not reach the runtime (${why})`);
    else if (event.code !== 1000) error(`the line dropped (${why})`);
    this.end(`the line closed (${why})`);
  }

  end(reason) {
    if (this.over) return;
    this.over = true;
    this.ws?.close(1000, 'hangup');
    this.release();
    state.ended = true;
    state.endReason = reason;
    setStatus(`ended: ${reason}`);
    log(`ended: ${reason}`);
    callEnded(this);
  }

  release() {
    for (const track of this.mic?.getTracks() ?? []) track.stop();
    this.capture?.port.postMessage('stop');
    this.playback?.port.postMessage('stop');
    if (this.ctx && this.ctx.state !== 'closed') this.ctx.close().catch(() => {});
  }
}

let call = null; // the call in progress
let shownTranscript = false; // whether this call's transcript is on the page
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function startCall() {
  if (call) return;
  call = new Call();
  Object.assign(state, fresh());
  ui.call.disabled = true;
  ui.hangup.disabled = false;
  ui.transcript.textContent = '';
  shownTranscript = false;
  setStatus('calling');
  try {
    await call.start();
  } catch (err) {
    const why = MIC_ERRORS[err.name] ?? err.message;
    error(`cannot start the call: ${why}`);
    call.end(`could not start: ${why}`);
  }
}

function callEnded(ended) {
  if (call === ended) call = null;
  ui.call.disabled = false;
  ui.hangup.disabled = true;
  if (ended.wasConnected) showRecord(ended);
}

// The transcript. The runtime may serve a call at GET /calls/{id}, with its transcript
// so far while it lasts and from its record after; it is optional, so anything but a
// JSON document with a transcript leaves the area as it was.

async function fetchTranscript(callSid) {
  try {
    const response = await fetch(`/calls/${encodeURIComponent(callSid)}`);
    if (!response.ok) return null;
    const doc = await response.json();
    return Array.isArray(doc?.transcript) ? doc.transcript : null;
  } catch {
    return null;
  }
}

function showTranscript(turns) {
  const lines = [];
  for (const turn of turns) {
    const cut = turn.played_text ? `${turn.played_text}... (interrupted)` : '(interrupted)';
    const text = turn.interrupted ? cut : turn.text;
    if (!text) continue;
    const line = document.createElement('p');
    line.className = turn.role === 'caller' ? 'caller' : 'agent';
    line.textContent = `${turn.role}: ${text}`;
    lines.push(line);
  }
  ui.transcript.replaceChildren(...lines);
  shownTranscript = true;
}

async function followTranscript(live) {
  while (!live.over) {
    await sleep(TRANSCRIPT_POLL_MS);
    if (live.over) return;
    const turns = await fetchTranscript(live.callSid);
    if (!turns) return; // no live transcript from this runtime: stop asking
    if (!live.over) showTranscript(turns);
  }
}

async function showRecord(ended) {
  for (let tries = 0; tries < RECORD_TRIES; tries++) {
    await sleep(RECORD_RETRY_MS);
    if (call) return; // a new call has the transcript area now
    const turns = await fetchTranscript(ended.callSid);
    if (turns && !call) return showTranscript(turns);
  }
  if (!shownTranscript && !call) {
    ui.transcript.textContent = 'No transcript: the runtime serves no record of this call.';
  }
}

function buildKeypad() {
  for (const digit of '123456789*0#') {
    const key = document.createElement('button');
    key.type = 'button';
    key.textContent = digit;
    key.dataset.digit = digit;
    key.addEventListener('click', () => call?.dtmf(digit));
    ui.keypad.append(key);
  }
  document.addEventListener('keydown', (event) => {
    if (call && !event.repeat && '0123456789*#'.includes(event.key) && event.key.length === 1) {
      call.dtmf(event.key);
    }
  });
}

window.addEventListener('error', (event) => error(`script error: ${event.message}`));
window.addEventListener('unhandledrejection', (event) => error(`unhandled: ${event.reason}`));
ui.call.addEventListener('click', startCall);
ui.hangup.addEventListener('click', () => call?.hangup());
buildKeypad();
setInterval(showCounters, 250);
showCounters();
window.phone = { call: startCall, hangup: () => call?.hangup(), dtmf: (d) => call?.dtmf(d) };
if (OPTIONS.get('autostart') === '1') startCall();

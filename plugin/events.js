// The sidecar's live events over WebSocket: JSON text events and binary preview frames.
// Plain JavaScript with the WebSocket constructor injected, so it runs under Node with
// fakes (and node's mock timers) as well as in a browser or UXP. Reconnects wait by the
// Backoff of connection.js.
'use strict';

const { Backoff } = require('./connection.js');

const DEFAULT_WS_URL = 'ws://127.0.0.1:7431';
const DEFAULT_BACKOFF = Object.freeze({ initialMs: 500, maxMs: 10000, factor: 2 });
const TRY_AGAIN_LATER = 1013; // the sidecar closes a client that reads too slowly

function utf8(bytes) {
  if (typeof TextDecoder === 'function') return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  return decodeURIComponent(Array.from(bytes, (b) => `%${b.toString(16).padStart(2, '0')}`).join(''));
}

// uint32 big-endian header length | header JSON (UTF-8) | JPEG bytes
function decodeFrame(frame) {
  const buffer = ArrayBuffer.isView(frame) ? frame.buffer : frame;
  const start = ArrayBuffer.isView(frame) ? frame.byteOffset : 0;
  const size = frame.byteLength;
  if (size < 4) throw new Error(`preview frame truncated: ${size} bytes, no header length`);
  const headerLength = new DataView(buffer, start, 4).getUint32(0, false);
  if (4 + headerLength > size) {
    throw new Error(`preview frame truncated: header of ${headerLength} bytes, ${size - 4} left`);
  }
  let header;
  try {
    header = JSON.parse(utf8(new Uint8Array(buffer, start + 4, headerLength)));
  } catch (error) {
    throw new Error(`preview frame header is not valid JSON: ${error.message}`);
  }
  if (header === null || typeof header !== 'object' || Array.isArray(header)) {
    throw new Error('preview frame header is not a JSON object');
  }
  const jpeg = new Uint8Array(buffer, start + 4 + headerLength, size - 4 - headerLength);
  return { header, jpeg };
}

function socketUrl(url, token) {
  const base = url.replace(/^http/, 'ws').replace(/\/+$/, '');
  return `${base}/v1/ws?token=${encodeURIComponent(token)}`;
}

// One WebSocket to the sidecar that reconnects by itself until close() is called.
// onState('connecting' | 'open' | 'retrying' | 'closed', info).
class EventStream {
  constructor({
    WebSocket = globalThis.WebSocket,
    url = DEFAULT_WS_URL,
    token = '',
    onEvent = () => {},
    onPreview = () => {},
    onState = () => {},
    onError = () => {},
    backoff = {},
  }) {
    this.WebSocket = WebSocket;
    this.url = socketUrl(url, token);
    this.onState = onState;
    this.onError = onError;
    this.backoff = new Backoff({ ...DEFAULT_BACKOFF, ...backoff });
    this.listeners = new Set([{ onEvent, onPreview }]);
    this.socket = null;
    this.isOpen = false;
    this.stopped = true;
    this.timer = null;
    this.attempt = 0;
    this.subscription = null; // null: never subscribed, the sidecar sends every job
    this.outbox = [];
    this.lastSeq = new Map();
  }

  connect() {
    this.stopped = false;
    if (!this.socket && this.timer === null) this.open();
    return this;
  }

  close() {
    this.stopped = true;
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    const socket = this.socket;
    this.socket = null;
    this.isOpen = false;
    if (socket) {
      socket.onopen = socket.onmessage = socket.onclose = socket.onerror = null;
      socket.close(1000, 'closed by the panel');
    }
    this.onState('closed', { code: 1000, byCaller: true });
  }

  // Extra listeners ({onEvent, onPreview}) beside the constructor's; returns the remover.
  listen(listener) {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  // [] means every job. Kept and sent again on each reconnect. The sidecar answers a
  // subscription with each named job's history (state events, latest preview) before
  // its live events: for a job newly named here, what went by before (unasked, while
  // every job was sent) is forgotten, so that replay gets through.
  subscribe(jobIds = []) {
    const before = new Set(this.subscription ?? []);
    for (const jobId of jobIds) if (!before.has(jobId)) this.lastSeq.delete(jobId);
    this.subscription = [...jobIds];
    if (this.isOpen) this.send({ type: 'subscribe', job_ids: this.subscription });
  }

  cancel(jobId) {
    this.sendOrQueue({ type: 'cancel', job_id: jobId });
  }

  open() {
    this.timer = null;
    this.attempt += 1;
    this.onState('connecting', { attempt: this.attempt });
    let socket;
    try {
      socket = new this.WebSocket(this.url);
    } catch (error) {
      this.onError(error);
      this.retry({ code: null, reason: error.message });
      return;
    }
    socket.binaryType = 'arraybuffer';
    this.socket = socket;
    socket.onopen = () => this.opened(socket);
    socket.onmessage = (message) => this.received(socket, message.data);
    socket.onclose = (event) => this.closed(socket, event || {});
    socket.onerror = () => {}; // a close event follows and does the work
  }

  opened(socket) {
    if (socket !== this.socket) return;
    this.isOpen = true;
    this.backoff.reset();
    this.attempt = 0;
    this.onState('open', {});
    if (this.subscription !== null) this.send({ type: 'subscribe', job_ids: this.subscription });
    const pending = this.outbox.splice(0);
    for (const message of pending) this.sendOrQueue(message);
  }

  sendOrQueue(message) {
    if (!this.isOpen || !this.send(message)) this.outbox.push(message);
  }

  send(message) {
    try {
      this.socket.send(JSON.stringify(message));
      return true;
    } catch (error) {
      this.onError(error);
      return false;
    }
  }

  received(socket, data) {
    if (socket !== this.socket) return;
    if (typeof data === 'string') this.receivedText(data);
    else this.receivedFrame(data);
  }

  receivedText(text) {
    let event;
    try {
      event = JSON.parse(text);
    } catch (error) {
      this.onError(new Error(`event is not valid JSON: ${error.message}`));
      return;
    }
    if (!this.isNew(event)) return;
    for (const listener of this.listeners) if (listener.onEvent) listener.onEvent(event);
  }

  receivedFrame(data) {
    let frame;
    try {
      frame = decodeFrame(data);
    } catch (error) {
      this.onError(error);
      return;
    }
    if (!this.isNew(frame.header)) return;
    for (const listener of this.listeners) {
      if (listener.onPreview) listener.onPreview(frame.header, frame.jpeg);
    }
  }

  // The sidecar sends each job's events (previews included) in seq order, so one not
  // above the last seen is a duplicate. Replies (subscribed, cancel_accepted, error)
  // carry no seq and always pass.
  isNew(event) {
    if (!event || typeof event.job_id !== 'string' || !Number.isInteger(event.seq)) return true;
    const last = this.lastSeq.get(event.job_id);
    if (last !== undefined && event.seq <= last) return false;
    this.lastSeq.set(event.job_id, event.seq);
    return true;
  }

  closed(socket, { code = null, reason = '' }) {
    if (socket !== this.socket) return;
    this.socket = null;
    this.isOpen = false;
    this.retry({ code, reason });
  }

  retry({ code, reason }) {
    if (this.stopped) return;
    if (code === TRY_AGAIN_LATER) {
      // the sidecar dropped us for reading slowly, not because it is down
      this.onState('retrying', { code, reason, delayMs: 0 });
      this.open();
      return;
    }
    const delayMs = this.backoff.next();
    this.onState('retrying', { code, reason, delayMs });
    this.timer = setTimeout(() => this.open(), delayMs);
  }
}

module.exports = { DEFAULT_WS_URL, DEFAULT_BACKOFF, decodeFrame, EventStream };

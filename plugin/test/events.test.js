'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const { decodeFrame, EventStream, DEFAULT_BACKOFF } = require('../events.js');
const { mockClock } = require('./clock.js');

function frame(header, bytes = [], { lengthField } = {}) {
  const json = new TextEncoder().encode(typeof header === 'string' ? header : JSON.stringify(header));
  const buffer = new ArrayBuffer(4 + json.length + bytes.length);
  new DataView(buffer).setUint32(0, lengthField ?? json.length, false);
  new Uint8Array(buffer, 4).set(json);
  new Uint8Array(buffer, 4 + json.length).set(bytes);
  return buffer;
}

// Records what the stream sends; the test plays the server's part.
function fakeWebSocket() {
  class FakeWebSocket {
    constructor(url) {
      this.url = url;
      this.sent = [];
      this.closedWith = null;
      FakeWebSocket.sockets.push(this);
    }
    send(text) {
      this.sent.push(JSON.parse(text));
    }
    close(code, reason) {
      this.closedWith = { code, reason };
    }
    open() {
      if (this.onopen) this.onopen({});
    }
    message(data) {
      if (this.onmessage) this.onmessage({ data });
    }
    drop(code = 1006, reason = '') {
      if (this.onclose) this.onclose({ code, reason });
    }
  }
  FakeWebSocket.sockets = [];
  return FakeWebSocket;
}

// An EventStream on a fake WebSocket; with the test `t`, on node's mock timers.
function makeStream(t, options = {}) {
  const WebSocket = fakeWebSocket();
  const clock = t ? mockClock(t) : null;
  const seen = { events: [], previews: [], states: [], errors: [] };
  const stream = new EventStream({
    WebSocket,
    url: 'http://127.0.0.1:7431',
    token: 'a b/c',
    onEvent: (event) => seen.events.push(event),
    onPreview: (header, jpeg) => seen.previews.push({ header, jpeg }),
    onState: (state, info) => seen.states.push({ state, info }),
    onError: (error) => seen.errors.push(error),
    ...options,
  });
  const sockets = WebSocket.sockets;
  const socket = () => sockets[sockets.length - 1];
  // How long until the stream makes its next socket (after a drop, say).
  const nextSocketMs = async (made = () => sockets.length) => {
    const before = made();
    const start = clock.now();
    await clock.until(() => made() > before, 'a new socket', { stepMs: 50 });
    return clock.now() - start;
  };
  return { stream, sockets, socket, clock, seen, nextSocketMs };
}

test('a frame decodes into its header and a view of the JPEG bytes, without a copy', () => {
  const header = { type: 'preview', job_id: 'j1', seq: 3, level: 'draft', width: 4, height: 2 };
  const buffer = frame(header, [0xff, 0xd8, 0xff, 0xd9]);
  const decoded = decodeFrame(buffer);
  assert.deepEqual(decoded.header, header);
  assert.deepEqual([...decoded.jpeg], [0xff, 0xd8, 0xff, 0xd9]);
  assert.equal(decoded.jpeg.buffer, buffer);
});

test('a frame given as a view into a larger buffer decodes from its own offset', () => {
  const inner = new Uint8Array(frame({ seq: 1, job_id: 'j' }, [7, 8]));
  const outer = new Uint8Array(inner.length + 10);
  outer.set(inner, 5);
  const decoded = decodeFrame(outer.subarray(5, 5 + inner.length));
  assert.equal(decoded.header.seq, 1);
  assert.deepEqual([...decoded.jpeg], [7, 8]);
});

test('a frame with an empty JPEG part still decodes', () => {
  assert.equal(decodeFrame(frame({ seq: 0 })).jpeg.length, 0);
});

test('a frame too short for its length field is refused as truncated', () => {
  assert.throws(() => decodeFrame(new ArrayBuffer(3)), /truncated/);
});

test('a header length past the end of the frame is refused as truncated', () => {
  const buffer = frame({ seq: 1 }, [1, 2], { lengthField: 1000 });
  assert.throws(() => decodeFrame(buffer), /truncated: header of 1000 bytes/);
});

test('a header that is not JSON, or not a JSON object, is refused', () => {
  assert.throws(() => decodeFrame(frame('{"seq": ', [1])), /not valid JSON/);
  assert.throws(() => decodeFrame(frame('[1, 2]')), /not a JSON object/);
  assert.throws(() => decodeFrame(frame('')), /not valid JSON/);
});

test('a header with invalid UTF-8 is refused', () => {
  const buffer = new ArrayBuffer(6);
  new DataView(buffer).setUint32(0, 2, false);
  new Uint8Array(buffer, 4).set([0xc3, 0x28]);
  assert.throws(() => decodeFrame(buffer), /not valid JSON/);
});

test('the socket goes to /v1/ws on the ws scheme with the token URL-encoded, as array buffers', () => {
  const { stream, socket, seen } = makeStream();
  stream.connect();
  assert.equal(socket().url, 'ws://127.0.0.1:7431/v1/ws?token=a%20b%2Fc');
  assert.equal(socket().binaryType, 'arraybuffer');
  socket().open();
  assert.deepEqual(seen.states.map((s) => s.state), ['connecting', 'open']);
});

test('text messages reach onEvent and binary frames reach onPreview', () => {
  const { stream, socket, seen } = makeStream();
  stream.connect();
  socket().open();
  socket().message(JSON.stringify({ type: 'progress', job_id: 'j1', seq: 1, progress: 0.5 }));
  socket().message(JSON.stringify({ type: 'subscribed', job_ids: [] }));
  socket().message(frame({ type: 'preview', job_id: 'j1', seq: 2, level: 'draft' }, [1, 2, 3]));
  assert.deepEqual(seen.events.map((e) => e.type), ['progress', 'subscribed']);
  assert.equal(seen.previews.length, 1);
  assert.equal(seen.previews[0].header.level, 'draft');
  assert.deepEqual([...seen.previews[0].jpeg], [1, 2, 3]);
});

test('a malformed text event or frame goes to onError and nowhere else', () => {
  const { stream, socket, seen } = makeStream();
  stream.connect();
  socket().open();
  socket().message('{not json');
  socket().message(new ArrayBuffer(2));
  assert.equal(seen.events.length + seen.previews.length, 0);
  assert.equal(seen.errors.length, 2);
});

test('reconnects back off 500, 1000, 2000 ms and so on, capped at 10 s, and reset after an open', async (t) => {
  assert.deepEqual(DEFAULT_BACKOFF, { initialMs: 500, maxMs: 10000, factor: 2 });
  const { stream, sockets, socket, seen, nextSocketMs } = makeStream(t);
  stream.connect();
  const delays = [];
  for (let i = 0; i < 8; i += 1) {
    socket().drop();
    delays.push(await nextSocketMs());
  }
  assert.deepEqual(delays, [500, 1000, 2000, 4000, 8000, 10000, 10000, 10000]);
  assert.equal(sockets.length, 9);
  socket().open();
  socket().drop();
  assert.equal(await nextSocketMs(), 500);
  const retrying = seen.states.filter((s) => s.state === 'retrying').map((s) => s.info.delayMs);
  assert.deepEqual(retrying.slice(0, 3), [500, 1000, 2000]);
});

test('backoff settings can be changed', async (t) => {
  const { stream, socket, nextSocketMs } = makeStream(t, { backoff: { initialMs: 100, maxMs: 250, factor: 3 } });
  stream.connect();
  const delays = [];
  for (let i = 0; i < 3; i += 1) {
    socket().drop();
    delays.push(await nextSocketMs());
  }
  assert.deepEqual(delays, [100, 250, 250]);
});

test('after close() by the caller there is no reconnect', async (t) => {
  const { stream, sockets, socket, clock, seen } = makeStream(t);
  stream.connect();
  socket().open();
  const first = socket();
  stream.close();
  assert.equal(first.closedWith.code, 1000);
  first.drop(1000); // the close handshake finishing must not bring it back
  await clock.advance(60000, 500);
  assert.equal(sockets.length, 1);
  assert.equal(seen.states.at(-1).state, 'closed');
});

test('close() while waiting to retry cancels the retry', async (t) => {
  const { stream, sockets, socket, clock } = makeStream(t);
  stream.connect();
  socket().drop();
  stream.close();
  await clock.advance(60000, 500);
  assert.equal(sockets.length, 1);
});

test('a 1013 close (too slow: reconnect) reconnects at once, with no timer', async (t) => {
  const { stream, sockets, socket, clock, seen } = makeStream(t);
  stream.connect();
  socket().open();
  socket().drop(1013, 'too slow: reconnect');
  assert.equal(sockets.length, 2);
  await clock.advance(60000, 500);
  assert.equal(sockets.length, 2, 'no second reconnect');
  const retry = seen.states.find((s) => s.state === 'retrying');
  assert.deepEqual(retry.info, { code: 1013, reason: 'too slow: reconnect', delayMs: 0 });
});

test('the subscription is sent on open and sent again after a reconnect', async (t) => {
  const { stream, sockets, socket, nextSocketMs } = makeStream(t);
  stream.subscribe(['j1', 'j2']);
  stream.connect();
  socket().open();
  socket().drop();
  await nextSocketMs();
  socket().open();
  for (const s of sockets) assert.deepEqual(s.sent, [{ type: 'subscribe', job_ids: ['j1', 'j2'] }]);
});

test('subscribe() on an open socket sends at once; an empty list asks for every job', () => {
  const { stream, socket } = makeStream();
  stream.connect();
  socket().open();
  assert.deepEqual(socket().sent, []); // never subscribed: nothing to send
  stream.subscribe([]);
  assert.deepEqual(socket().sent, [{ type: 'subscribe', job_ids: [] }]);
});

test('a cancel made while offline is queued, sent on open, and not sent twice', async (t) => {
  const { stream, sockets, socket, nextSocketMs } = makeStream(t);
  stream.connect();
  stream.cancel('j9');
  assert.deepEqual(socket().sent, []);
  socket().open();
  assert.deepEqual(socket().sent, [{ type: 'cancel', job_id: 'j9' }]);
  stream.cancel('j10');
  assert.deepEqual(socket().sent.at(-1), { type: 'cancel', job_id: 'j10' });
  socket().drop();
  await nextSocketMs();
  socket().open();
  assert.deepEqual(sockets[1].sent, []);
});

test('a cancel queued before the first connect survives a failed attempt', async (t) => {
  const { stream, socket, nextSocketMs } = makeStream(t);
  stream.cancel('j1');
  stream.connect();
  socket().drop();
  await nextSocketMs();
  socket().open();
  assert.deepEqual(socket().sent, [{ type: 'cancel', job_id: 'j1' }]);
});

test('after a reconnect an event with an old seq is dropped and a newer one passes', async (t) => {
  const { stream, socket, seen, nextSocketMs } = makeStream(t);
  stream.connect();
  socket().open();
  const send = (type, jobId, seq) => socket().message(JSON.stringify({ type, job_id: jobId, seq }));
  send('queued', 'j1', 0);
  send('started', 'j1', 1);
  socket().drop();
  await nextSocketMs();
  socket().open();
  send('started', 'j1', 1); // duplicate
  send('queued', 'j2', 0); // another job counts on its own
  send('stage', 'j1', 2);
  socket().message(frame({ type: 'preview', job_id: 'j1', seq: 2 }, [1])); // duplicate seq
  socket().message(frame({ type: 'preview', job_id: 'j1', seq: 3 }, [1]));
  assert.deepEqual(
    seen.events.map((e) => `${e.job_id}:${e.seq}`),
    ['j1:0', 'j1:1', 'j2:0', 'j1:2'],
  );
  assert.deepEqual(seen.previews.map((p) => p.header.seq), [3]);
});

test('messages from a socket that was replaced are ignored', async (t) => {
  const { stream, sockets, socket, clock, seen } = makeStream(t);
  stream.connect();
  socket().open();
  const old = socket();
  old.drop(1013);
  socket().open();
  old.message(JSON.stringify({ type: 'queued', job_id: 'j1', seq: 0 }));
  old.drop();
  await clock.advance(60000, 500);
  assert.equal(seen.events.length, 0);
  assert.equal(sockets.length, 2, 'the old socket’s close brings no reconnect');
});

test('a WebSocket constructor that throws is retried with backoff', async (t) => {
  let calls = 0;
  class Refusing {
    constructor() {
      calls += 1;
      throw new Error('blocked');
    }
  }
  const { stream, seen, nextSocketMs } = makeStream(t, { WebSocket: Refusing });
  stream.connect();
  assert.equal(await nextSocketMs(() => calls), 500);
  assert.equal(await nextSocketMs(() => calls), 1000);
  assert.equal(calls, 3);
  assert.equal(seen.errors.length, 3);
});

test('subscribing to a job lets the sidecar’s replay of what went by unasked through, once', () => {
  const { stream, socket, seen } = makeStream();
  stream.connect();
  socket().open();
  const queued = { type: 'queued', job_id: 'j1', seq: 1 };
  const started = { type: 'started', job_id: 'j1', seq: 2 };
  socket().message(JSON.stringify(queued)); // every job is sent until the first subscribe
  stream.subscribe(['j1']);
  assert.deepEqual(socket().sent.at(-1), { type: 'subscribe', job_ids: ['j1'] });
  socket().message(JSON.stringify({ type: 'subscribed', job_ids: ['j1'] }));
  socket().message(JSON.stringify(queued)); // the replay
  socket().message(JSON.stringify(started)); // then live
  stream.subscribe(['j1', 'j2']); // j1 stays: its replay is not let through again
  socket().message(JSON.stringify(queued));
  assert.deepEqual(
    seen.events.filter((event) => event.job_id === 'j1').map((event) => event.seq),
    [1, 1, 2],
  );
});

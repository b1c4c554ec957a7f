'use strict';
// The panel's connection (connection.js): the token probe retried with backoff while the
// sidecar is not running, waiting for a token when it is refused, and the event stream's
// drops and returns. Node's mock timers (clock.js) stand in for time.
const test = require('node:test');
const assert = require('node:assert/strict');

const { Backoff, Connection, RETRY } = require('../connection.js');
const { EventStream } = require('../events.js');
const { mockClock, flush } = require('./clock.js');

const CONNECTED = { state: 'connected', version: '0.1.0' };
const OFFLINE = { state: 'offline', message: 'The sidecar is not running.' };
const UNAUTHORIZED = { state: 'unauthorized', message: 'Enter the token.' };

// A Connection whose probe answers `answers` in turn (the last one from then on; an Error
// rejects), with fake streams the test drives through their onState.
function setup(t, answers, options = {}) {
  const clock = mockClock(t);
  const probes = [];
  const changes = [];
  const streams = [];
  const calls = { connected: 0, reconnected: 0 };
  const queue = [...answers];
  const connection = new Connection({
    check: async () => {
      probes.push(clock.now());
      const answer = queue.length > 1 ? queue.shift() : queue[0];
      if (answer instanceof Error) throw answer;
      return answer;
    },
    onChange: (state, info) => changes.push([state, info]),
    openStream: (onState) => {
      const stream = { onState, connects: 0, closed: false };
      stream.connect = () => (stream.connects += 1);
      stream.close = () => (stream.closed = true);
      streams.push(stream);
      return stream;
    },
    onConnected: () => (calls.connected += 1),
    onReconnected: () => (calls.reconnected += 1),
    ...options,
  });
  return { clock, connection, probes, changes, streams, calls, queue };
}

const states = (changes) => changes.map(([state]) => state);

test('a backoff doubles from its first wait up to its cap, and starts over after reset', () => {
  const backoff = new Backoff({ initialMs: 1000, maxMs: 10000 });
  assert.deepEqual([1, 2, 3, 4, 5, 6].map(() => backoff.next()), [1000, 2000, 4000, 8000, 10000, 10000]);
  backoff.reset();
  assert.equal(backoff.next(), 1000);
  const tripling = new Backoff({ initialMs: 100, maxMs: 250, factor: 3 });
  assert.deepEqual([tripling.next(), tripling.next(), tripling.next()], [100, 250, 250]);
});

test('the panel retries 1 s doubling to 10 s while the sidecar is not running, then connects', async (t) => {
  assert.deepEqual(RETRY, { initialMs: 1000, maxMs: 10000, factor: 2 });
  const s = setup(t, [OFFLINE, OFFLINE, OFFLINE, OFFLINE, OFFLINE, OFFLINE, CONNECTED]);
  await s.connection.start();
  await s.clock.until(() => s.connection.state === 'connected', 'connected', { stepMs: 500 });
  assert.deepEqual(s.probes, [0, 1000, 3000, 7000, 15000, 25000, 35000]);
  const offline = s.changes.filter(([state]) => state === 'offline').map(([, info]) => info.retryMs);
  assert.deepEqual(offline, [1000, 2000, 4000, 8000, 10000, 10000]);
  assert.deepEqual(s.changes[0], ['connecting', {}]);
  assert.deepEqual(s.changes.at(-1), ['connected', { version: '0.1.0' }]);
  assert.equal(s.streams.length, 1, 'the event stream is opened once connected');
  assert.equal(s.streams[0].connects, 1);
  assert.equal(s.calls.connected, 1);
  await s.clock.advance(60000, 1000);
  assert.equal(s.probes.length, 7, 'no probe once connected');
});

test('a probe that rejects counts as offline, with its message, and is tried again', async (t) => {
  const s = setup(t, [new TypeError('Network request failed'), CONNECTED]);
  await s.connection.start();
  assert.deepEqual(s.changes.at(-1), ['offline', { message: 'Network request failed', retryMs: 1000 }]);
  await s.clock.advance(1000);
  assert.equal(s.connection.state, 'connected');
  assert.deepEqual(s.probes, [0, 1000]);
});

test('a refused token waits for a new one; retryNow probes at once with the backoff reset', async (t) => {
  const s = setup(t, [OFFLINE, OFFLINE, UNAUTHORIZED]);
  await s.connection.start();
  await s.clock.advance(3000, 500);
  assert.deepEqual(s.probes, [0, 1000, 3000]);
  assert.deepEqual(s.changes.at(-1), ['unauthorized', { message: 'Enter the token.' }]);
  await s.clock.advance(60000, 1000);
  assert.equal(s.probes.length, 3, 'no retries without a new token');

  s.queue.splice(0, s.queue.length, OFFLINE, CONNECTED);
  await s.connection.retryNow();
  assert.deepEqual(s.probes, [0, 1000, 3000, 63000]);
  assert.equal(s.changes.at(-1)[1].retryMs, 1000, 'the backoff starts over');
  await s.clock.advance(1000);
  assert.equal(s.connection.state, 'connected');
});

test('a new token while a retry is pending replaces that retry', async (t) => {
  const s = setup(t, [OFFLINE, CONNECTED]);
  await s.connection.start();
  await s.clock.advance(500);
  await s.connection.retryNow();
  assert.equal(s.connection.state, 'connected');
  await s.clock.advance(5000, 500);
  assert.deepEqual(s.probes, [0, 500], 'the pending retry was cancelled');
});

test('stop() cancels the pending retry', async (t) => {
  const s = setup(t, [OFFLINE]);
  await s.connection.start();
  s.connection.stop();
  await s.clock.advance(60000, 1000);
  assert.deepEqual(s.probes, [0]);
});

test('a probe answered after stop() changes nothing', async (t) => {
  let answer;
  const s = setup(t, [CONNECTED], {
    check: () => new Promise((resolve) => (answer = resolve)),
  });
  const starting = s.connection.start();
  s.connection.stop();
  answer(CONNECTED);
  await starting;
  assert.deepEqual(states(s.changes), ['connecting'], 'nothing after stop');
  assert.equal(s.streams.length, 0);
});

test('stop() closes the event stream, and its last states are not shown', async (t) => {
  const s = setup(t, [CONNECTED]);
  await s.connection.start();
  s.connection.stop();
  assert.equal(s.streams[0].closed, true);
  s.streams[0].onState('retrying', { delayMs: 500 });
  assert.equal(s.connection.state, 'connected', 'a closing stream is not shown as a drop');
});

test('a dropped event stream shows offline with its retry, and connected again on its return', async (t) => {
  const s = setup(t, [CONNECTED]);
  await s.connection.start();
  const [stream] = s.streams;
  stream.onState('open', {});
  assert.equal(s.calls.reconnected, 0, 'the first open is no return');
  stream.onState('retrying', { code: 1006, delayMs: 2000 });
  assert.deepEqual(s.changes.at(-1), ['offline', { dropped: true, retryMs: 2000 }]);
  stream.onState('connecting', { attempt: 1 });
  stream.onState('open', {});
  assert.deepEqual(s.changes.at(-1), ['connected', { reconnected: true }]);
  assert.equal(s.calls.reconnected, 1);
  stream.onState('open', {});
  assert.equal(s.calls.reconnected, 1, 'once per drop');
});

test('connecting again (a new token) closes the old stream and opens a new one', async (t) => {
  const s = setup(t, [CONNECTED]);
  await s.connection.start();
  await s.connection.retryNow();
  assert.equal(s.streams.length, 2);
  assert.equal(s.streams[0].closed, true);
  assert.equal(s.streams[1].connects, 1);
  assert.equal(s.calls.connected, 2);
});

test('the event stream reconnects by the same backoff, 500 ms first, and the panel shows its wait', async (t) => {
  const sockets = [];
  class FakeWebSocket {
    constructor() {
      sockets.push(this);
    }
    send() {}
    close() {}
  }
  const s = setup(t, [CONNECTED], {
    openStream: (onState) => new EventStream({ WebSocket: FakeWebSocket, token: 't', onState }),
  });
  await s.connection.start();
  sockets[0].onopen({});
  sockets[0].onclose({ code: 1006 });
  assert.deepEqual(s.changes.at(-1), ['offline', { dropped: true, retryMs: 500 }]);
  await s.clock.advance(499);
  assert.equal(sockets.length, 1);
  await s.clock.advance(1);
  assert.equal(sockets.length, 2, 'reconnected after 500 ms');
  sockets[1].onopen({});
  await flush();
  assert.deepEqual(s.changes.at(-1), ['connected', { reconnected: true }]);
  assert.equal(s.calls.reconnected, 1);
  s.connection.stop();
});

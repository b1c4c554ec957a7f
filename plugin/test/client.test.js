'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const { checkConnection } = require('../client.js');

function fakeFetch(routes) {
  const calls = [];
  const fn = async (url, init = {}) => {
    calls.push({ url, init });
    const route = routes[`${init.method || 'GET'} ${new URL(url).pathname}`];
    if (route instanceof Error) throw route;
    if (!route) return { ok: false, status: 404, json: async () => ({}) };
    const status = typeof route.status === 'function' ? route.status(init) : route.status;
    return { ok: status < 400, status, json: async () => route.body };
  };
  fn.calls = calls;
  return fn;
}

const health = { status: 'ok', version: '0.1.0', device: 'auto', engines: {}, queue: { queued: 0, running: 0 } };

test('a sidecar that is not running reads as offline with a hint', async () => {
  const fetch = fakeFetch({ 'GET /v1/health': new TypeError('connection refused') });
  const result = await checkConnection(fetch);
  assert.equal(result.state, 'offline');
  assert.match(result.message, /not running/);
});

test('without a token the panel asks for one', async () => {
  const fetch = fakeFetch({ 'GET /v1/health': { status: 200, body: health } });
  const result = await checkConnection(fetch);
  assert.equal(result.state, 'unauthorized');
  assert.equal(fetch.calls.length, 1);
});

test('a refused token and an accepted one are told apart', async () => {
  const routes = {
    'GET /v1/health': { status: 200, body: health },
    ['HEAD /v1/images/' + '0'.repeat(64)]: {
      status: (init) => (init.headers.Authorization === 'Bearer good' ? 404 : 401),
    },
  };
  assert.equal((await checkConnection(fakeFetch(routes), { token: 'bad' })).state, 'unauthorized');
  const ok = await checkConnection(fakeFetch(routes), { token: 'good' });
  assert.equal(ok.state, 'connected');
  assert.equal(ok.version, '0.1.0');
});

'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const { checkConnection, SidecarClient, SidecarError } = require('../client.js');

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

// A fetch that records each call and answers with real Response objects.
function recordingFetch(answer = () => Response.json({})) {
  const calls = [];
  const fn = async (url, init = {}) => {
    const call = { url: new URL(url), method: init.method, headers: init.headers || {}, body: init.body };
    calls.push(call);
    return answer(call);
  };
  fn.calls = calls;
  return fn;
}

function clientWith(answer) {
  const fetch = recordingFetch(answer);
  return { fetch, client: new SidecarClient({ fetch, baseUrl: 'http://127.0.0.1:7431/', token: 'tok' }) };
}

const errorBody = (code, message, details = {}) => ({ error: { code, message, details } });

test('every request carries the bearer token and answers the parsed JSON', async () => {
  const { fetch, client } = clientWith(() => Response.json(health));
  assert.deepEqual(await client.health(), health);
  await client.jobs();
  for (const call of fetch.calls) assert.equal(call.headers.Authorization, 'Bearer tok');
  assert.deepEqual(fetch.calls.map((c) => `${c.method} ${c.url.href}`), [
    'GET http://127.0.0.1:7431/v1/health',
    'GET http://127.0.0.1:7431/v1/jobs',
  ]);
});

test('an error body becomes a SidecarError with its status, code, message and details', async () => {
  const body = errorBody('image_not_found', 'no stored image', { image_id: 'ab' });
  const { client } = clientWith(() => Response.json(body, { status: 404 }));
  await assert.rejects(client.submit({ op: 'beauty', image_id: 'ab' }), (error) => {
    assert.ok(error instanceof SidecarError);
    assert.equal(error.status, 404);
    assert.equal(error.code, 'image_not_found');
    assert.equal(error.message, 'no stored image');
    assert.deepEqual(error.details, { image_id: 'ab' });
    return true;
  });
});

test('an error without a JSON body is named from its status', async () => {
  const { client } = clientWith(() => new Response('Bad Gateway', { status: 502 }));
  await assert.rejects(client.job('j1'), { name: 'SidecarError', status: 502, code: 'http_error' });
});

test('a fetch that rejects gives the offline code', async () => {
  const { client } = clientWith(() => {
    throw new TypeError('connection refused');
  });
  await assert.rejects(client.health(), (error) => {
    assert.ok(error instanceof SidecarError);
    assert.equal(error.code, 'offline');
    assert.equal(error.status, 0);
    assert.match(error.message, /connection refused/);
    return true;
  });
});

test('hasImage is true on 200, false on 404, and throws on a refused token', async () => {
  const { fetch, client } = clientWith(({ url }) => {
    const status = { '/v1/images/known': 200, '/v1/images/unknown': 404 }[url.pathname] ?? 401;
    return new Response(null, { status });
  });
  assert.equal(await client.hasImage('known'), true);
  assert.equal(await client.hasImage('unknown'), false);
  await assert.rejects(client.hasImage('other'), { code: 'unauthorized', status: 401 });
  assert.ok(fetch.calls.every((c) => c.method === 'HEAD'));
});

test('uploadRaw posts the bytes as octet-stream with the X-Image-* headers', async () => {
  const stored = { image_id: 'f'.repeat(64), width: 2, height: 1, channels: 3, depth: 8 };
  const { fetch, client } = clientWith(() => Response.json(stored, { status: 201 }));
  const bytes = new Uint8Array([1, 2, 3, 4, 5, 6]);
  assert.deepEqual(await client.uploadRaw(bytes, { width: 2, height: 1, channels: 3, depth: 8 }), stored);
  const [call] = fetch.calls;
  assert.equal(`${call.method} ${call.url.pathname}`, 'POST /v1/images');
  assert.equal(call.body, bytes);
  assert.deepEqual(call.headers, {
    Authorization: 'Bearer tok',
    'Content-Type': 'application/octet-stream',
    'X-Image-Width': '2',
    'X-Image-Height': '1',
    'X-Image-Channels': '3',
    'X-Image-Depth': '8',
  });
});

test('result asks for raw by default and reads the shape from the X-Image-* headers', async () => {
  const pixels = new Uint8Array([9, 8, 7, 6, 5, 4, 3, 2]);
  const { fetch, client } = clientWith(
    () =>
      new Response(pixels, {
        headers: {
          'Content-Type': 'application/octet-stream',
          'X-Image-Width': '1',
          'X-Image-Height': '1',
          'X-Image-Channels': '4',
          'X-Image-Depth': '16',
        },
      }),
  );
  const result = await client.result('j1', { intensity: 0.5, maxSide: 512 });
  assert.ok(result.bytes instanceof Uint8Array);
  assert.deepEqual([...result.bytes], [...pixels]);
  assert.deepEqual(
    { width: result.width, height: result.height, channels: result.channels, depth: result.depth },
    { width: 1, height: 1, channels: 4, depth: 16 },
  );
  const { url } = fetch.calls[0];
  assert.equal(url.pathname, '/v1/jobs/j1/result');
  assert.deepEqual(Object.fromEntries(url.searchParams), { format: 'raw', intensity: '0.5', max_side: '512' });
  await client.result('j1', { format: 'png' });
  assert.equal(fetch.calls[1].url.search, '?format=png');
});

test('preview fetches a JPEG by job and seq, asking for format=jpeg by default', async () => {
  const bytes = new Uint8Array([0xff, 0xd8, 0xff, 0xe0]);
  const { fetch, client } = clientWith(() => new Response(bytes, { headers: { 'Content-Type': 'image/jpeg' } }));
  const answer = await client.preview('j1', 3);
  assert.deepEqual(Object.keys(answer).sort(), ['bytes', 'contentType']);
  assert.ok(answer.bytes instanceof Uint8Array);
  assert.deepEqual([...answer.bytes], [...bytes]);
  assert.equal(answer.contentType, 'image/jpeg');
  const [call] = fetch.calls;
  assert.equal(`${call.method} ${call.url.pathname}${call.url.search}`, 'GET /v1/jobs/j1/previews/3?format=jpeg');
  assert.equal(call.headers.Authorization, 'Bearer tok');
});

test('preview with format raw answers pixels shaped by the X-Image-* headers', async () => {
  const rgb = new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
  const { fetch, client } = clientWith(
    () =>
      new Response(rgb, {
        headers: {
          'Content-Type': 'application/octet-stream',
          'X-Image-Width': '2',
          'X-Image-Height': '2',
          'X-Image-Channels': '3',
          'X-Image-Depth': '8',
        },
      }),
  );
  const answer = await client.preview('j/1', '12', { format: 'raw' });
  assert.deepEqual(answer, { bytes: rgb, width: 2, height: 2, channels: 3, depth: 8 });
  const [call] = fetch.calls;
  assert.equal(call.url.pathname, '/v1/jobs/j%2F1/previews/12');
  assert.deepEqual(Object.fromEntries(call.url.searchParams), { format: 'raw' });
});

test('a preview the sidecar no longer holds is a not_found error', async () => {
  const body = errorBody('not_found', 'that preview is gone; a newer one replaced it', { seq: '3' });
  const { client } = clientWith(() => Response.json(body, { status: 404 }));
  await assert.rejects(client.preview('j1', 3, { format: 'raw' }), {
    name: 'SidecarError',
    status: 404,
    code: 'not_found',
    message: 'that preview is gone; a newer one replaced it',
  });
});

test('a result before the job is done is a conflict', async () => {
  const body = errorBody('conflict', 'the job is running, not done', { state: 'running' });
  const { client } = clientWith(() => Response.json(body, { status: 409 }));
  await assert.rejects(client.result('j1'), { code: 'conflict', details: { state: 'running' } });
});

test('job bodies use the API field names: submit as given, patch and cancel by id', async () => {
  const { fetch, client } = clientWith(() => Response.json({ job_id: 'j1', state: 'queued' }, { status: 202 }));
  const body = {
    op: 'beauty',
    image_id: 'a'.repeat(64),
    intensity: 0.8,
    priority: 'active',
    document_id: 'doc 1',
    layer_stack_hash: 'h',
    preview: { progressive: true, stream_steps: false },
  };
  assert.deepEqual(await client.submit(body), { job_id: 'j1', state: 'queued' });
  await client.patch('j1', 'hero');
  await client.cancel('j/1');
  await client.job('j1');
  const [submit, patch, cancel, job] = fetch.calls;
  assert.equal(`${submit.method} ${submit.url.pathname}`, 'POST /v1/jobs');
  assert.equal(submit.headers['Content-Type'], 'application/json');
  assert.deepEqual(JSON.parse(submit.body), body);
  assert.equal(`${patch.method} ${patch.url.pathname}`, 'PATCH /v1/jobs/j1');
  assert.deepEqual(JSON.parse(patch.body), { priority: 'hero' });
  assert.equal(`${cancel.method} ${cancel.url.pathname}`, 'DELETE /v1/jobs/j%2F1');
  assert.equal(`${job.method} ${job.url.pathname}`, 'GET /v1/jobs/j1');
});

test('precompute, actions and predictions send snake_case fields', async () => {
  const { fetch, client } = clientWith(() => Response.json({}));
  await client.precompute({ imageId: 'a'.repeat(64), documentId: 'doc', layerStackHash: 'h', ops: ['beauty'] });
  await client.precompute({ imageId: 'b'.repeat(64), documentId: 'doc' });
  await client.stopPrecompute('doc 2');
  await client.recordAction('doc', 'dodge_burn');
  await client.predict('volume');
  const [full, minimal, stop, action, predict] = fetch.calls;
  assert.equal(`${full.method} ${full.url.pathname}`, 'POST /v1/precompute');
  assert.deepEqual(JSON.parse(full.body), {
    image_id: 'a'.repeat(64),
    document_id: 'doc',
    layer_stack_hash: 'h',
    ops: ['beauty'],
  });
  assert.deepEqual(JSON.parse(minimal.body), { image_id: 'b'.repeat(64), document_id: 'doc' });
  assert.equal(`${stop.method} ${stop.url.pathname}`, 'DELETE /v1/precompute/doc%202');
  assert.equal(`${action.method} ${action.url.pathname}`, 'POST /v1/actions');
  assert.deepEqual(JSON.parse(action.body), { document_id: 'doc', action: 'dodge_burn' });
  assert.equal(`${predict.method} ${predict.url.pathname}${predict.url.search}`, 'GET /v1/predictions?after=volume');
});

test('previewUrl makes an SSE preview path absolute, with the token for <img>', () => {
  const client = new SidecarClient({ fetch: async () => {}, baseUrl: 'http://127.0.0.1:7431/', token: 't&k' });
  assert.equal(
    client.previewUrl('/v1/jobs/j1/previews/3'),
    'http://127.0.0.1:7431/v1/jobs/j1/previews/3?token=t%26k',
  );
  const anonymous = new SidecarClient({ fetch: async () => {} });
  assert.equal(anonymous.previewUrl('/v1/jobs/j1/previews/3'), 'http://127.0.0.1:7431/v1/jobs/j1/previews/3');
});

test('without a token no Authorization header is sent', async () => {
  const fetch = recordingFetch(() => Response.json(health));
  await new SidecarClient({ fetch }).health();
  assert.equal(fetch.calls[0].headers.Authorization, undefined);
});

test('uploadRaw sends the body rawBody makes of the bytes (a Blob in browsers)', async () => {
  const stored = { image_id: 'a'.repeat(64), width: 2, height: 1, channels: 3, depth: 8 };
  const fetch = fakeFetch({ 'POST /v1/images': { status: 201, body: stored } });
  const wrapped = [];
  const client = new SidecarClient({
    fetch,
    token: 't',
    rawBody: (bytes) => {
      wrapped.push(bytes);
      return new Blob([bytes]);
    },
  });
  const bytes = new Uint8Array([1, 2, 3, 4, 5, 6]);
  await client.uploadRaw(bytes, { width: 2, height: 1, channels: 3, depth: 8 });
  assert.deepEqual(wrapped, [bytes]);
  const body = fetch.calls[0].init.body;
  assert.ok(body instanceof Blob);
  assert.deepEqual(new Uint8Array(await body.arrayBuffer()), bytes);
});

test('a network error on the token probe is "offline", not a rejection', async () => {
  const fetchFn = async (url, init = {}) => {
    if (init.method === 'HEAD') throw new TypeError('Network request failed');
    return { ok: true, status: 200, json: async () => ({ version: '0.1.0' }) };
  };
  const result = await checkConnection(fetchFn, { token: 't' });
  assert.equal(result.state, 'offline');
  assert.match(result.message, /not running/);
});

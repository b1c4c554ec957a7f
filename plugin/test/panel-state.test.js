'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const { Panel } = require('../panel-state.js');
const { checkAdapter } = require('../adapter-contract.js');
const { createRow } = require('../queue.js');

const DOCUMENT_CALLS = new Set([
  'runAsOneHistoryStep',
  'createResultLayer',
  'replaceLayerPixels',
  'setLayerOpacity',
]);

function pixels(fill) {
  return { bytes: new Uint8Array(6).fill(fill), width: 2, height: 1, channels: 3, depth: 8 };
}

// Records every call, whether it ran inside runAsOneHistoryStep, and the history steps made.
function fakeAdapter() {
  const adapter = {
    doc: { id: 'doc-1', name: 'portrait.psd', layerStackHash: 'hash-1' },
    calls: [],
    steps: [],
    layers: new Map(),
    depth: 0,
    record(name, args) {
      this.calls.push({ name, args, inStep: this.depth > 0 });
    },
    named(name) {
      return this.calls.filter((call) => call.name === name);
    },
    async activeDocument() {
      this.record('activeDocument', []);
      return this.doc && { ...this.doc };
    },
    async readPixels(docId) {
      this.record('readPixels', [docId]);
      return pixels(10);
    },
    async runAsOneHistoryStep(docId, name, fn) {
      this.record('runAsOneHistoryStep', [docId, name]);
      this.depth += 1;
      try {
        const value = await fn();
        this.steps.push({ docId, name });
        return value;
      } finally {
        this.depth -= 1;
      }
    },
    async createResultLayer(docId, layer) {
      this.record('createResultLayer', [docId, layer]);
      if (!this.depth) throw new Error('createResultLayer outside a history step');
      const layerId = `layer-${this.layers.size + 1}`;
      this.layers.set(layerId, { ...layer });
      return layerId;
    },
    async replaceLayerPixels(docId, layerId, replacement) {
      this.record('replaceLayerPixels', [docId, layerId, replacement]);
      this.layers.get(layerId).pixels = replacement;
    },
    async setLayerOpacity(docId, layerId, percent) {
      this.record('setLayerOpacity', [docId, layerId, percent]);
      this.layers.get(layerId).opacity = percent;
    },
    async showThumbnail(jpeg) {
      this.record('showThumbnail', [jpeg]);
    },
  };
  return adapter;
}

function fakeClient({ cached = false } = {}) {
  const calls = [];
  const named = (name) => calls.filter((call) => call.name === name).map((call) => call.args);
  let images = 0;
  let jobs = 0;
  return {
    calls,
    named,
    cached,
    async hasImage(id) {
      calls.push({ name: 'hasImage', args: [id] });
      return false;
    },
    async uploadRaw(bytes, shape) {
      calls.push({ name: 'uploadRaw', args: [bytes, shape] });
      images += 1;
      return { image_id: `img-${images}`, ...shape };
    },
    async submit(body) {
      calls.push({ name: 'submit', args: [body] });
      if (this.refuse) throw this.refuse;
      jobs += 1;
      const answer = this.cached
        ? { job_id: `job-${jobs}`, state: 'done', position: null, cached: true }
        : { job_id: `job-${jobs}`, state: 'queued', position: 0, cached: false };
      this.onSubmit?.(answer);
      return answer;
    },
    async result(jobId, options) {
      calls.push({ name: 'result', args: [jobId, options] });
      return { ...pixels(200 + Number(jobId.split('-')[1])), contentType: 'application/octet-stream' };
    },
    async cancel(jobId) {
      calls.push({ name: 'cancel', args: [jobId] });
    },
    async patch(jobId, priority) {
      calls.push({ name: 'patch', args: [jobId, priority] });
    },
    async precompute(request) {
      calls.push({ name: 'precompute', args: [request] });
    },
    async stopPrecompute(documentId) {
      calls.push({ name: 'stopPrecompute', args: [documentId] });
    },
    async recordAction(documentId, action) {
      calls.push({ name: 'recordAction', args: [documentId, action] });
    },
  };
}

// Stands in for EventStream: listen({onEvent, onPreview}); the test drives it with emit.
function fakeEvents() {
  const listeners = new Set();
  return {
    listen(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    emit(kind, ...args) {
      for (const listener of listeners) {
        if (kind === 'event') listener.onEvent(...args);
        else listener.onPreview(...args);
      }
    },
  };
}

function setup(options = {}) {
  const adapter = fakeAdapter();
  const client = fakeClient(options);
  const events = fakeEvents();
  const states = [];
  const panel = new Panel({ adapter, client, events, onChange: (state) => states.push(state) });
  return { adapter, client, events, panel, states };
}

// Lets the panel's awaits on the fakes run to where it waits for events.
async function settle() {
  for (let i = 0; i < 20; i += 1) await new Promise((resolve) => setImmediate(resolve));
}

const jpeg = (tag) => new Uint8Array([0xff, 0xd8, tag]);
let seq = 0;
const event = (type, jobId, fields = {}) => ({
  type,
  job_id: jobId,
  seq: ++seq,
  ts: new Date().toISOString(),
  ...fields,
});
const preview = (jobId, level, fields = {}) => ({
  type: 'preview',
  job_id: jobId,
  seq: ++seq,
  level,
  width: 2,
  height: 1,
  ...fields,
});

async function applied(setupResult, op = 'beauty', options) {
  const running = setupResult.panel.apply(op, options);
  await settle();
  const { client, events } = setupResult;
  if (!client.cached) events.emit('event', event('done', `job-${client.named('submit').length}`, { cached: false }));
  return running;
}

test('one Apply makes exactly one history step holding one new layer with the final pixels', async () => {
  const s = setup();
  const running = s.panel.apply('dodge_burn');
  await settle();
  s.events.emit('event', event('started', 'job-1'));
  s.events.emit('event', event('done', 'job-1', { cached: false }));
  const answer = await running;

  assert.deepEqual(answer, { jobId: 'job-1', layerId: 'layer-1' });
  assert.deepEqual(s.adapter.steps, [{ docId: 'doc-1', name: 'ML Retouch: Dodge & Burn' }]);
  const created = s.adapter.named('createResultLayer');
  assert.equal(created.length, 1);
  assert.equal(created[0].inStep, true);
  assert.deepEqual(created[0].args[1], { name: 'Dodge & Burn', pixels: pixels(201), opacity: 100 });
  assert.deepEqual(s.client.named('result'), [['job-1', { format: 'raw' }]]);
  assert.deepEqual(s.client.named('submit')[0][0], {
    op: 'dodge_burn',
    image_id: 'img-1',
    intensity: 1,
    params: {},
    priority: 'active',
    document_id: 'doc-1',
    layer_stack_hash: 'hash-1',
    preview: { progressive: true, stream_steps: false },
  });
  assert.deepEqual(s.client.named('recordAction'), [['doc-1', 'dodge_burn']]);
  assert.equal(s.panel.state.phase, 'done');
});

test('the state goes uploading, running, placing, done and follows progress, stage and time left', async () => {
  const s = setup();
  const running = s.panel.apply('beauty', { intensity: 0.5, params: { strength: 0.7 } });
  await settle();
  s.events.emit('event', event('progress', 'job-1', { progress: 0.25, stage: 'preview', eta_s: 8 }));
  assert.deepEqual(
    { ...s.panel.state },
    { phase: 'running', progress: 0.25, stage: 'preview', etaS: 8, message: '' },
  );
  s.events.emit('event', event('done', 'job-1', { cached: false }));
  await running;
  const phases = s.states.map((state) => state.phase).filter((phase, i, all) => phase !== all[i - 1]);
  assert.deepEqual(phases, ['uploading', 'running', 'placing', 'done']);
  assert.equal(s.client.named('submit')[0][0].intensity, 0.5);
  assert.deepEqual(s.client.named('submit')[0][0].params, { strength: 0.7 });
});

test('previews reach only the thumbnail, never the document or its history', async () => {
  const s = setup();
  s.panel.streamSteps = true;
  const running = s.panel.apply('beauty');
  await settle();
  s.events.emit('preview', preview('job-1', 'draft'), jpeg(1));
  s.events.emit('preview', preview('job-1', 'preview'), jpeg(2));
  s.events.emit('preview', preview('job-1', 'step', { step: 3, total_steps: 20 }), jpeg(3));
  s.events.emit('preview', preview('job-1', 'refine'), jpeg(4));
  await settle();

  assert.deepEqual(
    s.adapter.named('showThumbnail').map((call) => call.args[0]),
    [null, jpeg(1), jpeg(2), jpeg(3), jpeg(4)],
  );
  assert.equal(s.adapter.calls.filter((call) => DOCUMENT_CALLS.has(call.name)).length, 0);
  assert.equal(s.adapter.steps.length, 0);
  assert.equal(s.client.named('result').length, 0, 'a preview fetches nothing');

  s.events.emit('event', event('done', 'job-1', { cached: false }));
  await running;
  assert.equal(s.adapter.steps.length, 1);
  assert.ok(s.adapter.named('showThumbnail').every((call) => !call.inStep));
});

test('step previews reach the thumbnail only while streamSteps is on', async () => {
  const s = setup();
  const first = s.panel.apply('beauty');
  await settle();
  s.events.emit('preview', preview('job-1', 'step', { step: 1, total_steps: 20 }), jpeg(1));
  s.events.emit('preview', preview('job-1', 'draft'), jpeg(2));
  await settle();
  assert.deepEqual(s.adapter.named('showThumbnail').map((call) => call.args[0]), [null, jpeg(2)]);
  assert.equal(s.client.named('submit')[0][0].preview.stream_steps, false);
  s.events.emit('event', event('done', 'job-1', { cached: false }));
  await first;

  s.panel.streamSteps = true;
  const second = s.panel.apply('volume');
  await settle();
  assert.equal(s.client.named('submit')[1][0].preview.stream_steps, true);
  s.events.emit('preview', preview('job-2', 'step', { step: 1, total_steps: 20 }), jpeg(3));
  await settle();
  assert.deepEqual(s.adapter.named('showThumbnail').map((call) => call.args[0]), [null, jpeg(2), null, jpeg(3)]);
  s.events.emit('event', event('done', 'job-2', { cached: false }));
  await second;
});

test('previews of another job do not reach the thumbnail', async () => {
  const s = setup();
  const running = s.panel.apply('beauty');
  await settle();
  s.events.emit('preview', preview('job-99', 'draft'), jpeg(9));
  await settle();
  assert.deepEqual(s.adapter.named('showThumbnail').map((call) => call.args[0]), [null]);
  s.events.emit('event', event('done', 'job-1', { cached: false }));
  await running;
});

test('a cached answer places the layer without waiting for events', async () => {
  const s = setup({ cached: true });
  const answer = await s.panel.apply('beauty');
  assert.deepEqual(answer, { jobId: 'job-1', layerId: 'layer-1' });
  assert.equal(s.adapter.steps.length, 1);
  assert.equal(s.adapter.named('createResultLayer').length, 1);
  assert.equal(s.panel.state.phase, 'done');
});

test('a job that finishes before its submit is answered is still placed', async () => {
  const s = setup();
  s.client.onSubmit = (answer) => s.events.emit('event', event('done', answer.job_id, { cached: false }));
  await s.panel.apply('beauty');
  assert.equal(s.adapter.steps.length, 1);
  assert.equal(s.panel.rows[0].state, 'done');
});

test('a second Apply on an unchanged document skips the upload; a new layer-stack hash uploads again', async () => {
  const s = setup({ cached: true });
  await s.panel.apply('beauty');
  await s.panel.apply('volume');
  assert.equal(s.client.named('uploadRaw').length, 1);
  assert.equal(s.adapter.named('readPixels').length, 1);
  assert.deepEqual(s.client.named('submit').map(([body]) => body.image_id), ['img-1', 'img-1']);

  s.adapter.doc.layerStackHash = 'hash-2';
  await s.panel.historyChanged({ ...s.adapter.doc });
  await s.panel.apply('color');
  assert.equal(s.client.named('uploadRaw').length, 2);
  const last = s.client.named('submit')[2][0];
  assert.deepEqual([last.image_id, last.layer_stack_hash], ['img-2', 'hash-2']);
});

test('dragging the slider changes opacity live with no history step; releasing commits exactly one', async () => {
  const s = setup({ cached: true });
  await s.panel.apply('beauty');
  const stepsAfterApply = s.adapter.steps.length;
  for (const percent of [90, 70, 55, 40]) await s.panel.slider(percent);

  const live = s.adapter.named('setLayerOpacity');
  assert.deepEqual(live.map((call) => call.args), [90, 70, 55, 40].map((p) => ['doc-1', 'layer-1', p]));
  assert.ok(live.every((call) => !call.inStep));
  assert.equal(s.adapter.steps.length, stepsAfterApply);
  assert.equal(s.client.named('submit').length, 1, 'no re-inference');

  await s.panel.sliderReleased(40);
  assert.equal(s.adapter.steps.length, stepsAfterApply + 1);
  const committed = s.adapter.named('setLayerOpacity').at(-1);
  assert.deepEqual([committed.args, committed.inStep], [['doc-1', 'layer-1', 40], true]);
  assert.equal(s.adapter.layers.get('layer-1').opacity, 40);
});

test('Refine replaces the layer pixels in place, in one history step, back at full opacity', async () => {
  const s = setup();
  await applied(s, 'beauty', { params: { strength: 0.8 } });
  await s.panel.slider(60);
  const refining = s.panel.refine(60);
  await settle();
  s.events.emit('event', event('done', 'job-2', { cached: false }));
  const answer = await refining;

  assert.deepEqual(answer, { jobId: 'job-2', layerId: 'layer-1' });
  const body = s.client.named('submit')[1][0];
  assert.deepEqual([body.op, body.image_id, body.intensity, body.params], ['beauty', 'img-1', 0.6, { strength: 0.8 }]);
  assert.equal(s.client.named('uploadRaw').length, 1, 'Refine re-uses the input of the Apply');
  assert.equal(s.adapter.named('createResultLayer').length, 1, 'no new layer');
  assert.equal(s.adapter.steps.length, 2);
  assert.equal(s.adapter.steps[1].name, 'ML Retouch: Refine Beauty');
  const [replaced] = s.adapter.named('replaceLayerPixels');
  assert.deepEqual([replaced.args[1], replaced.args[2], replaced.inStep], ['layer-1', pixels(202), true]);
  const opacity = s.adapter.named('setLayerOpacity').at(-1);
  assert.deepEqual([opacity.args[2], opacity.inStep], [100, true]);
});

test('a failed job leaves no layer and no history step and shows the sidecar message', async () => {
  const s = setup();
  const running = s.panel.apply('beauty');
  await settle();
  s.events.emit('preview', preview('job-1', 'draft'), jpeg(1));
  const error = { code: 'engine_unavailable', message: 'The diffusion engine is not loaded.', details: {} };
  s.events.emit('event', event('failed', 'job-1', { error }));
  assert.equal(await running, null);

  assert.equal(s.adapter.steps.length, 0);
  assert.equal(s.adapter.calls.filter((call) => DOCUMENT_CALLS.has(call.name)).length, 0);
  assert.deepEqual(s.panel.state, {
    phase: 'failed',
    progress: 0,
    stage: null,
    etaS: null,
    message: 'The diffusion engine is not loaded.',
  });
  assert.equal(s.client.named('result').length, 0);
  assert.equal(s.client.named('recordAction').length, 0);
  assert.equal(s.adapter.named('showThumbnail').at(-1).args[0], null, 'the draft of a failed job is cleared');
});

test('a refused submit shows the sidecar message, not a stack trace', async () => {
  const s = setup();
  s.client.refuse = Object.assign(new Error('No stored image with that id.'), { code: 'image_not_found' });
  assert.equal(await s.panel.apply('beauty'), null);
  assert.equal(s.panel.state.phase, 'failed');
  assert.equal(s.panel.state.message, 'No stored image with that id.');
  assert.doesNotMatch(s.panel.state.message, /\bat\b.*\.js/);
  assert.equal(s.adapter.steps.length, 0);
});

test('Apply with no open document fails with a plain message', async () => {
  const s = setup();
  s.adapter.doc = null;
  await s.panel.apply('beauty');
  assert.deepEqual([s.panel.state.phase, s.panel.state.message], ['failed', 'Open a document first.']);
  assert.equal(s.client.named('submit').length, 0);
});

test('a cancelled job leaves no layer and returns the panel to idle', async () => {
  const s = setup();
  const running = s.panel.apply('beauty');
  await settle();
  await s.panel.cancelJob();
  assert.deepEqual(s.client.named('cancel'), [['job-1']]);
  s.events.emit('event', event('cancelled', 'job-1'));
  assert.equal(await running, null);
  assert.equal(s.adapter.steps.length, 0);
  assert.equal(s.panel.state.phase, 'idle');
});

test('starring a queued row sends the PATCH and shows it as a hero', async () => {
  const s = setup();
  s.panel.rows = [createRow({ jobId: 'job-5', docId: 'doc-2', name: 'Volume · b.psd', priority: 'normal' })];
  await s.panel.star('job-5');
  assert.deepEqual(s.client.named('patch'), [['job-5', 'hero']]);
  assert.equal(s.panel.rows[0].priority, 'hero');
});

test('opening or selecting a document uploads it once and starts its precompute', async () => {
  const s = setup();
  await s.panel.documentOpened({ id: 'doc-1', name: 'a.psd', layerStackHash: 'hash-1' });
  assert.deepEqual(s.client.named('precompute'), [
    [{ imageId: 'img-1', documentId: 'doc-1', layerStackHash: 'hash-1', ops: undefined }],
  ]);
  await s.panel.documentSelected({ id: 'doc-2', name: 'b.psd', layerStackHash: 'hash-9' });
  assert.equal(s.client.named('precompute')[1][0].documentId, 'doc-2');
  assert.equal(s.panel.activeDocId, 'doc-2');

  await s.panel.documentSelected({ id: 'doc-1', name: 'a.psd', layerStackHash: 'hash-1' });
  assert.equal(s.client.named('uploadRaw').length, 2, 'doc-1 is not uploaded again');
  assert.equal(s.client.named('precompute').length, 3);
});

test('closing a document stops its precompute and forgets its image', async () => {
  const s = setup({ cached: true });
  await s.panel.documentSelected({ ...s.adapter.doc });
  await s.panel.documentClosed('doc-1');
  assert.deepEqual(s.client.named('stopPrecompute'), [['doc-1']]);
  await s.panel.apply('beauty');
  assert.equal(s.client.named('uploadRaw').length, 2);
});

test('a history change with the same hash does nothing; a new hash invalidates and precomputes again', async () => {
  const s = setup();
  await s.panel.documentSelected({ ...s.adapter.doc });
  await s.panel.historyChanged({ ...s.adapter.doc });
  assert.equal(s.client.named('precompute').length, 1);
  assert.equal(s.client.named('uploadRaw').length, 1);

  await s.panel.historyChanged({ ...s.adapter.doc, layerStackHash: 'hash-2' });
  assert.equal(s.client.named('uploadRaw').length, 2);
  assert.deepEqual(s.client.named('precompute')[1][0], {
    imageId: 'img-2',
    documentId: 'doc-1',
    layerStackHash: 'hash-2',
    ops: undefined,
  });
});

test('history changes during a precompute collapse into one run with the newest state', async () => {
  const s = setup();
  await s.panel.documentSelected({ ...s.adapter.doc });
  const changes = ['hash-2', 'hash-3', 'hash-4'].map((hash) =>
    s.panel.historyChanged({ ...s.adapter.doc, layerStackHash: hash }),
  );
  await Promise.all(changes);
  assert.deepEqual(
    s.client.named('precompute').map(([request]) => request.layerStackHash),
    ['hash-1', 'hash-4'],
  );
  assert.equal(s.client.named('uploadRaw').length, 3, 'hash-3 is never read nor uploaded');
});

test('a precompute whose upload finishes after a switch does not stop the new document', async () => {
  const s = setup();
  const first = s.panel.documentSelected({ id: 'doc-1', name: 'a.psd', layerStackHash: 'hash-1' });
  const second = s.panel.documentSelected({ id: 'doc-2', name: 'b.psd', layerStackHash: 'hash-2' });
  await Promise.all([first, second]);
  assert.deepEqual(s.client.named('precompute').map(([request]) => request.documentId), ['doc-2']);
});

test('a panel refuses an adapter that lacks a method, naming it', () => {
  const adapter = fakeAdapter();
  delete adapter.replaceLayerPixels;
  assert.throws(() => new Panel({ adapter, client: fakeClient() }), /replaceLayerPixels/);
  assert.equal(checkAdapter(fakeAdapter()).doc.id, 'doc-1');
});

test('the panel follows a job through a real EventStream: preview frame to thumbnail, done to layer', async () => {
  const { EventStream } = require('../events.js');
  let socket = null;
  class FakeWebSocket {
    constructor() {
      socket = this;
    }
    send() {}
    close() {}
  }
  const stream = new EventStream({ WebSocket: FakeWebSocket, token: 't' }).connect();
  socket.onopen({});
  const adapter = fakeAdapter();
  const panel = new Panel({ adapter, client: fakeClient(), events: stream });
  const running = panel.apply('beauty');
  await settle();

  const header = new TextEncoder().encode(JSON.stringify(preview('job-1', 'draft')));
  const frame = new Uint8Array(4 + header.length + 3);
  new DataView(frame.buffer).setUint32(0, header.length, false);
  frame.set(header, 4);
  frame.set(jpeg(7), 4 + header.length);
  socket.onmessage({ data: frame.buffer });
  socket.onmessage({ data: JSON.stringify(event('done', 'job-1', { cached: false, result_url: '/r' })) });
  await running;
  stream.close();

  assert.deepEqual(adapter.named('showThumbnail').map((call) => [...(call.args[0] ?? [])]), [[], [...jpeg(7)]]);
  assert.equal(adapter.steps.length, 1);
});

'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const { Panel } = require('../panel-state.js');
const { ADAPTER_METHODS, checkAdapter } = require('../adapter-contract.js');
const { createRow } = require('../queue.js');

const DOCUMENT_CHANGES = new Set([
  'placeDraft',
  'commitResult',
  'discardDraft',
  'replaceResult',
  'setLayerOpacity',
  'commitOpacity',
]);

function pixels(fill) {
  return { bytes: new Uint8Array(6).fill(fill), width: 2, height: 1, channels: 3, depth: 8 };
}

// What the fake client's preview(…, {format: 'raw'}) answers: one RGB pixel tagged by seq.
function draftPixels(seq) {
  return { bytes: new Uint8Array(3).fill(seq % 256), width: 1, height: 1, channels: 3, depth: 8 };
}

const PORTRAIT = { id: 'doc-1', name: 'portrait.psd', width: 4, height: 2, layerStackHash: 'hash-1' };

const doc = (n, fields = {}) => ({
  id: `doc-${n}`,
  name: `${'abcdefgh'[n - 1]}.psd`,
  width: 4,
  height: 2,
  layerStackHash: `hash-${'abcdefgh'[n - 1]}`,
  ...fields,
});

// Every adapter made in a test; any breach of the contract it saw fails that test.
let adapters = [];
test.afterEach(() => {
  const seen = adapters;
  adapters = [];
  for (const adapter of seen) assert.deepEqual(adapter.violations, [], 'the adapter contract was kept');
});

// A host with documents, their layers and their history (a list of steps), following the
// contract's history discipline. Records every call; `userStep` plays the user's edits;
// `failures` (method or method:docId → error) and `gates` (method → promise) script it.
function fakeAdapter(infos = [PORTRAIT]) {
  let layers = 0;
  const adapter = {
    open: new Map(infos.map((info) => [info.id, { info: { ...info }, layers: [], history: [] }])),
    frontId: infos[0]?.id ?? null,
    calls: [],
    violations: [],
    listeners: [],
    failures: new Map(),
    gates: new Map(),

    record(name, args) {
      this.calls.push({ name, args });
    },
    named(name) {
      return this.calls.filter((call) => call.name === name).map((call) => call.args);
    },
    violate(message) {
      this.violations.push(message);
      throw new Error(message);
    },
    async enter(name, docId) {
      const gate = this.gates.get(name);
      if (gate) await gate;
      const failure = this.failures.get(`${name}:${docId}`) ?? this.failures.get(name);
      if (failure) throw failure;
    },
    document(docId) {
      const found = this.open.get(docId);
      if (!found) this.violate(`no open document ${docId}`);
      return found;
    },
    indexOf(docId, layerId, { draft }) {
      const index = this.document(docId).layers.findIndex((layer) => layer.id === layerId);
      if (index === -1) this.violate(`no layer ${layerId} in ${docId}`);
      if (this.document(docId).layers[index].draft !== draft) {
        this.violate(`layer ${layerId} is ${draft ? 'not ' : ''}a draft`);
      }
      return index;
    },
    checkPixels(given) {
      const keys = Object.keys(given ?? {}).sort().join(',');
      if (keys !== 'bytes,channels,depth,height,width') this.violate(`pixels with fields ${keys}`);
      const { bytes, width, height, channels, depth } = given;
      if (!(bytes instanceof Uint8Array)) this.violate('pixels.bytes is not a Uint8Array');
      if (![3, 4].includes(channels) || ![8, 16].includes(depth)) this.violate('bad channels or depth');
      if (bytes.length !== width * height * channels * (depth / 8)) this.violate('pixels of the wrong size');
    },
    checkNames(...names) {
      for (const name of names) if (typeof name !== 'string' || !name) this.violate('a name is required');
    },

    // Test helpers: the document as the user sees it.
    steps(docId = this.frontId) {
      return this.document(docId).history.map((step) => step.name);
    },
    layersOf(docId = this.frontId) {
      return this.document(docId).layers;
    },
    userStep(name, docId = this.frontId) {
      this.document(docId).history.push({ name, by: 'user' });
    },
    documentChanges() {
      return this.calls.filter((call) => DOCUMENT_CHANGES.has(call.name));
    },

    async activeDocument() {
      this.record('activeDocument', []);
      return this.frontId === null ? null : { ...this.document(this.frontId).info };
    },
    async documents() {
      this.record('documents', []);
      return [...this.open.values()].map((each) => ({ ...each.info }));
    },
    async readPixels(docId) {
      this.record('readPixels', [docId]);
      await this.enter('readPixels', docId);
      this.document(docId);
      return pixels(10);
    },
    async placeDraft(docId, draft) {
      this.record('placeDraft', [docId, draft]);
      await this.enter('placeDraft', docId);
      const target = this.document(docId);
      this.checkNames(draft.name, draft.historyName);
      this.checkPixels(draft.pixels);
      const layerId = `layer-${++layers}`;
      target.layers.push({ id: layerId, name: draft.name, pixels: draft.pixels, opacity: 100, draft: true });
      target.history.push({ name: draft.historyName, by: 'panel', draftOf: layerId });
      return { layerId };
    },
    async commitResult(docId, result) {
      this.record('commitResult', [docId, result]);
      await this.enter('commitResult', docId);
      const target = this.document(docId);
      this.checkNames(result.name, result.historyName);
      this.checkPixels(result.pixels);
      const layerId = `layer-${++layers}`;
      const layer = { id: layerId, name: result.name, pixels: result.pixels, opacity: 100, draft: false };
      const step = { name: result.historyName, by: 'panel', layerId };
      if (result.draft) {
        const index = this.indexOf(docId, result.draft.layerId, { draft: true });
        target.layers.splice(index, 1, layer);
        // The draft's step is still the last one: the final takes its place.
        if (target.history.at(-1)?.draftOf === result.draft.layerId) target.history[target.history.length - 1] = step;
        else target.history.push(step);
      } else {
        target.layers.push(layer);
        target.history.push(step);
      }
      return layerId;
    },
    async discardDraft(docId, draft) {
      this.record('discardDraft', [docId, draft]);
      await this.enter('discardDraft', docId);
      const target = this.document(docId);
      target.layers.splice(this.indexOf(docId, draft.layerId, { draft: true }), 1);
      if (target.history.at(-1)?.draftOf === draft.layerId) target.history.pop();
      else target.history.push({ name: 'Delete Layer', by: 'panel' });
    },
    async replaceResult(docId, layerId, result) {
      this.record('replaceResult', [docId, layerId, result]);
      await this.enter('replaceResult', docId);
      const target = this.document(docId);
      this.checkNames(result.historyName);
      this.checkPixels(result.pixels);
      const layer = target.layers[this.indexOf(docId, layerId, { draft: false })];
      layer.pixels = result.pixels;
      layer.opacity = 100;
      target.history.push({ name: result.historyName, by: 'panel', layerId });
    },
    async setLayerOpacity(docId, layerId, percent) {
      this.record('setLayerOpacity', [docId, layerId, percent]);
      await this.enter('setLayerOpacity', docId);
      if (!(percent >= 0 && percent <= 100)) this.violate(`opacity ${percent}`);
      this.document(docId).layers[this.indexOf(docId, layerId, { draft: false })].opacity = percent;
    },
    async commitOpacity(docId, layerId, percent, historyName) {
      this.record('commitOpacity', [docId, layerId, percent, historyName]);
      await this.enter('commitOpacity', docId);
      if (!(percent >= 0 && percent <= 100)) this.violate(`opacity ${percent}`);
      this.checkNames(historyName);
      const target = this.document(docId);
      target.layers[this.indexOf(docId, layerId, { draft: false })].opacity = percent;
      target.history.push({ name: historyName, by: 'panel', layerId });
    },
    async showThumbnail(jpeg) {
      this.record('showThumbnail', [jpeg]);
    },
    watchDocuments(listener) {
      this.record('watchDocuments', [listener]);
      this.listeners.push(listener);
      return () => {
        this.record('stopWatching', []);
        this.listeners = this.listeners.filter((each) => each !== listener);
      };
    },
  };
  adapters.push(adapter);
  return adapter;
}

// The sidecar client: job-N for the Nth submit; result pixels tagged 200 + N; statuses
// (for resync) by job id; `failures` (method or method:jobId → error) and `gates` script it.
function fakeClient({ cached = false } = {}) {
  const calls = [];
  let images = 0;
  let jobs = 0;
  return {
    calls,
    cached,
    statuses: new Map(),
    failures: new Map(),
    gates: new Map(),
    named(name) {
      return calls.filter((call) => call.name === name).map((call) => call.args);
    },
    async enter(name, key) {
      const gate = this.gates.get(name);
      if (gate) await gate;
      const failure = this.failures.get(`${name}:${key}`) ?? this.failures.get(name);
      if (failure) throw failure;
    },
    stored: new Set(), // image ids the fake sidecar holds
    async hasImage(imageId) {
      calls.push({ name: 'hasImage', args: [imageId] });
      return this.stored.has(imageId);
    },
    async uploadRaw(bytes, shape) {
      calls.push({ name: 'uploadRaw', args: [bytes, shape] });
      images += 1;
      this.stored.add(`img-${images}`);
      return { image_id: `img-${images}`, ...shape };
    },
    async submit(body) {
      calls.push({ name: 'submit', args: [body] });
      await this.enter('submit', body.document_id);
      jobs += 1;
      const answer = this.cached
        ? { job_id: `job-${jobs}`, state: 'done', position: null, cached: true }
        : { job_id: `job-${jobs}`, state: 'queued', position: 0, cached: false };
      this.onSubmit?.(answer);
      return answer;
    },
    async result(jobId, options) {
      calls.push({ name: 'result', args: [jobId, options] });
      await this.enter('result', jobId);
      return { ...pixels(200 + Number(jobId.split('-')[1])), contentType: 'application/octet-stream' };
    },
    async preview(jobId, seq, options) {
      calls.push({ name: 'preview', args: [jobId, seq, options] });
      await this.enter('preview', jobId);
      return draftPixels(seq);
    },
    async job(jobId) {
      calls.push({ name: 'job', args: [jobId] });
      await this.enter('job', jobId);
      const status = this.statuses.get(jobId);
      if (!status) throw Object.assign(new Error('No job with that id.'), { status: 404, code: 'not_found' });
      return status;
    },
    async cancel(jobId) {
      calls.push({ name: 'cancel', args: [jobId] });
    },
    async patch(jobId, priority) {
      calls.push({ name: 'patch', args: [jobId, priority] });
    },
    async precompute(request) {
      calls.push({ name: 'precompute', args: [request] });
      await this.enter('precompute', request.documentId);
    },
    async stopPrecompute(documentId) {
      calls.push({ name: 'stopPrecompute', args: [documentId] });
      await this.enter('stopPrecompute', documentId);
    },
    async recordAction(documentId, action) {
      calls.push({ name: 'recordAction', args: [documentId, action] });
    },
  };
}

// Stands in for the sidecar's event stream as the panel sees it: listen({onEvent,
// onPreview}); the test drives it with emit. Until the panel follows a job, its events
// reach the panel unasked (a stream subscribed to every job); follow(jobId) replays what
// the job published so far (its state events, then its latest preview, in seq order), as
// the sidecar does for a WebSocket that subscribes to that job.
function fakeEvents() {
  const listeners = new Set();
  const published = new Map(); // jobId → { events: [], preview: [header, jpeg] | null }
  const deliver = (kind, args) => {
    for (const listener of listeners) {
      if (kind === 'event') listener.onEvent(...args);
      else listener.onPreview(...args);
    }
  };
  const record = (kind, args) => {
    const jobId = args[0]?.job_id;
    if (typeof jobId !== 'string' || !Number.isInteger(args[0].seq)) return;
    const history = published.get(jobId) ?? { events: [], preview: null };
    published.set(jobId, history);
    if (kind === 'event') history.events.push(args);
    else history.preview = args;
  };
  return {
    followed: [],
    unfollowed: [],
    listen(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    emit(kind, ...args) {
      record(kind, args);
      deliver(kind, args);
    },
    follow(jobId) {
      this.followed.push(jobId);
      const history = published.get(jobId);
      if (!history) return;
      const replay = [...history.events.map((args) => ['event', args])];
      if (history.preview) replay.push(['preview', history.preview]);
      replay.sort((a, b) => a[1][0].seq - b[1][0].seq);
      setImmediate(() => {
        for (const [kind, args] of replay) deliver(kind, args);
      });
    },
    unfollow(jobId) {
      this.unfollowed.push(jobId);
    },
  };
}

function setup({ docs, cached } = {}) {
  const adapter = fakeAdapter(docs);
  const client = fakeClient({ cached });
  const events = fakeEvents();
  const states = [];
  const panel = new Panel({ adapter, client, events, onChange: (state) => states.push(state) });
  return { adapter, client, events, panel, states };
}

// Lets the panel's awaits on the fakes run to where it waits for events.
async function settle() {
  for (let i = 0; i < 20; i += 1) await new Promise((resolve) => setImmediate(resolve));
}

function deferred() {
  let resolve;
  const promise = new Promise((done) => {
    resolve = done;
  });
  return { promise, resolve };
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

// Emits a preview frame and answers its header.
function emitPreview(s, jobId, level, tag = 0, fields = {}) {
  const header = preview(jobId, level, fields);
  s.events.emit('preview', header, jpeg(tag));
  return header;
}

const done = (s, jobId) => s.events.emit('event', event('done', jobId, { cached: false }));

async function applied(s, op = 'beauty', options) {
  const running = s.panel.apply(op, options);
  await settle();
  if (!s.client.cached) done(s, `job-${s.client.named('submit').length}`);
  return running;
}

const thumbnails = (s) => s.adapter.named('showThumbnail').map(([shown]) => shown);

// --- Apply --------------------------------------------------------------------------

test('an Apply without previews places one new layer with the final pixels in one history step', async () => {
  const s = setup();
  const running = s.panel.apply('dodge_burn');
  await settle();
  s.events.emit('event', event('started', 'job-1'));
  done(s, 'job-1');
  const answer = await running;

  assert.deepEqual(answer, { jobId: 'job-1', layerId: 'layer-1' });
  assert.deepEqual(s.adapter.named('commitResult'), [
    ['doc-1', { name: 'Dodge & Burn', historyName: 'ML Retouch: Dodge & Burn', pixels: pixels(201), draft: undefined }],
  ]);
  assert.deepEqual(s.adapter.steps(), ['ML Retouch: Dodge & Burn']);
  assert.deepEqual(
    s.adapter.layersOf().map(({ id, pixels: held, opacity, draft }) => ({ id, held, opacity, draft })),
    [{ id: 'layer-1', held: pixels(201), opacity: 100, draft: false }],
  );
  assert.deepEqual(s.client.named('result'), [['job-1', { format: 'raw' }]]);
  assert.deepEqual(s.client.named('uploadRaw'), [[pixels(10).bytes, pixels(10)]]);
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
  assert.deepEqual(s.panel.result.layerId, 'layer-1');
});

test('the state goes uploading, running, placing, done and follows progress, stage and time left', async () => {
  const s = setup();
  const running = s.panel.apply('beauty', { intensity: 0.5, params: { strength: 0.7 } });
  await settle();
  s.events.emit('event', event('progress', 'job-1', { progress: 0.25, stage: 'preview', eta_s: 8 }));
  assert.deepEqual(
    { ...s.panel.state },
    { phase: 'running', progress: 0.25, stage: 'preview', etaS: 8, message: '', draft: false },
  );
  done(s, 'job-1');
  await running;
  const phases = s.states.map((state) => state.phase).filter((phase, i, all) => phase !== all[i - 1]);
  assert.deepEqual(phases, ['uploading', 'running', 'placing', 'done']);
  assert.deepEqual(s.panel.state, { phase: 'done', progress: 1, stage: null, etaS: 0, message: '', draft: false });
  assert.equal(s.client.named('submit')[0][0].intensity, 0.5);
  assert.deepEqual(s.client.named('submit')[0][0].params, { strength: 0.7 });
});

test('the first draft goes into the document from raw pixels and the final replaces it: one layer, one step', async () => {
  const s = setup();
  const running = s.panel.apply('beauty');
  await settle();
  const header = emitPreview(s, 'job-1', 'draft', 1);
  await settle();

  assert.deepEqual(s.client.named('preview'), [['job-1', header.seq, { format: 'raw' }]]);
  assert.deepEqual(s.adapter.named('placeDraft'), [
    ['doc-1', { name: 'Beauty', historyName: 'ML Retouch: Beauty', pixels: draftPixels(header.seq) }],
  ]);
  assert.deepEqual(s.adapter.steps(), ['ML Retouch: Beauty']);
  assert.deepEqual(
    s.adapter.layersOf().map(({ id, draft }) => [id, draft]),
    [['layer-1', true]],
  );
  assert.equal(s.panel.state.draft, true);
  assert.equal(s.panel.state.phase, 'running');
  assert.deepEqual(thumbnails(s), [null, jpeg(1)]);

  done(s, 'job-1');
  const answer = await running;
  assert.deepEqual(answer, { jobId: 'job-1', layerId: 'layer-2' });
  const [[docId, committed]] = s.adapter.named('commitResult');
  assert.equal(docId, 'doc-1');
  assert.deepEqual(committed.draft, { layerId: 'layer-1' });
  assert.deepEqual(committed.pixels, pixels(201));
  assert.deepEqual(s.adapter.steps(), ['ML Retouch: Beauty'], 'the Apply is exactly one history step');
  assert.deepEqual(
    s.adapter.layersOf().map(({ id, pixels: held, draft }) => [id, held, draft]),
    [['layer-2', pixels(201), false]],
  );
  assert.equal(s.adapter.named('discardDraft').length, 0);
  assert.equal(s.panel.state.draft, false);
  assert.equal(s.panel.result.layerId, 'layer-2', 'the slider and Refine act on the final layer');
});

test('only the first of the draft, preview and refine levels is placed, once per job', async () => {
  const s = setup();
  const running = s.panel.apply('volume');
  await settle();
  const first = emitPreview(s, 'job-1', 'draft', 1);
  emitPreview(s, 'job-1', 'preview', 2);
  await settle();
  emitPreview(s, 'job-1', 'refine', 3);
  await settle();

  assert.deepEqual(s.client.named('preview'), [['job-1', first.seq, { format: 'raw' }]]);
  assert.equal(s.adapter.named('placeDraft').length, 1);
  assert.deepEqual(s.adapter.layersOf()[0].pixels, draftPixels(first.seq));
  assert.deepEqual(thumbnails(s), [null, jpeg(1), jpeg(2), jpeg(3)], 'every level reaches the thumbnail');
  assert.deepEqual(s.adapter.steps(), ['ML Retouch: Volume']);

  done(s, 'job-1');
  await running;
  assert.deepEqual(s.adapter.steps(), ['ML Retouch: Volume']);
  assert.equal(s.adapter.layersOf().length, 1);
});

test('step and final previews are never placed; the first draft-level preview after them is', async () => {
  const s = setup();
  s.panel.streamSteps = true;
  const running = s.panel.apply('generate');
  await settle();
  emitPreview(s, 'job-1', 'step', 1, { step: 3, total_steps: 20 });
  emitPreview(s, 'job-1', 'final', 2);
  await settle();
  assert.equal(s.client.named('preview').length, 0);
  assert.equal(s.adapter.named('placeDraft').length, 0);
  assert.equal(s.adapter.steps().length, 0);

  const refine = emitPreview(s, 'job-1', 'refine', 3);
  await settle();
  assert.deepEqual(s.client.named('preview'), [['job-1', refine.seq, { format: 'raw' }]]);
  assert.deepEqual(s.adapter.named('placeDraft')[0][1].pixels, draftPixels(refine.seq));
  assert.deepEqual(thumbnails(s), [null, jpeg(1), jpeg(2), jpeg(3)]);

  done(s, 'job-1');
  await running;
  assert.deepEqual(s.adapter.steps(), ['ML Retouch: Generate']);
});

test('a draft that beats the submit answer is replayed once the job is followed, and placed', async () => {
  const s = setup();
  let early;
  s.client.onSubmit = (answer) => {
    early = emitPreview(s, answer.job_id, 'draft', 1);
  };
  const running = s.panel.apply('beauty');
  await settle();
  assert.ok(early, 'the draft went by before the submit was answered');
  assert.deepEqual(s.client.named('preview'), [['job-1', early.seq, { format: 'raw' }]]);
  assert.equal(s.adapter.named('placeDraft').length, 1);

  emitPreview(s, 'job-1', 'preview', 2); // a later level: thumbnail only
  await settle();
  assert.equal(s.adapter.named('placeDraft').length, 1);
  done(s, 'job-1');
  await running;
  assert.deepEqual(s.adapter.steps(), ['ML Retouch: Beauty']);
});

test('an early draft of a job that is already done by its submit answer is not placed', async () => {
  const s = setup();
  s.client.onSubmit = (answer) => {
    emitPreview(s, answer.job_id, 'draft', 1);
    s.events.emit('event', event('done', answer.job_id, { cached: false }));
  };
  const result = await s.panel.apply('beauty');
  assert.ok(result);
  assert.equal(s.adapter.named('placeDraft').length, 0);
  assert.deepEqual(s.adapter.steps(), ['ML Retouch: Beauty']);
});

test('the panel follows each job it submits and stops once the job is settled', async () => {
  const s = setup();
  const running = s.panel.apply('beauty');
  await settle();
  assert.deepEqual(s.events.followed, ['job-1']);
  done(s, 'job-1');
  await running;
  assert.deepEqual(s.events.unfollowed, ['job-1']);
  assert.equal(s.panel.early, undefined, 'no buffer of unknown jobs’ events');
  assert.equal(s.panel.earlyPreviews, undefined);
});

test('a draft that arrives after the job is done is never placed', async () => {
  const s = setup();
  const running = s.panel.apply('beauty');
  await settle();
  done(s, 'job-1');
  emitPreview(s, 'job-1', 'draft', 1); // in the same turn as the done event
  await running;
  emitPreview(s, 'job-1', 'draft', 2); // after the Apply has finished
  await settle();

  assert.equal(s.adapter.named('placeDraft').length, 0);
  assert.deepEqual(s.adapter.named('commitResult').map(([, result]) => result.draft), [undefined]);
  assert.deepEqual(s.adapter.steps(), ['ML Retouch: Beauty']);
  assert.equal(s.adapter.layersOf().length, 1);
});

test('a draft that arrives while the final is being fetched is not even fetched', async () => {
  const s = setup();
  const fetching = deferred();
  s.client.gates.set('result', fetching.promise);
  const running = s.panel.apply('beauty');
  await settle();
  done(s, 'job-1');
  await settle();
  assert.deepEqual(s.client.named('result'), [['job-1', { format: 'raw' }]]);
  emitPreview(s, 'job-1', 'refine', 1);
  await settle();
  fetching.resolve();
  await running;
  assert.deepEqual(s.client.named('preview'), []);
  assert.equal(s.adapter.named('placeDraft').length, 0);
  assert.deepEqual(s.adapter.steps(), ['ML Retouch: Beauty']);
});

test('a draft whose raw pixels are still on their way when the job is done is dropped', async () => {
  const s = setup();
  const fetching = deferred();
  s.client.gates.set('preview', fetching.promise);
  const running = s.panel.apply('beauty');
  await settle();
  emitPreview(s, 'job-1', 'draft', 1);
  await settle();
  done(s, 'job-1');
  await settle();
  assert.equal(s.adapter.named('commitResult').length, 0, 'the final waits for the draft fetch');

  fetching.resolve();
  assert.deepEqual(await running, { jobId: 'job-1', layerId: 'layer-1' });
  assert.equal(s.adapter.named('placeDraft').length, 0);
  assert.equal(s.adapter.named('commitResult')[0][1].draft, undefined);
  assert.deepEqual(s.adapter.steps(), ['ML Retouch: Beauty']);
});

test('a final that arrives while its draft is being placed waits for it and replaces it', async () => {
  const s = setup();
  const placing = deferred();
  s.adapter.gates.set('placeDraft', placing.promise);
  const running = s.panel.apply('color');
  await settle();
  emitPreview(s, 'job-1', 'draft', 1);
  await settle();
  done(s, 'job-1');
  await settle();
  assert.equal(s.adapter.named('commitResult').length, 0);

  placing.resolve();
  assert.deepEqual(await running, { jobId: 'job-1', layerId: 'layer-2' });
  assert.deepEqual(s.adapter.named('commitResult')[0][1].draft, { layerId: 'layer-1' });
  assert.deepEqual(s.adapter.steps(), ['ML Retouch: Color']);
  assert.deepEqual(s.adapter.layersOf().map((layer) => layer.id), ['layer-2']);
});

test('a draft whose fetch fails is skipped, not retried, and the final is placed as a new layer', async () => {
  const s = setup();
  s.client.failures.set('preview', Object.assign(new Error('that preview is gone'), { status: 404 }));
  const running = s.panel.apply('beauty');
  await settle();
  emitPreview(s, 'job-1', 'draft', 1);
  await settle();
  emitPreview(s, 'job-1', 'preview', 2);
  await settle();
  assert.equal(s.client.named('preview').length, 1);
  assert.equal(s.adapter.named('placeDraft').length, 0);
  assert.equal(s.panel.state.draft, false);
  assert.equal(s.panel.state.phase, 'running', 'a missing draft is no failure');

  done(s, 'job-1');
  assert.deepEqual(await running, { jobId: 'job-1', layerId: 'layer-1' });
  assert.deepEqual(s.adapter.named('commitResult')[0][1].draft, undefined);
  assert.deepEqual(s.adapter.steps(), ['ML Retouch: Beauty']);
  assert.equal(s.panel.state.phase, 'done');
});

test('a draft the adapter cannot place is skipped and the final is still placed', async () => {
  const s = setup();
  s.adapter.failures.set('placeDraft', new Error('The document is busy.'));
  const running = s.panel.apply('beauty');
  await settle();
  emitPreview(s, 'job-1', 'draft', 1);
  await settle();
  done(s, 'job-1');
  await running;
  assert.equal(s.adapter.named('commitResult')[0][1].draft, undefined);
  assert.deepEqual(s.adapter.steps(), ['ML Retouch: Beauty']);
  assert.equal(s.panel.state.phase, 'done');
});

test('a user step between the draft and the final is kept: the final becomes a step of its own', async () => {
  const s = setup();
  const running = s.panel.apply('beauty');
  await settle();
  emitPreview(s, 'job-1', 'draft', 1);
  await settle();
  s.adapter.userStep('Brush Tool');
  done(s, 'job-1');
  await running;

  assert.deepEqual(s.adapter.steps(), ['ML Retouch: Beauty', 'Brush Tool', 'ML Retouch: Beauty']);
  assert.deepEqual(
    s.adapter.document('doc-1').history.map((step) => step.by),
    ['panel', 'user', 'panel'],
  );
  assert.deepEqual(
    s.adapter.layersOf().map(({ id, pixels: held, draft }) => [id, held, draft]),
    [['layer-2', pixels(201), false]],
    'the draft layer holds the final now; no second layer',
  );
});

test('a failed job removes its draft: no layer, no history step, and the sidecar message shows', async () => {
  const s = setup();
  const running = s.panel.apply('beauty');
  await settle();
  emitPreview(s, 'job-1', 'draft', 1);
  await settle();
  assert.equal(s.adapter.steps().length, 1);
  const error = { code: 'engine_unavailable', message: 'The diffusion engine is not loaded.', details: {} };
  s.events.emit('event', event('failed', 'job-1', { error }));
  assert.equal(await running, null);

  assert.deepEqual(s.adapter.named('discardDraft'), [['doc-1', { layerId: 'layer-1' }]]);
  assert.deepEqual(s.adapter.steps(), []);
  assert.deepEqual(s.adapter.layersOf(), []);
  assert.equal(s.adapter.named('commitResult').length, 0);
  assert.deepEqual(s.panel.state, {
    phase: 'failed',
    progress: 0,
    stage: null,
    etaS: null,
    message: 'The diffusion engine is not loaded.',
    draft: false,
  });
  assert.equal(s.client.named('result').length, 0);
  assert.equal(s.client.named('recordAction').length, 0);
  assert.equal(thumbnails(s).at(-1), null, 'the thumbnail of a failed job is cleared');
  assert.equal(s.panel.result, null);
});

test('a failed job without a draft leaves the document untouched', async () => {
  const s = setup();
  const running = s.panel.apply('beauty');
  await settle();
  s.events.emit('event', event('failed', 'job-1', { error: { code: 'internal', message: 'Out of memory.' } }));
  assert.equal(await running, null);
  assert.deepEqual(s.adapter.documentChanges(), []);
  assert.deepEqual(s.adapter.steps(), []);
  assert.equal(s.panel.state.message, 'Out of memory.');
});

test('a draft discarded after a user step is deleted in a step of its own; the user step stays', async () => {
  const s = setup();
  const running = s.panel.apply('beauty');
  await settle();
  emitPreview(s, 'job-1', 'draft', 1);
  await settle();
  s.adapter.userStep('Crop');
  s.events.emit('event', event('failed', 'job-1', { error: { code: 'internal', message: 'Boom.' } }));
  assert.equal(await running, null);
  assert.deepEqual(s.adapter.steps(), ['ML Retouch: Beauty', 'Crop', 'Delete Layer']);
  assert.deepEqual(s.adapter.layersOf(), []);
});

test('a cancelled job removes its draft, leaves zero steps and returns the panel to idle', async () => {
  const s = setup();
  const running = s.panel.apply('beauty');
  await settle();
  emitPreview(s, 'job-1', 'draft', 1);
  await settle();
  await s.panel.cancelJob();
  assert.deepEqual(s.client.named('cancel'), [['job-1']]);
  s.events.emit('event', event('cancelled', 'job-1'));
  assert.equal(await running, null);

  assert.deepEqual(s.adapter.named('discardDraft'), [['doc-1', { layerId: 'layer-1' }]]);
  assert.deepEqual(s.adapter.steps(), []);
  assert.deepEqual(s.adapter.layersOf(), []);
  assert.deepEqual(
    [s.panel.state.phase, s.panel.state.message, s.panel.state.draft],
    ['idle', 'Cancelled.', false],
  );
  assert.equal(s.client.named('result').length, 0);
});

test('a final that cannot be fetched removes the draft and reports the failure', async () => {
  const s = setup();
  s.client.failures.set('result', new Error('The result is gone.'));
  const running = s.panel.apply('beauty');
  await settle();
  emitPreview(s, 'job-1', 'draft', 1);
  await settle();
  done(s, 'job-1');
  assert.equal(await running, null);

  assert.deepEqual(s.adapter.named('discardDraft'), [['doc-1', { layerId: 'layer-1' }]]);
  assert.deepEqual(s.adapter.steps(), []);
  assert.deepEqual(s.adapter.layersOf(), []);
  assert.deepEqual([s.panel.state.phase, s.panel.state.message], ['failed', 'The result is gone.']);
});

test('previews of another job reach neither the thumbnail nor the document', async () => {
  const s = setup();
  const running = s.panel.apply('beauty');
  await settle();
  emitPreview(s, 'job-99', 'draft', 9);
  await settle();
  assert.deepEqual(thumbnails(s), [null]);
  assert.equal(s.client.named('preview').length, 0);
  assert.deepEqual(s.adapter.documentChanges(), []);
  done(s, 'job-1');
  await running;
});

test('step previews reach the thumbnail only while streamSteps is on, and never the document', async () => {
  const s = setup();
  const first = s.panel.apply('beauty');
  await settle();
  emitPreview(s, 'job-1', 'step', 1, { step: 1, total_steps: 20 });
  await settle();
  assert.deepEqual(thumbnails(s), [null]);
  assert.equal(s.client.named('submit')[0][0].preview.stream_steps, false);
  done(s, 'job-1');
  await first;

  s.panel.streamSteps = true;
  const second = s.panel.apply('volume');
  await settle();
  assert.equal(s.client.named('submit')[1][0].preview.stream_steps, true);
  emitPreview(s, 'job-2', 'step', 3, { step: 1, total_steps: 20 });
  emitPreview(s, 'job-2', 'step', 4, { step: 2, total_steps: 20 });
  await settle();
  assert.deepEqual(thumbnails(s), [null, null, jpeg(3), jpeg(4)]);
  assert.equal(s.client.named('preview').length, 0);
  assert.equal(s.adapter.named('placeDraft').length, 0);
  done(s, 'job-2');
  await second;
  assert.deepEqual(s.adapter.steps(), ['ML Retouch: Beauty', 'ML Retouch: Volume']);
});

test('a cached answer places the layer without waiting for events or fetching a draft', async () => {
  const s = setup({ cached: true });
  const answer = await s.panel.apply('beauty');
  assert.deepEqual(answer, { jobId: 'job-1', layerId: 'layer-1' });
  assert.deepEqual(s.adapter.steps(), ['ML Retouch: Beauty']);
  assert.equal(s.client.named('preview').length, 0);
  assert.equal(s.panel.state.phase, 'done');
  assert.equal(s.panel.rows[0].state, 'done');
});

test('a job that finishes before its submit is answered is still placed', async () => {
  const s = setup();
  s.client.onSubmit = (answer) => done(s, answer.job_id);
  assert.deepEqual(await s.panel.apply('beauty'), { jobId: 'job-1', layerId: 'layer-1' });
  assert.deepEqual(s.adapter.steps(), ['ML Retouch: Beauty']);
  assert.equal(s.panel.rows[0].state, 'done');
});

test('a job that fails before its submit is answered fails the Apply', async () => {
  const s = setup();
  s.client.onSubmit = (answer) =>
    s.events.emit('event', event('failed', answer.job_id, { error: { code: 'x', message: 'Too large.' } }));
  assert.equal(await s.panel.apply('beauty'), null);
  assert.deepEqual([s.panel.state.phase, s.panel.state.message], ['failed', 'Too large.']);
  assert.equal(s.panel.rows[0].state, 'failed');
  assert.deepEqual(s.adapter.documentChanges(), []);
});

test('a second Apply on an unchanged document skips the upload; a new layer-stack hash uploads again', async () => {
  const s = setup({ cached: true });
  await s.panel.apply('beauty');
  await s.panel.apply('volume');
  assert.equal(s.client.named('uploadRaw').length, 1);
  assert.equal(s.adapter.named('readPixels').length, 1);
  assert.deepEqual(s.client.named('submit').map(([body]) => body.image_id), ['img-1', 'img-1']);

  s.adapter.document('doc-1').info.layerStackHash = 'hash-2';
  await s.panel.historyChanged(await s.adapter.activeDocument());
  await s.panel.apply('color');
  assert.equal(s.client.named('uploadRaw').length, 2);
  const last = s.client.named('submit')[2][0];
  assert.deepEqual([last.image_id, last.layer_stack_hash], ['img-2', 'hash-2']);
  assert.deepEqual(s.adapter.steps(), ['ML Retouch: Beauty', 'ML Retouch: Volume', 'ML Retouch: Color']);
});

test('a refused submit shows the sidecar message, not a stack trace', async () => {
  const s = setup();
  s.client.failures.set('submit', Object.assign(new Error('No stored image with that id.'), { code: 'image_not_found' }));
  assert.equal(await s.panel.apply('beauty'), null);
  assert.equal(s.panel.state.phase, 'failed');
  assert.equal(s.panel.state.message, 'No stored image with that id.');
  assert.doesNotMatch(s.panel.state.message, /\bat\b.*\.js/);
  assert.deepEqual(s.adapter.documentChanges(), []);
});

test('Apply with no open document fails with a plain message', async () => {
  const s = setup();
  s.adapter.frontId = null;
  await s.panel.apply('beauty');
  assert.deepEqual([s.panel.state.phase, s.panel.state.message], ['failed', 'Open a document first.']);
  assert.equal(s.client.named('submit').length, 0);
});

// --- Slider and Refine --------------------------------------------------------------

test('dragging the slider changes opacity live with no history step; releasing commits exactly one', async () => {
  const s = setup({ cached: true });
  await s.panel.apply('beauty');
  for (const percent of [90, 70, 55, 40]) await s.panel.slider(percent);

  assert.deepEqual(s.adapter.named('setLayerOpacity'), [90, 70, 55, 40].map((p) => ['doc-1', 'layer-1', p]));
  assert.deepEqual(s.adapter.steps(), ['ML Retouch: Beauty'], 'dragging makes no step');
  assert.equal(s.adapter.layersOf()[0].opacity, 40);
  assert.equal(s.client.named('submit').length, 1, 'no re-inference');

  await s.panel.sliderReleased(40);
  assert.deepEqual(s.adapter.named('commitOpacity'), [['doc-1', 'layer-1', 40, 'ML Retouch: Beauty opacity 40 %']]);
  assert.deepEqual(s.adapter.steps(), ['ML Retouch: Beauty', 'ML Retouch: Beauty opacity 40 %']);
  assert.equal(s.adapter.layersOf()[0].opacity, 40);
});

test('releasing the slider where the opacity already is makes no step', async () => {
  const s = setup({ cached: true });
  await s.panel.apply('volume');
  await s.panel.slider(60);
  await s.panel.slider(100);
  await s.panel.sliderReleased(100); // back where the Apply left it
  assert.equal(s.adapter.named('commitOpacity').length, 0);

  await s.panel.slider(35);
  await s.panel.sliderReleased(35);
  await s.panel.sliderReleased(35);
  assert.equal(s.adapter.named('commitOpacity').length, 1);
  assert.deepEqual(s.adapter.steps(), ['ML Retouch: Volume', 'ML Retouch: Volume opacity 35 %']);
});

test('the slider does nothing before an Apply has placed a layer', async () => {
  const s = setup();
  await s.panel.slider(50);
  await s.panel.sliderReleased(50);
  assert.deepEqual(s.adapter.documentChanges(), []);
});

test('Refine replaces the layer pixels in place, in one history step, back at full opacity', async () => {
  const s = setup();
  await applied(s, 'beauty', { params: { strength: 0.8 } });
  await s.panel.slider(60);
  const refining = s.panel.refine(60);
  await settle();
  emitPreview(s, 'job-2', 'draft', 5);
  await settle();
  done(s, 'job-2');
  const answer = await refining;

  assert.deepEqual(answer, { jobId: 'job-2', layerId: 'layer-1' });
  const body = s.client.named('submit')[1][0];
  assert.deepEqual(
    [body.op, body.image_id, body.intensity, body.params, body.priority],
    ['beauty', 'img-1', 0.6, { strength: 0.8 }, 'active'],
  );
  assert.equal(s.client.named('uploadRaw').length, 1, 'Refine re-uses the input of the Apply');
  assert.equal(s.adapter.named('placeDraft').length, 0, 'Refine places no draft');
  assert.equal(s.adapter.named('commitResult').length, 1, 'no new layer');
  assert.deepEqual(s.adapter.named('replaceResult'), [
    ['doc-1', 'layer-1', { historyName: 'ML Retouch: Refine Beauty at 60 %', pixels: pixels(202) }],
  ]);
  assert.deepEqual(s.adapter.steps(), ['ML Retouch: Beauty', 'ML Retouch: Refine Beauty at 60 %']);
  assert.deepEqual(
    s.adapter.layersOf().map(({ id, pixels: held, opacity }) => [id, held, opacity]),
    [['layer-1', pixels(202), 100]],
  );
  assert.equal(thumbnails(s).at(-1)[2], 5, 'Refine previews still reach the thumbnail');

  await s.panel.sliderReleased(100);
  assert.equal(s.adapter.named('commitOpacity').length, 0, 'Refine left the layer at 100 %');
});

test('Refine does nothing before an Apply, and a failed Refine leaves the layer as it was', async () => {
  const s = setup();
  assert.equal(await s.panel.refine(50), null);
  assert.equal(s.client.named('submit').length, 0);

  await applied(s, 'color');
  const refining = s.panel.refine(50);
  await settle();
  s.events.emit('event', event('failed', 'job-2', { error: { code: 'internal', message: 'Nope.' } }));
  assert.equal(await refining, null);
  assert.deepEqual(s.adapter.steps(), ['ML Retouch: Color']);
  assert.deepEqual(s.adapter.layersOf()[0].pixels, pixels(201));
  assert.equal(s.panel.state.message, 'Nope.');
  assert.equal(s.panel.result.layerId, 'layer-1');
});

// --- The queue ----------------------------------------------------------------------

test('queueDocuments submits the front document first as active, the others as normal, one step each', async () => {
  const s = setup({ docs: [doc(1), doc(2), doc(3)] });
  s.adapter.frontId = 'doc-2';
  const submitted = await s.panel.queueDocuments('color');

  assert.deepEqual(submitted, ['job-1', 'job-2', 'job-3']);
  const bodies = s.client.named('submit').map(([body]) => body);
  assert.deepEqual(
    bodies.map((body) => [body.document_id, body.priority, body.op, body.layer_stack_hash]),
    [
      ['doc-2', 'active', 'color', 'hash-b'],
      ['doc-1', 'normal', 'color', 'hash-a'],
      ['doc-3', 'normal', 'color', 'hash-c'],
    ],
  );
  assert.equal(new Set(bodies.map((body) => body.image_id)).size, 3, 'each document is uploaded');
  assert.deepEqual(
    s.panel.rows.map((row) => [row.jobId, row.docId, row.name, row.priority]),
    [
      ['job-1', 'doc-2', 'Color · b.psd', 'active'],
      ['job-2', 'doc-1', 'Color · a.psd', 'normal'],
      ['job-3', 'doc-3', 'Color · c.psd', 'normal'],
    ],
  );
  assert.deepEqual(s.adapter.documentChanges(), [], 'nothing is placed before a job is done');

  emitPreview(s, 'job-1', 'draft', 1);
  await settle();
  assert.equal(s.client.named('preview').length, 0, 'queued jobs place no draft');

  for (const jobId of ['job-3', 'job-1', 'job-2']) done(s, jobId);
  await settle();
  assert.deepEqual(
    s.adapter.named('commitResult').map(([docId, result]) => [docId, result.draft, result.pixels]),
    [
      ['doc-3', undefined, pixels(203)],
      ['doc-2', undefined, pixels(201)],
      ['doc-1', undefined, pixels(202)],
    ],
  );
  for (const id of ['doc-1', 'doc-2', 'doc-3']) {
    assert.deepEqual(s.adapter.steps(id), ['ML Retouch: Color'], `${id} has one step`);
    assert.equal(s.adapter.layersOf(id).length, 1);
  }
  assert.ok(s.panel.rows.every((row) => row.state === 'done'));
  assert.equal(s.panel.state.phase, 'idle', 'the queue does not drive the Apply state');
});

test('queueDocuments takes the documents it is given, the front one first', async () => {
  const s = setup({ docs: [doc(1), doc(2), doc(3)] });
  s.adapter.frontId = 'doc-3';
  await s.panel.queueDocuments('beauty', [doc(1), doc(3)]);
  assert.equal(s.adapter.named('documents').length, 0);
  assert.deepEqual(
    s.client.named('submit').map(([body]) => [body.document_id, body.priority]),
    [
      ['doc-3', 'active'],
      ['doc-1', 'normal'],
    ],
  );
});

test('a failure on one queued document does not stop the others', async () => {
  const s = setup({ docs: [doc(1), doc(2), doc(3), doc(4)] });
  s.adapter.failures.set('readPixels:doc-2', new Error('Could not read the pixels.'));
  s.client.failures.set('result:job-3', new Error('The result is gone.'));
  const submitted = await s.panel.queueDocuments('volume');

  assert.deepEqual(submitted, ['job-1', 'job-2', 'job-3']);
  assert.deepEqual(s.client.named('submit').map(([body]) => body.document_id), ['doc-1', 'doc-3', 'doc-4']);
  assert.equal(s.panel.state.message, 'b.psd: Could not read the pixels.');

  done(s, 'job-1');
  s.events.emit('event', event('failed', 'job-2', { error: { code: 'internal', message: 'Engine crashed.' } }));
  done(s, 'job-3');
  await settle();

  assert.deepEqual(s.adapter.steps('doc-1'), ['ML Retouch: Volume']);
  for (const id of ['doc-2', 'doc-3', 'doc-4']) assert.deepEqual(s.adapter.steps(id), [], `${id} is untouched`);
  assert.deepEqual(
    s.panel.rows.map((row) => [row.jobId, row.state, row.error]),
    [
      ['job-1', 'done', null],
      ['job-2', 'failed', 'Engine crashed.'],
      ['job-3', 'done', 'The result is gone.'],
    ],
  );
  assert.equal(s.panel.rows[2].placement, 'failed', 'done at the sidecar, not placed');
});

test('starring a waiting row sends the PATCH once and shows it as a hero; active and finished rows are not starred', async () => {
  const s = setup();
  s.panel.rows = [
    createRow({ jobId: 'job-5', docId: 'doc-2', name: 'Volume · b.psd', priority: 'normal' }),
    createRow({ jobId: 'job-6', docId: 'doc-1', name: 'Beauty · a.psd', priority: 'active' }),
    createRow({ jobId: 'job-7', docId: 'doc-3', name: 'Color · c.psd', state: 'done' }),
  ];
  await s.panel.star('job-5');
  await s.panel.star('job-5');
  await s.panel.star('job-6');
  await s.panel.star('job-7');
  await s.panel.star('job-unknown');
  assert.deepEqual(s.client.named('patch'), [['job-5', 'hero']]);
  assert.deepEqual(s.panel.rows.map((row) => row.priority), ['hero', 'active', 'normal']);
});

test('cancelling sends a DELETE for the current job or a given row, nothing for a finished one', async () => {
  const s = setup();
  s.panel.rows = [
    createRow({ jobId: 'job-5', docId: 'doc-2', name: 'Volume · b.psd', state: 'running' }),
    createRow({ jobId: 'job-6', docId: 'doc-3', name: 'Color · c.psd', state: 'done' }),
  ];
  await s.panel.cancelJob();
  assert.deepEqual(s.client.named('cancel'), [], 'no current job, nothing to cancel');
  await s.panel.cancelJob('job-5');
  await s.panel.cancelJob('job-6');
  assert.deepEqual(s.client.named('cancel'), [['job-5']]);

  const running = s.panel.apply('beauty');
  await settle();
  await s.panel.cancelJob();
  assert.deepEqual(s.client.named('cancel'), [['job-5'], ['job-1']]);
  s.events.emit('event', event('cancelled', 'job-1'));
  assert.equal(await running, null);
});

// --- Reconnect ----------------------------------------------------------------------

const status = (jobId, state, fields = {}) => ({
  job_id: jobId,
  op: 'beauty',
  state,
  priority: 'active',
  progress: state === 'done' ? 1 : 0,
  created_at: '2025-01-01T00:00:00Z',
  ...fields,
});

test('resync completes an Apply whose done event was missed: the final replaces the draft, one step', async () => {
  const s = setup();
  const running = s.panel.apply('beauty');
  await settle();
  emitPreview(s, 'job-1', 'draft', 1);
  await settle();
  // The stream drops here; the job finishes meanwhile.
  s.client.statuses.set('job-1', status('job-1', 'done', { finished_at: '2025-01-01T00:00:09Z' }));
  await s.panel.resync();
  assert.deepEqual(await running, { jobId: 'job-1', layerId: 'layer-2' });

  assert.deepEqual(s.client.named('job'), [['job-1']]);
  assert.deepEqual(s.adapter.steps(), ['ML Retouch: Beauty']);
  assert.deepEqual(s.adapter.layersOf().map(({ id, pixels: held }) => [id, held]), [['layer-2', pixels(201)]]);
  assert.deepEqual([s.panel.rows[0].state, s.panel.rows[0].finishedAt], ['done', Date.parse('2025-01-01T00:00:09Z')]);
  assert.equal(s.panel.state.phase, 'done');

  done(s, 'job-1'); // the late event, once the stream is back
  await settle();
  assert.equal(s.adapter.named('commitResult').length, 1, 'placed once');
});

test('resync fails an Apply whose job failed meanwhile, and removes its draft', async () => {
  const s = setup();
  const running = s.panel.apply('beauty');
  await settle();
  emitPreview(s, 'job-1', 'draft', 1);
  await settle();
  const error = { code: 'internal', message: 'Out of GPU memory.', details: {} };
  s.client.statuses.set('job-1', status('job-1', 'failed', { error }));
  await s.panel.resync();
  assert.equal(await running, null);
  assert.deepEqual([s.panel.state.phase, s.panel.state.message], ['failed', 'Out of GPU memory.']);
  assert.deepEqual(s.adapter.steps(), []);
  assert.deepEqual([s.panel.rows[0].state, s.panel.rows[0].error], ['failed', 'Out of GPU memory.']);
});

test('resync asks only about unfinished jobs, skips those it cannot look up, and later events still apply', async () => {
  const s = setup({ docs: [doc(1), doc(2), doc(3), doc(4)] });
  await s.panel.queueDocuments('volume');
  done(s, 'job-1');
  s.events.emit('event', event('started', 'job-2'));
  s.events.emit('event', event('progress', 'job-2', { progress: 0.1, stage: 'analysis' }));
  await settle();
  assert.deepEqual(s.adapter.steps('doc-1'), ['ML Retouch: Volume']);

  // job-2 moved on, job-3 finished, job-4 is unknown to the sidecar now.
  s.client.statuses.set('job-2', status('job-2', 'running', { progress: 0.5, stage: 'refine', eta_s: 4 }));
  s.client.statuses.set('job-3', status('job-3', 'done', { priority: 'normal' }));
  await s.panel.resync();
  await settle();

  assert.deepEqual(s.client.named('job'), [['job-2'], ['job-3'], ['job-4']]);
  assert.deepEqual(s.adapter.steps('doc-3'), ['ML Retouch: Volume'], 'the missed done is placed');
  const row2 = s.panel.rows.find((row) => row.jobId === 'job-2');
  assert.deepEqual([row2.state, row2.progress, row2.stage, row2.etaS], ['running', 0.5, 'refine', 4]);
  assert.equal(s.panel.rows.find((row) => row.jobId === 'job-4').state, 'queued');

  s.events.emit('event', event('progress', 'job-2', { progress: 0.75, stage: 'refine', eta_s: 2 }));
  assert.equal(s.panel.rows.find((row) => row.jobId === 'job-2').progress, 0.75);
  done(s, 'job-2');
  done(s, 'job-4');
  await settle();
  for (const id of ['doc-1', 'doc-2', 'doc-3', 'doc-4']) {
    assert.deepEqual(s.adapter.steps(id), ['ML Retouch: Volume'], `${id} has exactly one step`);
  }
  assert.equal(s.adapter.named('commitResult').length, 4);
});

// A job restored after a sidecar restart publishes its history again, seq from 0 up.
const replayedHistory = (s, jobId) => {
  for (const type of ['queued', 'started', 'progress']) {
    s.events.emit('event', event(type, jobId, { progress: 0.5, stage: 'refine' }));
  }
  done(s, jobId);
};

test('a second done for a placed Apply, by event, replay or resync, places, replaces and removes nothing', async () => {
  const s = setup();
  const running = s.panel.apply('beauty');
  await settle();
  emitPreview(s, 'job-1', 'draft', 1);
  await settle();
  done(s, 'job-1');
  assert.deepEqual(await running, { jobId: 'job-1', layerId: 'layer-2' });
  const row = s.panel.rows[0];

  done(s, 'job-1'); // the same done again, once the stream is back
  replayedHistory(s, 'job-1');
  s.client.statuses.set('job-1', status('job-1', 'done'));
  await s.panel.resync();
  await settle();

  assert.deepEqual(s.adapter.documentChanges().map((call) => call.name), ['placeDraft', 'commitResult']);
  assert.deepEqual(s.adapter.steps(), ['ML Retouch: Beauty']);
  assert.deepEqual(s.adapter.layersOf().map(({ id, draft }) => [id, draft]), [['layer-2', false]]);
  assert.equal(s.client.named('result').length, 1, 'the result is fetched once');
  assert.deepEqual(s.client.named('job'), [], 'a finished row is not asked about');
  assert.equal(s.panel.rows[0], row, 'the row is left as it was');
  assert.deepEqual(s.panel.result.layerId, 'layer-2');
});

test('a done that comes again while the final is going in, then by a resync, is placed once', async () => {
  const s = setup();
  const committing = deferred();
  s.adapter.gates.set('commitResult', committing.promise);
  const running = s.panel.apply('beauty');
  await settle();
  done(s, 'job-1');
  await settle();
  assert.equal(s.adapter.named('commitResult').length, 1, 'the final is going in');

  done(s, 'job-1');
  s.client.statuses.set('job-1', status('job-1', 'done'));
  await s.panel.resync();
  committing.resolve();
  assert.deepEqual(await running, { jobId: 'job-1', layerId: 'layer-1' });
  done(s, 'job-1');
  await settle();

  assert.equal(s.adapter.named('commitResult').length, 1);
  assert.deepEqual(s.adapter.steps(), ['ML Retouch: Beauty']);
  assert.deepEqual(s.adapter.named('discardDraft'), []);
  assert.equal(s.panel.state.phase, 'done');
});

test('a resync whose answer comes after the done event neither reopens the row nor places again', async () => {
  const s = setup();
  const running = s.panel.apply('beauty');
  await settle();
  const asking = deferred();
  s.client.gates.set('job', asking.promise);
  // The status was read before the job ended; its answer comes after the done event.
  s.client.statuses.set('job-1', status('job-1', 'running', { progress: 0.4 }));
  const resyncing = s.panel.resync();
  await settle();
  done(s, 'job-1');
  await running;
  asking.resolve();
  await resyncing;
  s.client.statuses.set('job-1', status('job-1', 'done'));
  await s.panel.resync();
  await settle();

  assert.deepEqual([s.panel.rows[0].state, s.panel.rows[0].progress], ['done', 1]);
  assert.deepEqual(s.client.named('job'), [['job-1']], 'the second resync asks nothing');
  assert.equal(s.adapter.named('commitResult').length, 1);
  assert.deepEqual(s.adapter.steps(), ['ML Retouch: Beauty']);
});

test('queued documents: a second done, a replayed history and a resync place nothing again', async () => {
  const s = setup({ docs: [doc(1), doc(2)] });
  await s.panel.queueDocuments('color');
  done(s, 'job-1');
  done(s, 'job-2');
  await settle();
  done(s, 'job-1');
  replayedHistory(s, 'job-2');
  s.client.statuses.set('job-1', status('job-1', 'done'));
  s.client.statuses.set('job-2', status('job-2', 'done'));
  await s.panel.resync();
  await settle();

  assert.deepEqual(s.adapter.named('commitResult').map(([docId]) => docId), ['doc-1', 'doc-2']);
  for (const id of ['doc-1', 'doc-2']) assert.deepEqual(s.adapter.steps(id), ['ML Retouch: Color'], id);
  assert.deepEqual(
    s.panel.rows.map((row) => [row.state, row.placement]),
    [
      ['done', 'placed'],
      ['done', 'placed'],
    ],
  );
  assert.deepEqual(s.client.named('job'), []);
  assert.equal(s.client.named('result').length, 2);
});

// --- Document events ----------------------------------------------------------------

test('watchDocuments wires opened, selected, closed, historyChanged and idle to precompute and stopPrecompute', async () => {
  const s = setup({ docs: [doc(1), doc(2)] });
  const stop = s.panel.watchDocuments();
  assert.equal(s.adapter.listeners.length, 1);
  const [listener] = s.adapter.listeners;

  await listener.opened(doc(1));
  assert.equal(s.panel.activeDocId, 'doc-1');
  assert.deepEqual(s.adapter.named('readPixels'), [], 'no pixels read until the user is idle');
  await listener.idle();
  assert.deepEqual(s.client.named('precompute'), [
    [{ imageId: 'img-1', documentId: 'doc-1', layerStackHash: 'hash-a', ops: undefined }],
  ]);

  await listener.selected(doc(2));
  assert.equal(s.panel.activeDocId, 'doc-2');
  await listener.idle();
  assert.deepEqual(s.client.named('precompute')[1][0], {
    imageId: 'img-2',
    documentId: 'doc-2',
    layerStackHash: 'hash-b',
    ops: undefined,
  });

  await listener.historyChanged(doc(2)); // same hash: nothing to do
  await listener.idle();
  assert.equal(s.client.named('precompute').length, 2);
  await listener.historyChanged(doc(2, { layerStackHash: 'hash-b2' }));
  await listener.idle();
  assert.deepEqual(s.client.named('precompute')[2][0].layerStackHash, 'hash-b2');
  assert.equal(s.client.named('uploadRaw').length, 3);

  s.client.failures.set('stopPrecompute', new Error('offline'));
  assert.equal(await listener.closed('doc-2'), undefined, 'a failing sidecar does not reach the host');
  assert.deepEqual(s.client.named('stopPrecompute'), [['doc-2']]);
  assert.equal(s.panel.activeDocId, null);

  stop();
  assert.equal(s.adapter.listeners.length, 0);
  assert.equal(s.adapter.named('stopWatching').length, 1);
});

test('opening or selecting a document uploads it once, when the user is idle, and starts its precompute', async () => {
  const s = setup({ docs: [doc(1), doc(2)] });
  await s.panel.documentOpened(doc(1));
  assert.deepEqual(s.adapter.named('readPixels'), []);
  await s.panel.userIdle();
  assert.deepEqual(s.client.named('precompute'), [
    [{ imageId: 'img-1', documentId: 'doc-1', layerStackHash: 'hash-a', ops: undefined }],
  ]);
  await s.panel.documentSelected(doc(2));
  await s.panel.userIdle();
  assert.equal(s.client.named('precompute')[1][0].documentId, 'doc-2');
  assert.equal(s.panel.activeDocId, 'doc-2');

  await s.panel.documentSelected(doc(1));
  await s.panel.userIdle();
  assert.equal(s.client.named('uploadRaw').length, 2, 'doc-1 is not uploaded again');
  assert.equal(s.client.named('precompute').length, 3);
});

test('closing a document stops its precompute, forgets its image and its result layer', async () => {
  const s = setup({ cached: true });
  await s.panel.documentSelected(await s.adapter.activeDocument());
  await s.panel.apply('beauty');
  assert.equal(s.panel.result.docId, 'doc-1');
  await s.panel.documentClosed('doc-1');
  assert.deepEqual(s.client.named('stopPrecompute'), [['doc-1']]);
  assert.equal(s.panel.result, null);
  await s.panel.slider(20);
  assert.equal(s.adapter.named('setLayerOpacity').length, 0);
  await s.panel.apply('beauty');
  assert.equal(s.client.named('uploadRaw').length, 2);
});

test('a history change with the same hash does nothing; a new hash invalidates and precomputes again', async () => {
  const s = setup();
  await s.panel.documentSelected(PORTRAIT);
  await s.panel.userIdle();
  await s.panel.historyChanged(PORTRAIT);
  await s.panel.userIdle();
  assert.equal(s.client.named('precompute').length, 1);
  assert.equal(s.client.named('uploadRaw').length, 1);

  await s.panel.historyChanged({ ...PORTRAIT, layerStackHash: 'hash-2' });
  assert.equal(s.client.named('uploadRaw').length, 1, 'a brush stroke reads no pixels');
  await s.panel.userIdle();
  assert.equal(s.client.named('uploadRaw').length, 2);
  assert.deepEqual(s.client.named('precompute')[1][0], {
    imageId: 'img-2',
    documentId: 'doc-1',
    layerStackHash: 'hash-2',
    ops: undefined,
  });
});

test('history changes while the user works are read once, the newest, when they pause', async () => {
  const s = setup();
  await s.panel.documentSelected(PORTRAIT);
  await s.panel.userIdle();
  for (const hash of ['hash-2', 'hash-3', 'hash-4']) await s.panel.historyChanged({ ...PORTRAIT, layerStackHash: hash });
  assert.equal(s.adapter.named('readPixels').length, 1, 'no reads while painting');
  await s.panel.userIdle();
  await s.panel.userIdle(); // a second idle with nothing new reads nothing
  assert.deepEqual(
    s.client.named('precompute').map(([request]) => request.layerStackHash),
    ['hash-1', 'hash-4'],
  );
  assert.equal(s.client.named('uploadRaw').length, 2, 'hash-2 and hash-3 are never read nor uploaded');
});

test('a precompute whose upload finishes after a switch does not stop the new document', async () => {
  const s = setup({ docs: [doc(1), doc(2)] });
  await s.panel.documentSelected(doc(1));
  const first = s.panel.userIdle();
  const second = s.panel.documentSelected(doc(2));
  await Promise.all([first, second]);
  await s.panel.userIdle();
  assert.deepEqual(s.client.named('precompute').map(([request]) => request.documentId), ['doc-2']);
});

// --- Wiring -------------------------------------------------------------------------

test('the fake host implements the whole contract, and a panel refuses an adapter that lacks a method', () => {
  assert.equal(checkAdapter(fakeAdapter()).frontId, 'doc-1');
  for (const name of ADAPTER_METHODS) {
    const adapter = fakeAdapter();
    delete adapter[name];
    assert.throws(() => new Panel({ adapter, client: fakeClient() }), new RegExp(`missing: ${name}$`));
  }
});

test('the panel follows a job through a real EventStream: draft frame to layer, done to final', async () => {
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
  const client = fakeClient();
  const panel = new Panel({ adapter, client, events: stream });
  const running = panel.apply('beauty');
  await settle();

  const draft = preview('job-1', 'draft');
  const header = new TextEncoder().encode(JSON.stringify(draft));
  const frame = new Uint8Array(4 + header.length + 3);
  new DataView(frame.buffer).setUint32(0, header.length, false);
  frame.set(header, 4);
  frame.set(jpeg(7), 4 + header.length);
  socket.onmessage({ data: frame.buffer });
  await settle();
  assert.deepEqual(adapter.steps(), ['ML Retouch: Beauty']);
  assert.deepEqual(adapter.layersOf()[0].pixels, draftPixels(draft.seq));

  socket.onmessage({ data: JSON.stringify(event('done', 'job-1', { cached: false, result_url: '/r' })) });
  assert.deepEqual(await running, { jobId: 'job-1', layerId: 'layer-2' });
  stream.close();

  assert.deepEqual(adapter.named('showThumbnail').map(([shown]) => [...(shown ?? [])]), [[], [...jpeg(7)]]);
  assert.deepEqual(client.named('preview'), [['job-1', draft.seq, { format: 'raw' }]]);
  assert.deepEqual(adapter.steps(), ['ML Retouch: Beauty']);
  assert.deepEqual(adapter.layersOf().map(({ id, pixels: held }) => [id, held]), [['layer-2', pixels(201)]]);
});

test('stepping back to a state uploaded before asks HEAD and skips the upload', async () => {
  const s = setup();
  await s.panel.documentSelected(PORTRAIT);
  await s.panel.userIdle();
  await s.panel.historyChanged({ ...PORTRAIT, layerStackHash: 'hash-2' });
  await s.panel.userIdle();
  assert.equal(s.client.named('uploadRaw').length, 2);
  await s.panel.historyChanged(PORTRAIT); // undo: back to the first state
  await s.panel.userIdle();
  assert.deepEqual(s.client.named('hasImage'), [['img-1']]);
  assert.equal(s.client.named('uploadRaw').length, 2, 'no third upload');
  assert.equal(s.client.named('precompute').at(-1)[0].imageId, 'img-1');
});

test('a state the sidecar no longer holds is uploaded again', async () => {
  const s = setup();
  await s.panel.documentSelected(PORTRAIT);
  await s.panel.userIdle();
  await s.panel.historyChanged({ ...PORTRAIT, layerStackHash: 'hash-2' });
  await s.panel.userIdle();
  s.client.stored.clear(); // the sidecar's store was emptied
  await s.panel.historyChanged(PORTRAIT);
  await s.panel.userIdle();
  assert.deepEqual(s.client.named('hasImage'), [['img-1']]);
  assert.equal(s.client.named('uploadRaw').length, 3);
  assert.equal(s.client.named('precompute').at(-1)[0].imageId, 'img-3');
});

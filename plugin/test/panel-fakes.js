'use strict';
// The Panel's (panel-state.js) stand-ins for its tests: a host adapter that keeps the
// contract's history discipline and reports any breach, a sidecar client, an event
// stream that replays a job's history when the panel follows it, and small helpers.
const test = require('node:test');
const assert = require('node:assert/strict');
const { Panel } = require('../panel-state.js');
const contract = require('../adapter-contract.js');

const DOCUMENT_CHANGES = new Set(contract.DOCUMENT_CHANGES);

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

// Holds a fake's method (the adapter's or the client's) at its start until the
// answer's resolve().
function hold(fake, name) {
  const gate = deferred();
  fake.gates.set(name, gate.promise);
  return gate;
}

// Starts an Apply and lets the panel run to where it waits for its job's events. Answers
// { running }: the Apply's promise, in an object so that it is not awaited here.
async function applying(s, op = 'beauty') {
  const running = s.panel.apply(op);
  await settle();
  return { running };
}

// The same, then the job sends its first draft and the panel takes it in. Answers
// { running } and the draft's header.
async function applyingWithDraft(s, op = 'beauty') {
  const { running } = await applying(s, op);
  const header = emitPreview(s, `job-${s.client.named('submit').length}`, 'draft', 1);
  await settle();
  return { running, header };
}

const thumbnails = (s) => s.adapter.named('showThumbnail').map(([shown]) => shown);

module.exports = {
  // The fakes and the world they make.
  DOCUMENT_CHANGES, fakeAdapter, fakeClient, fakeEvents, setup,
  // What goes through them.
  pixels, draftPixels, PORTRAIT, doc, jpeg, event, preview,
  // Driving a test.
  settle, deferred, hold, emitPreview, done, applied, applying, applyingWithDraft, thumbnails,
};

'use strict';
// Results that Photoshop cannot take yet (it is modal) wait and go in later; a final that
// cannot go in at all takes its draft with it. Panel + in-memory Photoshop adapter.
const test = require('node:test');
const assert = require('node:assert/strict');

const { Panel } = require('../panel-state.js');
const { createPhotoshopAdapter, GROUP_NAME } = require('../photoshop-adapter.js');
const { Placements } = require('../placements.js');
const { createFakeHost, fakeUxp } = require('./fake-photoshop.js');

let seq = 0;
const event = (type, jobId, fields = {}) => ({ type, job_id: jobId, seq: ++seq, ts: new Date().toISOString(), ...fields });

function setup() {
  const host = createFakeHost({ version: '25.0.0' });
  const composite = { data: new Uint8Array(8 * 4 * 3).fill(9), width: 8, height: 4, components: 3 };
  const docs = [1, 2].map((n) => host.open({ name: `shot-${n}.tif`, width: 8, height: 4, composite }));
  host.active = docs[0];
  const adapter = createPhotoshopAdapter({
    photoshop: host.photoshop,
    uxp: fakeUxp(undefined, host.version),
    document: { getElementById: () => null },
    modalDelaysMs: [1],
  });
  const listeners = new Set();
  const events = {
    listen(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    follow() {},
    unfollow() {},
    emit(item) {
      for (const listener of listeners) listener.onEvent(item);
    },
    preview(header) {
      for (const listener of listeners) listener.onPreview(header, new Uint8Array([0xff, 0xd8]));
    },
  };
  let jobs = 0;
  const client = {
    results: 0,
    failResult: null,
    async uploadRaw(bytes, shape) {
      return { image_id: `img-${bytes.length}`, ...shape };
    },
    async hasImage() {
      return false;
    },
    async submit() {
      jobs += 1;
      return { job_id: `job-${jobs}`, state: 'queued', cached: false };
    },
    async result() {
      this.results += 1;
      if (this.failResult) throw this.failResult;
      return { bytes: new Uint8Array(8 * 4 * 3).fill(200), width: 8, height: 4, channels: 3, depth: 8 };
    },
    async preview() {
      return { bytes: new Uint8Array(2 * 1 * 3).fill(50), width: 2, height: 1, channels: 3, depth: 8 };
    },
    async recordAction() {},
    async precompute() {},
    async stopPrecompute() {},
  };
  const states = [];
  const panel = new Panel({ adapter, client, events, precompute: false, placeRetryMs: [1, 2], onChange: (state) => states.push({ ...state }) });
  return { host, docs, adapter, client, events, panel, states };
}

const tick = () => new Promise((resolve) => setImmediate(resolve));
async function until(condition, what) {
  for (let i = 0; i < 2000; i += 1) {
    if (condition()) return;
    await tick();
  }
  assert.fail(`never happened: ${what}`);
}
const stepNames = (doc) => doc.states.map((state) => state.name);

// An Apply whose draft is in the document; resolves with the Apply's own promise.
async function applyWithDraft(s, doc) {
  const applying = s.panel.apply('beauty');
  await until(() => s.panel.currentJobId === 'job-1', 'the job is submitted');
  s.events.preview({ job_id: 'job-1', seq: ++seq, level: 'draft' });
  await until(() => retouchLayers(doc).length === 1, 'the draft is in');
  return { applying };
}
const retouchLayers = (doc) => doc.tree.find((node) => node.name === GROUP_NAME)?.children ?? [];

test('an Apply whose final meets a modal Photoshop waits, then replaces its draft once Photoshop is free', async () => {
  const s = setup();
  const [doc] = s.docs;
  const { applying } = await applyWithDraft(s, doc);
  s.host.otherModal = true; // the user opened a dialog
  s.events.emit(event('done', 'job-1'));
  await until(() => s.panel.placements.size === 1, 'the final waits');
  assert.equal(s.panel.state.phase, 'placing');
  assert.match(s.panel.state.message, /Photoshop is busy/);
  assert.equal(retouchLayers(doc)[0].pixels.data[0], 50, 'the draft is still what the layer holds');
  s.host.otherModal = false; // the dialog closed
  const placed = await applying;
  assert.equal(placed.jobId, 'job-1');
  assert.deepEqual(stepNames(doc), ['Open', 'ML Retouch: Beauty'], 'still one step');
  assert.equal(retouchLayers(doc).length, 1);
  assert.equal(retouchLayers(doc)[0].pixels.data[0], 200, 'the final');
  assert.equal(s.panel.state.phase, 'done');
});

test('a final that cannot go in removes its draft: no blurry draft left as the result', async () => {
  const s = setup();
  const [doc] = s.docs;
  const { applying } = await applyWithDraft(s, doc);
  s.host.failPutPixels = true;
  s.events.emit(event('done', 'job-1'));
  assert.equal(await applying, null);
  assert.equal(s.panel.state.phase, 'failed');
  assert.match(s.panel.state.message, /putPixels failed/);
  assert.deepEqual(retouchLayers(doc), [], 'the draft is gone');
  assert.equal(doc.activeHistoryState.name, 'Open', 'the draft step is undone');
});

test('queued results that meet a modal Photoshop are shown waiting and placed later; none is lost', async () => {
  const s = setup();
  const [first, second] = s.docs;
  s.host.otherModal = true;
  const submitted = await s.panel.queueDocuments('volume', [
    { id: first.id, name: first.name, layerStackHash: 'a' },
    { id: second.id, name: second.name, layerStackHash: 'b' },
  ]).catch((error) => error);
  assert.ok(Array.isArray(submitted) === false || submitted.length === 0, 'no pixels can be read while Photoshop is modal');
  s.host.otherModal = false;
  const jobs = await s.panel.queueDocuments('volume', [
    { id: first.id, name: first.name, layerStackHash: 'a' },
    { id: second.id, name: second.name, layerStackHash: 'b' },
  ]);
  assert.equal(jobs.length, 2);
  s.host.otherModal = true;
  for (const jobId of jobs) s.events.emit(event('done', jobId));
  await until(() => s.panel.rows.filter((row) => row.placement === 'waiting').length === 2, 'both rows wait');
  assert.deepEqual(retouchLayers(first), []);
  s.host.otherModal = false;
  s.panel.userIdle(); // Photoshop answered: try now
  await until(() => s.panel.rows.every((row) => row.placement === 'placed'), 'both placed');
  for (const doc of s.docs) assert.equal(retouchLayers(doc).length, 1, `${doc.name} has its layer`);
  assert.equal(s.panel.placements.size, 0);
});

test('a waiting result whose document closes is given up, and says so', async () => {
  const placements = new Placements({ delaysMs: [1] });
  let tries = 0;
  const waiting = placements.add({
    key: 'job-1',
    docId: 'doc-1',
    attempt: async () => {
      tries += 1;
      throw Object.assign(new Error('host is in a modal state'), { number: 9 });
    },
  });
  await until(() => tries >= 2, 'tried again on its own');
  placements.dropDocument('doc-1');
  await assert.rejects(waiting, /document was closed/);
  assert.equal(placements.size, 0);
});

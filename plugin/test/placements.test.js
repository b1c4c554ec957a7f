'use strict';
// Results that Photoshop cannot take yet (it is modal) wait and go in later; a final that
// cannot go in at all takes its draft with it. Panel + in-memory Photoshop adapter.
const test = require('node:test');
const assert = require('node:assert/strict');

const { Panel } = require('../panel-state.js');
const { createPhotoshopAdapter, GROUP_NAME } = require('../photoshop-adapter.js');
const { Placements, RETRY_DELAYS_MS } = require('../placements.js');
const modal = require('../modal.js');
const { createFakeHost, fakeUxp } = require('./fake-photoshop.js');
const { mockClock } = require('./clock.js');

// How long the adapter tries a change while Photoshop is modal before the panel hears of it.
const MODAL_RETRIES_MS = modal.RETRY_DELAYS_MS.reduce((sum, ms) => sum + ms, 0);

let seq = 0;
const event = (type, jobId, fields = {}) => ({ type, job_id: jobId, seq: ++seq, ts: new Date().toISOString(), ...fields });

function setup(t) {
  const clock = mockClock(t);
  const host = createFakeHost({ version: '25.0.0' });
  const composite = { data: new Uint8Array(8 * 4 * 3).fill(9), width: 8, height: 4, components: 3 };
  const docs = [1, 2].map((n) => host.open({ name: `shot-${n}.tif`, width: 8, height: 4, composite }));
  host.active = docs[0];
  const adapter = createPhotoshopAdapter({
    photoshop: host.photoshop,
    uxp: fakeUxp(undefined, host.version),
    document: { getElementById: () => null },
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
  const panel = new Panel({ adapter, client, events, precompute: false, onChange: (state) => states.push({ ...state }) });
  const until = (condition, what) => clock.until(condition, what, { stepMs: 250 });
  return { clock, until, host, docs, adapter, client, events, panel, states };
}

const stepNames = (doc) => doc.states.map((state) => state.name);

// An Apply whose draft is in the document; resolves with the Apply's own promise.
async function applyWithDraft(s, doc) {
  const applying = s.panel.apply('beauty');
  await s.until(() => s.panel.currentJobId === 'job-1', 'the job is submitted');
  s.events.preview({ job_id: 'job-1', seq: ++seq, level: 'draft' });
  await s.until(() => retouchLayers(doc).length === 1, 'the draft is in');
  return { applying };
}
const retouchLayers = (doc) => doc.tree.find((node) => node.name === GROUP_NAME)?.children ?? [];

test('an Apply whose final meets a modal Photoshop waits, then replaces its draft once Photoshop is free', async (t) => {
  const s = setup(t);
  const [doc] = s.docs;
  const { applying } = await applyWithDraft(s, doc);
  s.host.otherModal = true; // the user opened a dialog
  s.events.emit(event('done', 'job-1'));
  const done = s.clock.now();
  await s.until(() => s.panel.layers.placements.size === 1, 'the final waits');
  assert.equal(s.clock.now() - done, MODAL_RETRIES_MS, 'once the adapter has given up trying');
  assert.equal(s.panel.state.phase, 'placing');
  assert.match(s.panel.state.message, /Photoshop is busy/);
  assert.equal(retouchLayers(doc)[0].pixels.data[0], 50, 'the draft is still what the layer holds');
  s.host.otherModal = false; // the dialog closed
  const waiting = s.clock.now();
  const placed = await s.clock.settle(applying, 'the Apply ends', { stepMs: 250 });
  assert.equal(s.clock.now() - waiting, RETRY_DELAYS_MS[0], 'placed at the next try');
  assert.equal(placed.jobId, 'job-1');
  assert.deepEqual(stepNames(doc), ['Open', 'ML Retouch: Beauty'], 'still one step');
  assert.equal(retouchLayers(doc).length, 1);
  assert.equal(retouchLayers(doc)[0].pixels.data[0], 200, 'the final');
  assert.equal(s.panel.state.phase, 'done');
});

test('a final that cannot go in removes its draft: no blurry draft left as the result', async (t) => {
  const s = setup(t);
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

test('queued results that meet a modal Photoshop are shown waiting and placed later; none is lost', async (t) => {
  const s = setup(t);
  const [first, second] = s.docs;
  s.host.otherModal = true;
  const queueing = s.panel.queueDocuments('volume', [
    { id: first.id, name: first.name, layerStackHash: 'a' },
    { id: second.id, name: second.name, layerStackHash: 'b' },
  ]);
  const submitted = await s.clock.settle(queueing, 'both refused', { stepMs: 250 }).catch((error) => error);
  assert.ok(Array.isArray(submitted) === false || submitted.length === 0, 'no pixels can be read while Photoshop is modal');
  s.host.otherModal = false;
  const jobs = await s.panel.queueDocuments('volume', [
    { id: first.id, name: first.name, layerStackHash: 'a' },
    { id: second.id, name: second.name, layerStackHash: 'b' },
  ]);
  assert.equal(jobs.length, 2);
  s.host.otherModal = true;
  for (const jobId of jobs) s.events.emit(event('done', jobId));
  await s.until(() => s.panel.rows.filter((row) => row.placement === 'waiting').length === 2, 'both rows wait');
  assert.deepEqual(retouchLayers(first), []);
  s.host.otherModal = false;
  const freed = s.clock.now();
  s.panel.userIdle(); // Photoshop answered: try now
  await s.until(() => s.panel.rows.every((row) => row.placement === 'placed'), 'both placed');
  // A try already under way finishes its modal wait first; the rest go in at once.
  assert.ok(s.clock.now() - freed < RETRY_DELAYS_MS[0], 'sooner than the next retry');
  for (const doc of s.docs) assert.equal(retouchLayers(doc).length, 1, `${doc.name} has its layer`);
  assert.equal(s.panel.layers.placements.size, 0);
});

test('a waiting result is tried again 2, 5, 10, 30, 30 s apart until its document closes', async (t) => {
  const clock = mockClock(t);
  const placements = new Placements();
  const tries = [];
  const waiting = placements.add({
    key: 'job-1',
    docId: 'doc-1',
    attempt: async () => {
      tries.push(clock.now());
      throw Object.assign(new Error('host is in a modal state'), { number: 9 });
    },
  });
  await clock.until(() => tries.length === 5, 'tried again on its own', { stepMs: 1000 });
  assert.deepEqual(RETRY_DELAYS_MS, [2000, 5000, 10000, 30000]);
  assert.deepEqual(tries, [2000, 7000, 17000, 47000, 77000]);
  placements.dropDocument('doc-1');
  await assert.rejects(waiting, /document was closed/);
  assert.equal(placements.size, 0);
});

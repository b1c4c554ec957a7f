'use strict';
// A job's pixels into its document (result-layers.js) on its own, with a stub adapter
// and client: the draft skipped rather than late, the final waiting while Photoshop is
// modal, a draft taken out when the final cannot go in, Refine's history step.
const test = require('node:test');
const assert = require('node:assert/strict');

const { ResultLayers } = require('../result-layers.js');
const { RETRY_DELAYS_MS } = require('../placements.js');
const { ModalBusyError } = require('../modal.js');
const { mockClock } = require('./clock.js');

const raw = (fill) => ({ bytes: new Uint8Array(3).fill(fill), width: 1, height: 1, channels: 3, depth: 8, extra: 'x' });

// Records the adapter calls; `refuse` (method → error or a function giving one) scripts it.
function setup() {
  const calls = [];
  const refuse = new Map();
  const record = (name) =>
    async (...args) => {
      calls.push([name, ...args]);
      const error = typeof refuse.get(name) === 'function' ? refuse.get(name)() : refuse.get(name);
      if (error) throw error;
      return name === 'placeDraft' ? { layerId: 'draft-layer' } : 'final-layer';
    };
  const adapter = {
    placeDraft: record('placeDraft'),
    commitResult: record('commitResult'),
    discardDraft: record('discardDraft'),
    replaceResult: record('replaceResult'),
  };
  const client = {
    preview: async () => raw(1),
    result: async () => raw(2),
  };
  return { layers: new ResultLayers({ adapter, client }), calls, refuse, client };
}

const JOB = { docId: 'doc-1', op: 'dodge_burn' };
const HEADER = { job_id: 'job-1', seq: 4, level: 'draft' };

test('a draft goes in named after its op, with plain pixels; a job that ended meanwhile gets none', async () => {
  const s = setup();
  assert.deepEqual(await s.layers.placeDraft({ ...JOB, closed: false }, HEADER), { layerId: 'draft-layer' });
  const [[name, docId, { pixels, ...names }]] = s.calls;
  assert.deepEqual([name, docId, names], [
    'placeDraft',
    'doc-1',
    { name: 'Dodge & Burn', historyName: 'ML Retouch: Dodge & Burn' },
  ]);
  const { extra, ...plain } = raw(1);
  assert.deepEqual(pixels, plain, 'the pixels only, nothing else the client answered');
  const job = { ...JOB, closed: false };
  s.client.preview = async () => {
    job.closed = true; // the done came while the preview was fetched
    return raw(1);
  };
  assert.equal(await s.layers.placeDraft(job, HEADER), null);
  assert.equal(s.calls.length, 1);
});

test('a draft that cannot be fetched or placed is skipped, not an error', async () => {
  const s = setup();
  s.refuse.set('placeDraft', new ModalBusyError('ML Retouch: Beauty'));
  assert.equal(await s.layers.placeDraft({ ...JOB, closed: false }, HEADER), null);
  s.client.preview = async () => {
    throw new Error('not_found');
  };
  assert.equal(await s.layers.placeDraft({ ...JOB, closed: false }, HEADER), null);
  assert.equal(s.layers.placements.size, 0, 'a draft never waits');
});

test('a final refused while Photoshop is modal waits, says so, and goes in at the next try', async (t) => {
  const clock = mockClock(t);
  const s = setup();
  let busy = true;
  s.refuse.set('commitResult', () => (busy ? new ModalBusyError('ML Retouch: Beauty') : null));
  let waiting = 0;
  const draft = { layerId: 'draft-layer' };
  const placing = s.layers.placeResult(JOB, 'job-1', { draft, waiting: () => (waiting += 1) });
  await clock.advance(0);
  assert.equal(waiting, 1);
  assert.equal(s.layers.placements.has('job-1'), true);
  busy = false;
  assert.equal(await clock.settle(placing, 'placed', { stepMs: 100 }), 'final-layer');
  assert.equal(clock.now(), RETRY_DELAYS_MS[0]);
  const commits = s.calls.filter(([name]) => name === 'commitResult');
  assert.equal(commits.length, 2);
  assert.equal(commits[1][2].draft, draft, 'in place of the draft');
  assert.equal(commits[1][2].historyName, 'ML Retouch: Dodge & Burn');
});

test('a final that cannot go in takes its draft out and reports why', async () => {
  const s = setup();
  s.refuse.set('commitResult', new Error('putPixels failed'));
  const draft = { layerId: 'draft-layer' };
  await assert.rejects(s.layers.placeResult(JOB, 'job-1', { draft, waiting: () => {} }), /putPixels failed/);
  assert.deepEqual(s.calls.at(-1), ['discardDraft', 'doc-1', draft]);
});

test('removing a draft never throws, even when Photoshop refuses', async () => {
  const s = setup();
  s.refuse.set('discardDraft', new Error('The layer is locked.'));
  await s.layers.removeDraft('doc-1', 'job-1', { layerId: 'draft-layer' });
  assert.equal(s.calls.length, 1);
});

test('Refine puts the result into the Apply’s layer as one step named with its intensity', async () => {
  const s = setup();
  assert.equal(await s.layers.replaceLayer({ ...JOB, layerId: 'layer-7' }, 'job-2', 49.6), 'layer-7');
  const [[name, docId, layerId, { historyName, pixels }]] = s.calls;
  assert.deepEqual([name, docId, layerId, historyName], [
    'replaceResult',
    'doc-1',
    'layer-7',
    'ML Retouch: Refine Dodge & Burn at 50 %',
  ]);
  assert.deepEqual(Object.keys(pixels).sort(), ['bytes', 'channels', 'depth', 'height', 'width']);
});

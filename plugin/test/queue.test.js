'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const { createRow, order, applyEvent, applyPreview, applyStatus, star, cancel } = require('../queue.js');

function row(jobId, fields = {}) {
  return { ...createRow({ jobId, docId: 'doc-b', name: jobId, submittedAt: 0 }), ...fields };
}

const at = (iso) => `2025-01-01T00:00:${iso}Z`;

test('the view order is: active document, hero, normal FIFO, background, then finished newest first', () => {
  const rows = [
    row('normal-late', { submittedAt: 30 }),
    row('finished-old', { state: 'done', submittedAt: 1, finishedAt: 100 }),
    row('background', { priority: 'background', submittedAt: 2 }),
    row('hero', { priority: 'hero', submittedAt: 40 }),
    row('normal-early', { submittedAt: 10, state: 'running' }),
    row('front', { docId: 'doc-a', submittedAt: 50 }),
    row('finished-new', { state: 'failed', submittedAt: 3, finishedAt: 300 }),
    row('front-background', { docId: 'doc-a', priority: 'background', submittedAt: 5 }),
    row('cancelled-mid', { state: 'cancelled', submittedAt: 4, finishedAt: 200 }),
  ];
  assert.deepEqual(
    order(rows, 'doc-a').map((each) => each.jobId),
    [
      'front',
      'hero',
      'normal-early',
      'normal-late',
      'background',
      'front-background',
      'finished-new',
      'cancelled-mid',
      'finished-old',
    ],
  );
});

test('switching the document in front brings its rows to the top', () => {
  const rows = [row('a', { docId: 'doc-a', submittedAt: 1 }), row('b', { docId: 'doc-b', submittedAt: 2 })];
  assert.deepEqual(order(rows, 'doc-b').map((each) => each.jobId), ['b', 'a']);
  assert.deepEqual(order(rows, 'doc-a').map((each) => each.jobId), ['a', 'b']);
});

test('order does not change the rows it is given', () => {
  const rows = [row('late', { submittedAt: 2 }), row('early', { submittedAt: 1 })];
  order(rows, null);
  assert.deepEqual(rows.map((each) => each.jobId), ['late', 'early']);
});

test('job events move a row through running, progress and done', () => {
  let rows = [row('job-1')];
  rows = applyEvent(rows, { type: 'started', job_id: 'job-1', seq: 1, ts: at('01') });
  assert.equal(rows[0].state, 'running');
  rows = applyEvent(rows, { type: 'stage', job_id: 'job-1', seq: 2, stage: 'analysis', index: 0, count: 5 });
  assert.equal(rows[0].stage, 'analysis');
  rows = applyEvent(rows, { type: 'progress', job_id: 'job-1', seq: 3, progress: 0.4, stage: 'refine', eta_s: 6 });
  assert.deepEqual([rows[0].progress, rows[0].stage, rows[0].etaS], [0.4, 'refine', 6]);
  rows = applyEvent(rows, { type: 'done', job_id: 'job-1', seq: 4, ts: at('09'), cached: false });
  assert.deepEqual([rows[0].state, rows[0].progress, rows[0].seq], ['done', 1, 4]);
  assert.equal(rows[0].finishedAt, Date.parse(at('09')));
});

test('a failed event keeps the sidecar message; requeued goes back to queued', () => {
  let rows = [row('job-1', { state: 'running', seq: 3 })];
  rows = applyEvent(rows, { type: 'requeued', job_id: 'job-1', seq: 4, reason: 'preempted by an active job' });
  assert.equal(rows[0].state, 'queued');
  rows = applyEvent(rows, {
    type: 'failed',
    job_id: 'job-1',
    seq: 5,
    error: { code: 'engine_unavailable', message: 'The diffusion engine is not loaded.' },
  });
  assert.equal(rows[0].state, 'failed');
  assert.equal(rows[0].error, 'The diffusion engine is not loaded.');
});

test('applyEvent ignores events whose seq is not newer than the row', () => {
  const progress = { type: 'progress', job_id: 'job-1', seq: 5, progress: 0.5, stage: 'refine' };
  const rows = applyEvent([row('job-1')], progress);
  const same = applyEvent(rows, { type: 'progress', job_id: 'job-1', seq: 5, progress: 0.9, stage: 'final' });
  const older = applyEvent(rows, { type: 'started', job_id: 'job-1', seq: 2 });
  assert.equal(same, rows);
  assert.equal(older, rows);
  assert.equal(rows[0].progress, 0.5);
  assert.equal(rows[0].state, 'queued');
});

test('applyEvent leaves rows alone for a job it does not show', () => {
  const rows = [row('job-1')];
  assert.equal(applyEvent(rows, { type: 'done', job_id: 'job-9', seq: 1 }), rows);
});

test('a preview becomes the row thumbnail, latest seq wins', () => {
  const jpeg = new Uint8Array([0xff, 0xd8, 1]);
  let rows = applyPreview([row('job-1')], { job_id: 'job-1', seq: 4, level: 'draft' }, jpeg);
  assert.equal(rows[0].thumbnail, jpeg);
  rows = applyPreview(rows, { job_id: 'job-1', seq: 3, level: 'draft' }, new Uint8Array([2]));
  assert.equal(rows[0].thumbnail, jpeg);
});

// A GET /v1/jobs/{id} answer, as resync gets it after a reconnect.
function status(jobId, state, fields = {}) {
  return {
    job_id: jobId,
    op: 'beauty',
    state,
    priority: 'normal',
    position: null,
    progress: 0,
    stage: null,
    eta_s: null,
    error: null,
    cached: false,
    precompute: false,
    created_at: at('00'),
    ...fields,
  };
}

test('applyStatus takes a missed done: state, full progress, finish time; the row keeps its seq', () => {
  const rows = [row('job-1', { state: 'running', progress: 0.3, stage: 'refine', etaS: 5, seq: 7 })];
  // A cached job's status may say progress 0: done is full progress all the same.
  const next = applyStatus(rows, status('job-1', 'done', { cached: true, finished_at: at('09') }));
  assert.deepEqual(
    [next[0].state, next[0].progress, next[0].etaS, next[0].finishedAt, next[0].seq],
    ['done', 1, null, Date.parse(at('09')), 7],
  );
  assert.equal(next[0].stage, 'refine', 'a status without a stage keeps the last one');
  assert.equal(rows[0].state, 'running', 'the rows given are not changed');
});

test('applyStatus of a running job updates progress, stage and time left, and later events still apply', () => {
  const rows = [row('job-1', { state: 'queued', seq: 4 })];
  let next = applyStatus(rows, status('job-1', 'running', { progress: 0.5, stage: 'analysis', eta_s: 3 }));
  assert.deepEqual(
    [next[0].state, next[0].progress, next[0].stage, next[0].etaS, next[0].finishedAt],
    ['running', 0.5, 'analysis', 3, null],
  );
  next = applyEvent(next, { type: 'progress', job_id: 'job-1', seq: 5, progress: 0.8, stage: 'refine', eta_s: 1 });
  assert.deepEqual([next[0].progress, next[0].stage, next[0].seq], [0.8, 'refine', 5]);
  next = applyEvent(next, { type: 'done', job_id: 'job-1', seq: 6, ts: at('12') });
  assert.deepEqual([next[0].state, next[0].finishedAt], ['done', Date.parse(at('12'))]);
});

test('applyStatus keeps the sidecar message of a failed job and the priority it now has', () => {
  const rows = [row('job-1', { state: 'running' })];
  const error = { code: 'engine_unavailable', message: 'The diffusion engine is not loaded.', details: {} };
  const next = applyStatus(rows, status('job-1', 'failed', { error, priority: 'hero', finished_at: at('04') }));
  assert.deepEqual(
    [next[0].state, next[0].error, next[0].priority, next[0].finishedAt],
    ['failed', 'The diffusion engine is not loaded.', 'hero', Date.parse(at('04'))],
  );
});

test('applyStatus dates a finished job without finished_at to now and keeps a finish time it had', () => {
  const before = Date.now();
  const [cancelled] = applyStatus([row('job-1')], status('job-1', 'cancelled'));
  assert.equal(cancelled.state, 'cancelled');
  assert.ok(cancelled.finishedAt >= before && cancelled.finishedAt <= Date.now());
  const [kept] = applyStatus([row('job-2', { finishedAt: 42 })], status('job-2', 'done', { finished_at: at('09') }));
  assert.equal(kept.finishedAt, 42);
});

test('applyStatus leaves rows alone for a job it does not show', () => {
  const rows = [row('job-1')];
  assert.equal(applyStatus(rows, status('job-9', 'done')), rows);
});

test('starring a waiting row sends a PATCH to hero', () => {
  assert.deepEqual(star(row('job-7')), {
    method: 'PATCH',
    path: '/v1/jobs/job-7',
    jobId: 'job-7',
    body: { priority: 'hero' },
  });
});

test('starring is nothing to send for a finished, hero or active row', () => {
  assert.equal(star(row('job-1', { state: 'done' })), null);
  assert.equal(star(row('job-2', { priority: 'hero' })), null);
  // Starring an active job would lower it: heroes come after the document in front.
  assert.equal(star(row('job-3', { priority: 'active' })), null);
});

test('cancelling a waiting or running row sends a DELETE; a finished one sends nothing', () => {
  assert.deepEqual(cancel(row('job-7', { state: 'running' })), {
    method: 'DELETE',
    path: '/v1/jobs/job-7',
    jobId: 'job-7',
  });
  assert.equal(cancel(row('job-8', { state: 'cancelled' })), null);
  assert.equal(cancel(row('job-9', { state: 'done' })), null);
});

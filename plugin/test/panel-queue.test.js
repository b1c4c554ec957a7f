'use strict';
// The batch queue (panel-state.js, job-tracking.js, queue.js): every open document's
// job, the front one first, each result one layer in its own document; star and cancel.
const test = require('node:test');
const assert = require('node:assert/strict');
const { createRow } = require('../queue.js');
const { pixels, doc, setup, settle, event, emitPreview, done, applying } = require('./panel-fakes.js');

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
  s.panel.jobs.rows = [
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
  s.panel.jobs.rows = [
    createRow({ jobId: 'job-5', docId: 'doc-2', name: 'Volume · b.psd', state: 'running' }),
    createRow({ jobId: 'job-6', docId: 'doc-3', name: 'Color · c.psd', state: 'done' }),
  ];
  await s.panel.cancelJob();
  assert.deepEqual(s.client.named('cancel'), [], 'no current job, nothing to cancel');
  await s.panel.cancelJob('job-5');
  await s.panel.cancelJob('job-6');
  assert.deepEqual(s.client.named('cancel'), [['job-5']]);

  const { running } = await applying(s);
  await s.panel.cancelJob();
  assert.deepEqual(s.client.named('cancel'), [['job-5'], ['job-1']]);
  s.events.emit('event', event('cancelled', 'job-1'));
  assert.equal(await running, null);
});

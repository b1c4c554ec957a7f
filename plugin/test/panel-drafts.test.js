'use strict';
// The Apply's layer (result-layers.js through panel-state.js): the draft into the
// document at once, the final in its place, one layer and one history step; drafts
// removed again when the job fails or is cancelled; previews only as thumbnails.
const test = require('node:test');
const assert = require('node:assert/strict');
const {
  setup, settle, hold, emitPreview, done, applying, applyingWithDraft, thumbnails, // the world, and driving it
  pixels, draftPixels, jpeg, event, // what goes through it
} = require('./panel-fakes.js');

test('the first draft goes into the document from raw pixels and the final replaces it: one layer, one step', async () => {
  const s = setup();
  const { running, header } = await applyingWithDraft(s);

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
  const { running } = await applying(s, 'volume');
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
  const { running } = await applying(s, 'generate');
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
  const { running } = await applying(s);
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

test('a draft that arrives after the job is done is never placed', async () => {
  const s = setup();
  const { running } = await applying(s);
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
  const fetching = hold(s.client, 'result');
  const { running } = await applying(s);
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
  const fetching = hold(s.client, 'preview');
  const { running } = await applyingWithDraft(s);
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
  const placing = hold(s.adapter, 'placeDraft');
  const { running } = await applyingWithDraft(s, 'color');
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
  const { running } = await applyingWithDraft(s);
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
  const { running } = await applyingWithDraft(s);
  done(s, 'job-1');
  await running;
  assert.equal(s.adapter.named('commitResult')[0][1].draft, undefined);
  assert.deepEqual(s.adapter.steps(), ['ML Retouch: Beauty']);
  assert.equal(s.panel.state.phase, 'done');
});

test('a user step between the draft and the final is kept: the final becomes a step of its own', async () => {
  const s = setup();
  const { running } = await applyingWithDraft(s);
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
  const { running } = await applyingWithDraft(s);
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
  const { running } = await applying(s);
  s.events.emit('event', event('failed', 'job-1', { error: { code: 'internal', message: 'Out of memory.' } }));
  assert.equal(await running, null);
  assert.deepEqual(s.adapter.documentChanges(), []);
  assert.deepEqual(s.adapter.steps(), []);
  assert.equal(s.panel.state.message, 'Out of memory.');
});

test('a draft discarded after a user step is deleted in a step of its own; the user step stays', async () => {
  const s = setup();
  const { running } = await applyingWithDraft(s);
  s.adapter.userStep('Crop');
  s.events.emit('event', event('failed', 'job-1', { error: { code: 'internal', message: 'Boom.' } }));
  assert.equal(await running, null);
  assert.deepEqual(s.adapter.steps(), ['ML Retouch: Beauty', 'Crop', 'Delete Layer']);
  assert.deepEqual(s.adapter.layersOf(), []);
});

test('a cancelled job removes its draft, leaves zero steps and returns the panel to idle', async () => {
  const s = setup();
  const { running } = await applyingWithDraft(s);
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
  const { running } = await applyingWithDraft(s);
  done(s, 'job-1');
  assert.equal(await running, null);

  assert.deepEqual(s.adapter.named('discardDraft'), [['doc-1', { layerId: 'layer-1' }]]);
  assert.deepEqual(s.adapter.steps(), []);
  assert.deepEqual(s.adapter.layersOf(), []);
  assert.deepEqual([s.panel.state.phase, s.panel.state.message], ['failed', 'The result is gone.']);
});

test('previews of another job reach neither the thumbnail nor the document', async () => {
  const s = setup();
  const { running } = await applying(s);
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
  const { running: first } = await applying(s);
  emitPreview(s, 'job-1', 'step', 1, { step: 1, total_steps: 20 });
  await settle();
  assert.deepEqual(thumbnails(s), [null]);
  assert.equal(s.client.named('submit')[0][0].preview.stream_steps, false);
  done(s, 'job-1');
  await first;

  s.panel.streamSteps = true;
  const { running: second } = await applying(s, 'volume');
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

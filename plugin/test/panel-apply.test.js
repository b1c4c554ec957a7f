'use strict';
// The Panel's Apply, slider and Refine (panel-state.js) on the fakes of panel-fakes.js:
// the states an Apply goes through, its upload, its failures.
const test = require('node:test');
const assert = require('node:assert/strict');
const { Panel } = require('../panel-state.js');
const { ADAPTER_METHODS, checkAdapter } = require('../adapter-contract.js');
const {
  fakeAdapter, fakeClient, setup, settle, emitPreview, done, applied, applying, thumbnails, // the world, and driving it
  pixels, event, // what goes through it
} = require('./panel-fakes.js');

// --- Apply --------------------------------------------------------------------------

test('an Apply without previews places one new layer with the final pixels in one history step', async () => {
  const s = setup();
  const { running } = await applying(s, 'dodge_burn');
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

test('a cached answer places the layer without waiting for events or fetching a draft', async () => {
  const s = setup({ cached: true });
  const answer = await s.panel.apply('beauty');
  assert.deepEqual(answer, { jobId: 'job-1', layerId: 'layer-1' });
  assert.deepEqual(s.adapter.steps(), ['ML Retouch: Beauty']);
  assert.equal(s.client.named('preview').length, 0);
  assert.equal(s.panel.state.phase, 'done');
  assert.equal(s.panel.rows[0].state, 'done');
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

// --- Wiring -------------------------------------------------------------------------

test('the fake host implements the whole contract, and a panel refuses an adapter that lacks a method', () => {
  assert.equal(checkAdapter(fakeAdapter()).frontId, 'doc-1');
  for (const name of ADAPTER_METHODS) {
    const adapter = fakeAdapter();
    delete adapter[name];
    assert.throws(() => new Panel({ adapter, client: fakeClient() }), new RegExp(`missing: ${name}$`));
  }
});

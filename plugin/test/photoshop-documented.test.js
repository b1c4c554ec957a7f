'use strict';
// The adapter against Photoshop as Adobe documents it (fake-photoshop.js): versions,
// modal conflicts, cancel, batchPlay's resolved errors, selections, colour modes, depths.
const test = require('node:test');
const assert = require('node:assert/strict');

const { createPhotoshopAdapter, GROUP_NAME } = require('../photoshop-adapter.js');
const { hostProblem, plainProfileName } = require('../host-support.js');
const { RETRY_DELAYS_MS, MODAL_TIMEOUT_S } = require('../modal.js');
const { constants, createFakeHost, fakeUxp } = require('./fake-photoshop.js');
const { mockClock } = require('./clock.js');

function rgbPixels(width, height, fill = 7) {
  return { bytes: new Uint8Array(width * height * 3).fill(fill), width, height, channels: 3, depth: 8 };
}

function setup({ width = 16, height = 8, version, bits, mode, resolution, composite } = {}) {
  const host = createFakeHost({ version });
  const data = bits === constants.BitsPerChannelType.THIRTYTWO ? new Float32Array(width * height * 3) : new Uint8Array(width * height * 3);
  const doc = host.open({
    name: 'portrait.tif',
    width,
    height,
    bits,
    mode,
    resolution,
    composite: composite ?? { data, width, height, components: 3 },
  });
  const adapter = createPhotoshopAdapter({
    photoshop: host.photoshop,
    uxp: fakeUxp(undefined, host.version),
    document: { getElementById: () => null },
  });
  return { host, doc, adapter };
}

const BEAUTY = { name: 'Beauty', historyName: 'ML Retouch: Beauty' };
const stepNames = (doc) => doc.states.map((state) => state.name);
const retouchLayer = (doc) => doc.tree.find((node) => node.name === GROUP_NAME).children[0];

test('the panel needs Photoshop 24.4: older versions, and imaging_beta, get a plain message', () => {
  for (const version of ['23.5.0', '24.0.0', '24.1.0', '24.3.0']) {
    const host = createFakeHost({ version });
    const problem = hostProblem({ photoshop: host.photoshop, uxp: host.uxp });
    assert.match(problem, /needs Photoshop 24\.4 or later/, version);
    assert.ok(problem.includes(version), `${version}: the message names the version found`);
  }
  for (const version of ['24.4.0', '25.0.0', '26.11.1']) {
    const host = createFakeHost({ version });
    assert.equal(hostProblem({ photoshop: host.photoshop, uxp: host.uxp }), null, version);
  }
  const host = createFakeHost({ version: '24.4.0' });
  const problem = hostProblem({ photoshop: { ...host.photoshop, imaging: undefined }, uxp: {} });
  assert.match(problem, /needs Photoshop 24\.4 or later \(this one lacks imaging\.getPixels/);
});

test('layers are made with createPixelLayer, never createLayer with options where the kind goes', async () => {
  const { host, doc, adapter } = setup({ version: '24.4.0' });
  let misused = 0;
  const createLayer = doc.createLayer.bind(doc);
  doc.createLayer = (kind, options) => {
    if (typeof kind === 'object') misused += 1;
    return createLayer(kind, options);
  };
  await adapter.commitResult(doc.id, { ...BEAUTY, pixels: rgbPixels(16, 8) });
  assert.equal(misused, 0);
  assert.equal(retouchLayer(doc).name, 'Beauty');
  assert.equal(host.refusedModal, 0);
});

test('a change refused while another plugin is modal is tried again and goes in once it is free', async (t) => {
  const clock = mockClock(t);
  const { host, doc, adapter } = setup({ version: '25.0.0' });
  host.otherModal = true;
  const committing = adapter.commitResult(doc.id, { ...BEAUTY, pixels: rgbPixels(16, 8) });
  await clock.until(() => host.refusedModal === 2, 'refused twice');
  assert.equal(clock.now(), RETRY_DELAYS_MS[0], 'the second try after the first wait');
  host.otherModal = false;
  await clock.advance(RETRY_DELAYS_MS[1]);
  await committing;
  assert.deepEqual(stepNames(doc), ['Open', 'ML Retouch: Beauty']);
  assert.ok(host.modalOptions.every((options) => options.timeOut === undefined), 'no timeOut before 25.10');
});

test('from Photoshop 25.10 each try passes timeOut, in seconds, and Photoshop waits that long', async (t) => {
  const clock = mockClock(t);
  const { host, doc, adapter } = setup({ version: '25.10.0' });
  host.otherModal = true;
  const committing = adapter.commitResult(doc.id, { ...BEAUTY, pixels: rgbPixels(16, 8) });
  await clock.until(() => host.refusedModal === 1, 'refused once');
  assert.equal(clock.now(), MODAL_TIMEOUT_S * 1000, 'refused after the timeOut');
  host.otherModal = false;
  await clock.advance(RETRY_DELAYS_MS[0]);
  await committing;
  const timeOuts = host.modalOptions.map((options) => options.timeOut);
  assert.deepEqual(timeOuts, [MODAL_TIMEOUT_S, MODAL_TIMEOUT_S]);
  assert.ok(MODAL_TIMEOUT_S > 0 && MODAL_TIMEOUT_S <= 10, 'timeOut is in seconds');
});

test('a Photoshop that stays modal ends in a modal_busy error after about 15 s; a draft is not retried', async (t) => {
  const clock = mockClock(t);
  const { host, doc, adapter } = setup({ version: '25.0.0' });
  host.otherModal = true;
  let error = null;
  adapter.commitResult(doc.id, { ...BEAUTY, pixels: rgbPixels(16, 8) }).catch((caught) => (error = caught));
  await clock.until(() => error !== null, 'given up', { stepMs: 250 });
  assert.equal(error.code, 'modal_busy');
  assert.equal(host.refusedModal, RETRY_DELAYS_MS.length + 1, 'the first try and one after each wait');
  assert.equal(clock.now(), RETRY_DELAYS_MS.reduce((sum, ms) => sum + ms, 0));
  assert.ok(clock.now() >= 15000 && clock.now() < 16000, `about 15 s: ${clock.now()} ms`);
  host.refusedModal = 0;
  await assert.rejects(adapter.placeDraft(doc.id, { ...BEAUTY, pixels: rgbPixels(2, 1) }), { code: 'modal_busy' });
  assert.equal(host.refusedModal, 1, 'a draft is only worth placing at once');
  assert.deepEqual(stepNames(doc), ['Open']);
});

test('an error thrown inside the scope is not mistaken for a modal conflict', async () => {
  const { host, doc, adapter } = setup();
  host.failPutPixels = true;
  await assert.rejects(adapter.commitResult(doc.id, { ...BEAUTY, pixels: rgbPixels(16, 8) }), /putPixels failed/);
  assert.equal(host.modalCommands.length, 1, 'tried once');
});

test('with a selection on a 300 ppi document the draft covers the canvas and the selection stays', async () => {
  const { doc, adapter } = setup({ width: 16, height: 8, resolution: 300 });
  doc.selection = { left: 2, top: 2, right: 6, bottom: 5 };
  await adapter.placeDraft(doc.id, { ...BEAUTY, pixels: rgbPixels(2, 1, 50) });
  const layer = retouchLayer(doc);
  assert.equal(layer.scaled, undefined, 'no Transform, which would act on the selection');
  assert.equal(layer.moved, undefined, 'no Move');
  assert.deepEqual([layer.pixels.width, layer.pixels.height, layer.pixels.at], [16, 8, { left: 0, top: 0 }]);
  assert.ok(layer.pixels.data.every((value) => value === 50), 'the draft fills the whole canvas');
  assert.deepEqual(doc.selection, { left: 2, top: 2, right: 6, bottom: 5 }, 'the user’s selection as it was');
});

test('an opacity change Photoshop refuses (locked or deleted layer) is an error, not a success', async () => {
  const { doc, adapter } = setup();
  const layerId = await adapter.commitResult(doc.id, { ...BEAUTY, pixels: rgbPixels(16, 8) });
  doc.node(layerId).locked = true;
  await assert.rejects(adapter.commitOpacity(doc.id, layerId, 40, 'ML Retouch: Beauty opacity'), /locked/);
  assert.equal(doc.node(layerId).opacity, 100);
  assert.equal(stepNames(doc).at(-1), 'ML Retouch: Beauty', 'no step for a change that did not happen');
  doc.node(layerId).locked = false;
  doc.find(layerId).siblings.splice(doc.find(layerId).index, 1);
  await assert.rejects(adapter.setLayerOpacity(doc.id, layerId, 40), /not currently available/);
});

test('32-bit documents are refused with a plain message before any pixels are read', async () => {
  const { host, doc, adapter } = setup({ bits: constants.BitsPerChannelType.THIRTYTWO });
  const info = await adapter.activeDocument();
  assert.match(info.unsupported, /32-bit/);
  assert.match(info.unsupported, /16 Bits\/Channel/);
  await assert.rejects(adapter.readPixels(doc.id), /32-bit/);
  assert.equal(host.getPixelsCalls, 0);
  assert.equal(plainProfileName('Adobe RGB (1998) (Linear RGB Profile)'), 'Adobe RGB (1998)');
  assert.equal(plainProfileName('sRGB IEC61966-2.1'), 'sRGB IEC61966-2.1');
});

test('CMYK, Indexed, Bitmap, Lab, Grayscale documents get a plain message up front', async () => {
  for (const [mode, name] of [
    [constants.DocumentMode.CMYK, 'CMYK'],
    [constants.DocumentMode.INDEXEDCOLOR, 'Indexed Color'],
    [constants.DocumentMode.BITMAP, 'Bitmap'],
    [constants.DocumentMode.LAB, 'Lab'],
    [constants.DocumentMode.GRAYSCALE, 'Grayscale'],
  ]) {
    const { host, doc, adapter } = setup({ mode });
    const [info] = await adapter.documents();
    assert.equal(info.unsupported, `ML Retouch works on RGB documents; this one is ${name}. Convert a copy with Image → Mode → RGB Color.`);
    await assert.rejects(adapter.readPixels(doc.id), new RegExp(`this one is ${name}`));
    assert.equal(host.getPixelsCalls, 0, `${name}: no pixels read`);
  }
  const { adapter } = setup();
  assert.equal((await adapter.activeDocument()).unsupported, null);
});

test('"Cancel Plugin Command" during a slider drag ends it rolled back, with no step', async (t) => {
  mockClock(t); // no drag ends by idling here: time stands still
  const { host, doc, adapter } = setup();
  const layerId = await adapter.commitResult(doc.id, { ...BEAUTY, pixels: rgbPixels(16, 8) });
  const steps = stepNames(doc);
  await adapter.setLayerOpacity(doc.id, layerId, 30);
  assert.equal(doc.node(layerId).opacity, 30);
  assert.equal(host.cancelModal(), true, 'the drag holds a modal scope');
  await assert.rejects(adapter.commitOpacity(doc.id, layerId, 30, 'ML Retouch: Beauty opacity'), /cancelled/);
  assert.equal(host.modalDepth, 0, 'the scope ended');
  assert.equal(doc.node(layerId).opacity, 100, 'rolled back');
  assert.deepEqual(stepNames(doc), steps);
  await adapter.commitOpacity(doc.id, layerId, 45, 'ML Retouch: Beauty opacity');
  assert.equal(doc.node(layerId).opacity, 45, 'the next change works');
});

test('the user going idle reaches the panel; their return does not', async () => {
  const { host, adapter } = setup();
  const seen = [];
  const stop = adapter.watchDocuments({ idle: () => seen.push('idle') });
  assert.ok(host.idleSeconds > 0, 'setUserIdleTime was given the idle time');
  host.idle();
  host.idle({ idleEnd: true });
  await new Promise((resolve) => setImmediate(resolve));
  assert.deepEqual(seen, ['idle']);
  stop();
  await new Promise((resolve) => setImmediate(resolve));
  assert.equal(host.idleListeners.length, 0);
});

'use strict';

const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');

const {
  createPhotoshopAdapter,
  createTokenStore,
  GROUP_NAME,
} = require('../photoshop-adapter.js');
const { checkAdapter } = require('../adapter-contract.js');
const { DRAG_IDLE_MS } = require('../opacity-drag.js');
const { mockClock } = require('./clock.js');

const { constants, pixelNode, createFakeHost, createFakeFolder, fakeUxp } = require('./fake-photoshop.js');

function rgbPixels(width, height, fill = 7) {
  return { bytes: new Uint8Array(width * height * 3).fill(fill), width, height, channels: 3, depth: 8 };
}

function setup({ width = 16, height = 8, bits, composite, version, mode, resolution } = {}) {
  const host = createFakeHost({ version });
  const doc = host.open({
    mode,
    resolution,
    name: 'portrait.tif',
    width,
    height,
    bits,
    composite: composite ?? { data: new Uint8Array(width * height * 3).fill(9), width, height, components: 3 },
  });
  const elements = new Map();
  const page = { getElementById: (id) => elements.get(id) ?? null };
  const adapter = createPhotoshopAdapter({
    photoshop: host.photoshop,
    uxp: fakeUxp(undefined, host.version),
    document: page,
  });
  return { host, doc, adapter, elements };
}

const BEAUTY = { name: 'Beauty', historyName: 'ML Retouch: Beauty' };
const placeBeautyDraft = (adapter, doc) => adapter.placeDraft(doc.id, { ...BEAUTY, pixels: rgbPixels(2, 1) });
const commitBeauty = (adapter, doc, extra = {}) =>
  adapter.commitResult(doc.id, { ...BEAUTY, pixels: rgbPixels(16, 8), ...extra });

const stepNames = (doc) => doc.states.map((state) => state.name);
const pairsIn = (host) => host.history.filter(([kind]) => kind !== 'activate');

function retouchChildren(doc) {
  const group = doc.tree.find((node) => node.name === GROUP_NAME);
  return group ? group.children : null;
}

// Comments may name the modules; code may not require them.
function withoutComments(source) {
  return source.replace(/\/\*[\s\S]*?\*\//g, '').replace(/(^|[^:])\/\/.*$/gm, '$1');
}

test('photoshop-adapter.js is the only panel module that requires photoshop or uxp', () => {
  const root = path.join(__dirname, '..');
  const requiring = [];
  const walk = (dir) => {
    for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
      const full = path.join(dir, entry.name);
      if (entry.isDirectory()) {
        if (full !== __dirname) walk(full);
      } else if (entry.name.endsWith('.js')) {
        const source = withoutComments(fs.readFileSync(full, 'utf8'));
        if (/require\(\s*['"](photoshop|uxp)['"]\s*\)/.test(source)) requiring.push(path.relative(root, full));
      }
    }
  };
  walk(root);
  assert.deepEqual(requiring, ['photoshop-adapter.js']);
});

test('the adapter implements every method of the contract', () => {
  const { adapter } = setup();
  assert.equal(checkAdapter(adapter), adapter);
});

test('readPixels of a 16-bit document gives full-range little-endian samples', async () => {
  const { adapter, doc, host } = setup({
    width: 2,
    height: 1,
    bits: constants.BitsPerChannelType.SIXTEEN,
    composite: { data: Uint16Array.of(0, 16384, 32768, 32768, 1, 0), width: 2, height: 1, components: 3 },
  });
  const pixels = await adapter.readPixels(doc.id);
  const { bytes, release, ...shape } = pixels;
  assert.deepEqual(shape, { width: 2, height: 1, channels: 3, depth: 16 });
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const samples = Array.from({ length: 6 }, (_, i) => view.getUint16(i * 2, true));
  assert.deepEqual(samples, [0, 32768, 65535, 65535, 2, 0], 'read with fullRange: 0..65535');
  assert.equal(host.disposed, 0, 'the bytes are getData’s own array, kept until released');
  release();
  assert.equal(host.disposed, 1, 'the image data is disposed on release');
});

test('readPixels puts a trimmed composite back on a transparent canvas of the document size', async () => {
  const bounds = { left: 1, top: 1, right: 2, bottom: 2 };
  const composite = { data: Uint8Array.of(10, 20, 30, 255), width: 1, height: 1, components: 4, bounds };
  const { adapter, doc } = setup({ width: 3, height: 2, composite });
  const pixels = await adapter.readPixels(doc.id);
  assert.equal(pixels.width, 3);
  assert.equal(pixels.height, 2);
  assert.equal(pixels.channels, 4);
  const expected = new Uint8Array(3 * 2 * 4);
  expected.set([10, 20, 30, 255], (1 * 3 + 1) * 4);
  assert.deepEqual(pixels.bytes, expected);
});

test('16-bit pixels written to a 16-bit document arrive in Photoshop range', async () => {
  const { adapter, doc } = setup({ width: 1, height: 1, bits: constants.BitsPerChannelType.SIXTEEN });
  const bytes = new Uint8Array(6);
  const view = new DataView(bytes.buffer);
  [0, 32768, 65535].forEach((value, i) => view.setUint16(i * 2, value, true));
  const draft = await adapter.placeDraft(doc.id, {
    name: 'Beauty',
    historyName: 'ML Retouch: Beauty',
    pixels: { bytes, width: 1, height: 1, channels: 3, depth: 16 },
  });
  const { pixels } = doc.node(draft.layerId);
  assert.equal(pixels.componentSize, 16);
  assert.deepEqual(pixels.data, [0, 16384, 32768]);
});

test('placeDraft adds a document-sized layer at the top of the ML Retouch group in one step', async () => {
  const { adapter, doc, host } = setup({ width: 16, height: 8 });
  const draft = await placeBeautyDraft(adapter, doc);

  assert.deepEqual(pairsIn(host), [
    ['suspend', 'ML Retouch: Beauty'],
    ['resume', 'ML Retouch: Beauty', true],
  ]);
  assert.deepEqual(stepNames(doc), ['Open', 'ML Retouch: Beauty']);
  assert.deepEqual(host.unsuspendedChanges, []);
  assert.equal(doc.tree[0].name, GROUP_NAME, 'the group is at the top of the stack');
  const [layer] = retouchChildren(doc);
  assert.equal(layer.id, draft.layerId);
  assert.equal(layer.name, 'Beauty');
  assert.deepEqual([layer.pixels.width, layer.pixels.height, layer.pixels.at], [16, 8, { left: 0, top: 0 }]);
  assert.equal(layer.scaled, undefined, 'resized before it goes in: no Transform');
  assert.equal(draft.historyStateId, doc.activeHistoryState.id);

  await adapter.placeDraft(doc.id, { name: 'Volume', historyName: 'ML Retouch: Volume', pixels: rgbPixels(16, 8) });
  const children = retouchChildren(doc);
  assert.deepEqual(children.map((node) => node.name), ['Volume', 'Beauty'], 'one group, newest layer on top');
  assert.equal(doc.tree.filter((node) => node.name === GROUP_NAME).length, 1);
});

test('the group is created at the top even when the active layer sits inside another group', async () => {
  const { adapter, doc, host } = setup();
  host.modalDepth += 1;
  const other = await doc.createLayerGroup({ name: 'Retouch by hand' });
  host.modalDepth -= 1;
  const inner = pixelNode(host.newId(), 'Dodge');
  doc.node(other.id).children.push(inner);
  doc.activeLayerId = inner.id;

  await adapter.placeDraft(doc.id, { name: 'Beauty', historyName: 'ML Retouch: Beauty', pixels: rgbPixels(16, 8) });
  assert.equal(doc.tree[0].name, GROUP_NAME);
  assert.deepEqual(doc.node(other.id).children.map((node) => node.name), ['Dodge']);
});

test('commitResult takes the draft step’s place when nothing happened since: one step in all', async () => {
  const { adapter, doc, host } = setup();
  const draft = await placeBeautyDraft(adapter, doc);
  const before = doc.states[0].id;
  host.history.length = 0;

  const layerId = await commitBeauty(adapter, doc, { pixels: rgbPixels(16, 8, 200), draft });

  assert.deepEqual(host.history, [
    ['activate', before],
    ['suspend', 'ML Retouch: Beauty'],
    ['resume', 'ML Retouch: Beauty', true],
  ]);
  assert.deepEqual(stepNames(doc), ['Open', 'ML Retouch: Beauty'], 'the draft step became a discarded redo branch');
  const children = retouchChildren(doc);
  assert.equal(children.length, 1);
  assert.equal(children[0].id, layerId);
  assert.notEqual(layerId, draft.layerId);
  assert.equal(children[0].pixels.data[0], 200);
  assert.equal(children[0].scaled, undefined);
  assert.deepEqual(host.unsuspendedChanges, []);
});

test('commitResult after a step of the user’s own is a separate "(final)" step, with no undo', async () => {
  const { adapter, doc, host } = setup();
  const draft = await placeBeautyDraft(adapter, doc);
  doc.userStep('Brush Tool');
  host.history.length = 0;

  const layerId = await commitBeauty(adapter, doc, { pixels: rgbPixels(16, 8, 200), draft });

  assert.deepEqual(host.history, [
    ['suspend', 'ML Retouch: Beauty (final)'],
    ['resume', 'ML Retouch: Beauty (final)', true],
  ]);
  assert.deepEqual(stepNames(doc), ['Open', 'ML Retouch: Beauty', 'Brush Tool', 'ML Retouch: Beauty (final)']);
  assert.equal(layerId, draft.layerId, 'the draft layer is filled in place');
  const layer = doc.node(layerId);
  assert.equal(layer.pixels.width, 16);
  assert.equal(layer.pixels.data[0], 200);
  assert.equal(layer.scaled, undefined);
  assert.equal(doc.tree[doc.tree.length - 1].painted, 1, 'the user’s stroke is kept');
});

test('commitResult without a draft adds a new layer in one step', async () => {
  const { adapter, doc, host } = setup();
  const layerId = await commitBeauty(adapter, doc, { name: 'Color', historyName: 'ML Retouch: Color' });
  assert.deepEqual(pairsIn(host), [
    ['suspend', 'ML Retouch: Color'],
    ['resume', 'ML Retouch: Color', true],
  ]);
  assert.deepEqual(stepNames(doc), ['Open', 'ML Retouch: Color']);
  assert.equal(retouchChildren(doc)[0].id, layerId);
});

test('a failing putPixels rolls the step back and the error reaches the caller', async () => {
  const { adapter, doc, host } = setup();
  host.failPutPixels = true;
  await assert.rejects(
    placeBeautyDraft(adapter, doc),
    /putPixels failed/,
  );
  assert.deepEqual(host.history, [
    ['suspend', 'ML Retouch: Beauty'],
    ['resume', 'ML Retouch: Beauty', false],
  ]);
  assert.deepEqual(stepNames(doc), ['Open']);
  assert.deepEqual(doc.tree.map((node) => node.name), ['Background'], 'the group and the layer are gone');
  assert.deepEqual(host.autoResumed, []);

  host.failPutPixels = false;
  await placeBeautyDraft(adapter, doc);
  assert.deepEqual(stepNames(doc), ['Open', 'ML Retouch: Beauty'], 'the next change still works');
});

test('a final that fails to go in after the draft was undone brings the draft back', async () => {
  const { adapter, doc, host } = setup();
  const draft = await placeBeautyDraft(adapter, doc);
  host.failPutPixels = true;
  await assert.rejects(
    commitBeauty(adapter, doc, { draft }),
    /putPixels failed/,
  );
  assert.equal(doc.activeHistoryState.id, draft.historyStateId);
  assert.ok(doc.find(draft.layerId), 'the draft layer is back');
  assert.deepEqual(stepNames(doc), ['Open', 'ML Retouch: Beauty']);
});

test('discardDraft undoes the draft step when it is still the last', async () => {
  const { adapter, doc, host } = setup();
  const draft = await placeBeautyDraft(adapter, doc);
  host.history.length = 0;
  await adapter.discardDraft(doc.id, draft);
  assert.deepEqual(host.history, [['activate', doc.states[0].id]]);
  assert.equal(doc.activeHistoryState.name, 'Open');
  assert.equal(doc.find(draft.layerId), null);
});

test('discardDraft after a step of the user’s deletes the layer in a step of its own', async () => {
  const { adapter, doc, host } = setup();
  const draft = await placeBeautyDraft(adapter, doc);
  doc.userStep('Brush Tool');
  host.history.length = 0;
  await adapter.discardDraft(doc.id, draft);
  assert.deepEqual(host.history, [
    ['suspend', 'ML Retouch: Beauty (removed)'],
    ['resume', 'ML Retouch: Beauty (removed)', true],
  ]);
  assert.deepEqual(stepNames(doc), ['Open', 'ML Retouch: Beauty', 'Brush Tool', 'ML Retouch: Beauty (removed)']);
  assert.equal(doc.find(draft.layerId), null);
});

test('discardDraft of a closed document does nothing', async () => {
  const { adapter, doc, host } = setup();
  const draft = await placeBeautyDraft(adapter, doc);
  host.close(doc);
  await adapter.discardDraft(doc.id, draft);
});

test('replaceResult refills the layer and sets it to 100 % in one step', async () => {
  const { adapter, doc, host } = setup();
  const layerId = await commitBeauty(adapter, doc, { pixels: rgbPixels(16, 8, 1) });
  await adapter.commitOpacity(doc.id, layerId, 40, 'ML Retouch: Beauty opacity');
  host.history.length = 0;

  const refined = { historyName: 'ML Retouch: Refine Beauty', pixels: rgbPixels(16, 8, 99) };
  await adapter.replaceResult(doc.id, layerId, refined);
  assert.deepEqual(host.history, [
    ['suspend', 'ML Retouch: Refine Beauty'],
    ['resume', 'ML Retouch: Refine Beauty', true],
  ]);
  const layer = doc.node(layerId);
  assert.equal(layer.pixels.data[0], 99);
  assert.equal(layer.opacity, 100);
  assert.equal(stepNames(doc).at(-1), 'ML Retouch: Refine Beauty');
});

test('commitOpacity alone is one named step', async () => {
  const { adapter, doc, host } = setup();
  const layerId = await commitBeauty(adapter, doc);
  host.history.length = 0;
  await adapter.commitOpacity(doc.id, layerId, 35, 'ML Retouch: Beauty opacity');
  assert.deepEqual(host.history, [
    ['suspend', 'ML Retouch: Beauty opacity'],
    ['resume', 'ML Retouch: Beauty opacity', true],
  ]);
  assert.equal(doc.node(layerId).opacity, 35);
  assert.deepEqual(stepNames(doc), ['Open', 'ML Retouch: Beauty', 'ML Retouch: Beauty opacity']);
});

test('a slider drag changes opacity live with no step, and its release is one step', async (t) => {
  mockClock(t); // no drag ends by idling here: time stands still
  const { adapter, doc, host } = setup();
  const layerId = await commitBeauty(adapter, doc);
  const states = doc.states.length;
  host.history.length = 0;

  await adapter.setLayerOpacity(doc.id, layerId, 90);
  assert.equal(doc.node(layerId).opacity, 90, 'the change is visible at once');
  await Promise.all([adapter.setLayerOpacity(doc.id, layerId, 80), adapter.setLayerOpacity(doc.id, layerId, 70)]);
  assert.equal(doc.node(layerId).opacity, 70);
  assert.equal(doc.states.length, states, 'no step while dragging');
  await adapter.commitOpacity(doc.id, layerId, 65, 'ML Retouch: Beauty opacity');

  assert.deepEqual(pairsIn(host), [
    ['suspend', 'ML Retouch: opacity'],
    ['resume', 'ML Retouch: opacity', false],
    ['suspend', 'ML Retouch: Beauty opacity'],
    ['resume', 'ML Retouch: Beauty opacity', true],
  ]);
  assert.equal(doc.node(layerId).opacity, 65);
  assert.deepEqual(stepNames(doc), ['Open', 'ML Retouch: Beauty', 'ML Retouch: Beauty opacity']);
  assert.deepEqual(host.unsuspendedChanges, []);
  const dragScopes = host.modalCommands.filter((name) => name === 'ML Retouch: opacity');
  assert.equal(dragScopes.length, 1, 'one modal scope for the drag');
});

test('a drag that is never released is rolled back after the idle time, leaving no step', async (t) => {
  const clock = mockClock(t);
  const { adapter, doc, host } = setup();
  const layerId = await commitBeauty(adapter, doc);
  const states = stepNames(doc);
  await adapter.setLayerOpacity(doc.id, layerId, 30);
  assert.equal(doc.node(layerId).opacity, 30);
  await clock.advance(DRAG_IDLE_MS - 1);
  assert.equal(doc.node(layerId).opacity, 30, 'still dragging just before the idle time');
  assert.equal(host.modalDepth, 1);
  await clock.advance(1);
  assert.equal(doc.node(layerId).opacity, 100);
  assert.deepEqual(stepNames(doc), states);
  assert.equal(host.modalDepth, 0, 'the modal scope is closed');

  await adapter.commitOpacity(doc.id, layerId, 30, 'ML Retouch: Beauty opacity');
  assert.equal(doc.node(layerId).opacity, 30);
  assert.equal(stepNames(doc).at(-1), 'ML Retouch: Beauty opacity');
});

test('dragging another layer’s slider ends the first drag rolled back', async (t) => {
  mockClock(t); // no drag ends by idling here: time stands still
  const { adapter, doc } = setup();
  const first = await commitBeauty(adapter, doc);
  const second = await commitBeauty(adapter, doc, { name: 'Color', historyName: 'ML Retouch: Color' });
  const states = stepNames(doc);
  await adapter.setLayerOpacity(doc.id, first, 50);
  await adapter.setLayerOpacity(doc.id, second, 40);
  assert.equal(doc.node(first).opacity, 100);
  assert.equal(doc.node(second).opacity, 40);
  await adapter.commitOpacity(doc.id, second, 40, 'ML Retouch: Color opacity');
  assert.deepEqual(stepNames(doc), [...states, 'ML Retouch: Color opacity']);
});

test('document changes wait for each other instead of overlapping modal scopes', async () => {
  const { adapter, doc } = setup();
  const results = await Promise.all([
    placeBeautyDraft(adapter, doc),
    adapter.readPixels(doc.id),
    adapter.commitResult(doc.id, { name: 'Color', historyName: 'ML Retouch: Color', pixels: rgbPixels(16, 8) }),
  ]);
  assert.equal(results[1].width, 16);
  assert.deepEqual(stepNames(doc), ['Open', 'ML Retouch: Beauty', 'ML Retouch: Color']);
});

test('activeDocument describes the document in front, or null; documents lists them all', async () => {
  const { adapter, doc, host } = setup({ width: 640, height: 480 });
  const second = host.open({ name: 'second.psd', width: 4, height: 4 });
  assert.deepEqual((await adapter.documents()).map((info) => info.name), ['portrait.tif', 'second.psd']);
  host.active = doc;
  const info = await adapter.activeDocument();
  assert.equal(info.id, doc.id);
  assert.equal(info.name, 'portrait.tif');
  assert.equal(info.width, 640);
  assert.equal(info.height, 480);
  assert.match(info.layerStackHash, /^[0-9a-f]{8}$/);
  host.close(doc);
  host.close(second);
  assert.equal(await adapter.activeDocument(), null);
  assert.deepEqual(await adapter.documents(), []);
});

test('the layer-stack hash follows pixel edits and layer changes, and returns with undo', async () => {
  const { adapter, doc, host } = setup();
  const first = (await adapter.activeDocument()).layerStackHash;
  assert.equal((await adapter.activeDocument()).layerStackHash, first, 'stable while nothing changes');

  doc.userStep('Brush Tool');
  const painted = (await adapter.activeDocument()).layerStackHash;
  assert.notEqual(painted, first);

  doc.tree[0].visible = false;
  assert.notEqual((await adapter.activeDocument()).layerStackHash, painted);
  doc.tree[0].visible = true;

  host.modalDepth += 1;
  doc.activeHistoryState = doc.states[0];
  host.modalDepth -= 1;
  assert.equal((await adapter.activeDocument()).layerStackHash, first, 'undo brings the old hash back');
});

test('watchDocuments maps Photoshop notifications and stops when asked', async () => {
  const { adapter, doc, host } = setup();
  const seen = [];
  const stop = adapter.watchDocuments({
    opened: (info) => seen.push(['opened', info.id, info.layerStackHash]),
    selected: (info) => seen.push(['selected', info.id]),
    closed: (id) => seen.push(['closed', id]),
    historyChanged: (info) => seen.push(['historyChanged', info.id, info.layerStackHash]),
  });
  const flush = () => new Promise((resolve) => setImmediate(resolve));
  assert.equal(host.listeners.length, 1);
  assert.deepEqual(host.listeners[0].events, ['open', 'select', 'close', 'historyStateChanged']);

  const second = host.open({ name: 'second.psd', width: 4, height: 4 });
  host.emit('open', { documentID: second.id });
  host.emit('select', { _target: [{ _ref: 'layer', _name: 'Background' }] });
  host.active = doc;
  host.emit('select', { _target: [{ _ref: 'document', _id: doc.id }] });
  second.userStep('Brush Tool');
  host.emit('historyStateChanged', { documentID: second.id, name: 'Brush Tool' });
  host.close(second);
  host.emit('close', { documentID: second.id });
  await flush();

  const [opened, , changed] = seen;
  assert.deepEqual(seen, [
    ['opened', second.id, opened[2]],
    ['selected', doc.id],
    ['historyChanged', second.id, changed[2]],
    ['closed', second.id],
  ]);
  assert.notEqual(changed[2], opened[2], 'the history change shows in the layer-stack hash');

  stop();
  await flush();
  assert.equal(host.listeners.length, 0, 'removeNotificationListener got the same events and handler');
});

test('watchDocuments reports a document it has not seen as opened, whatever the event', async () => {
  const { adapter, host } = setup();
  const seen = [];
  adapter.watchDocuments({ opened: (info) => seen.push(info.name), selected: () => seen.push('selected') });
  host.open({ name: 'new.psd', width: 4, height: 4 });
  host.emit('select', { _target: [{ _ref: 'document', _id: 1 }] });
  await new Promise((resolve) => setImmediate(resolve));
  assert.deepEqual(seen, ['new.psd']);
});

test('showThumbnail sets the preview image to a data: URL of the JPEG, and clears it', async () => {
  const { adapter, elements } = setup();
  const image = {
    src: '',
    removeAttribute(name) {
      if (name === 'src') this.src = '';
    },
  };
  elements.set('thumbnail', image);
  const jpeg = Uint8Array.of(0xff, 0xd8, 0xff, 0xe0, 1, 2, 3, 0xff, 0xd9);
  await adapter.showThumbnail(jpeg);
  assert.ok(image.src.startsWith('data:image/jpeg;base64,'));
  assert.deepEqual(new Uint8Array(Buffer.from(image.src.split(',')[1], 'base64')), jpeg);
  for (const length of [1, 2, 3, 4, 5]) {
    const bytes = Uint8Array.from({ length }, (_, i) => 250 - i);
    await adapter.showThumbnail(bytes);
    assert.equal(image.src.split(',')[1], Buffer.from(bytes).toString('base64'));
  }
  await adapter.showThumbnail(null);
  assert.equal(image.src, '');
});

test('the token store reads "" before anything is saved, then what was saved', async () => {
  const folder = createFakeFolder();
  const store = createTokenStore({ uxp: fakeUxp(folder) });
  assert.equal(await store.load(), '');
  await store.save('  first-token\n');
  assert.equal(await store.load(), 'first-token');
  await store.save('second-token');
  assert.equal(await store.load(), 'second-token');
  assert.deepEqual([...folder.files.keys()], ['token.txt']);
});

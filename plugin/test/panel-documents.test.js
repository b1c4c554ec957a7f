'use strict';
// Document events through the Panel (panel-state.js, document-images.js): which
// document is in front, its upload once per layer-stack state, and precompute when the
// user is idle, never on a select or a brush stroke.
const test = require('node:test');
const assert = require('node:assert/strict');
const { PORTRAIT, doc, setup } = require('./panel-fakes.js');

// --- Document events ----------------------------------------------------------------

test('watchDocuments wires opened, selected, closed, historyChanged and idle to precompute and stopPrecompute', async () => {
  const s = setup({ docs: [doc(1), doc(2)] });
  const stop = s.panel.watchDocuments();
  assert.equal(s.adapter.listeners.length, 1);
  const [listener] = s.adapter.listeners;

  await listener.opened(doc(1));
  assert.equal(s.panel.activeDocId, 'doc-1');
  assert.deepEqual(s.adapter.named('readPixels'), [], 'no pixels read until the user is idle');
  await listener.idle();
  assert.deepEqual(s.client.named('precompute'), [
    [{ imageId: 'img-1', documentId: 'doc-1', layerStackHash: 'hash-a', ops: undefined }],
  ]);

  await listener.selected(doc(2));
  assert.equal(s.panel.activeDocId, 'doc-2');
  await listener.idle();
  assert.deepEqual(s.client.named('precompute')[1][0], {
    imageId: 'img-2',
    documentId: 'doc-2',
    layerStackHash: 'hash-b',
    ops: undefined,
  });

  await listener.historyChanged(doc(2)); // same hash: nothing to do
  await listener.idle();
  assert.equal(s.client.named('precompute').length, 2);
  await listener.historyChanged(doc(2, { layerStackHash: 'hash-b2' }));
  await listener.idle();
  assert.deepEqual(s.client.named('precompute')[2][0].layerStackHash, 'hash-b2');
  assert.equal(s.client.named('uploadRaw').length, 3);

  s.client.failures.set('stopPrecompute', new Error('offline'));
  assert.equal(await listener.closed('doc-2'), undefined, 'a failing sidecar does not reach the host');
  assert.deepEqual(s.client.named('stopPrecompute'), [['doc-2']]);
  assert.equal(s.panel.activeDocId, null);

  stop();
  assert.equal(s.adapter.listeners.length, 0);
  assert.equal(s.adapter.named('stopWatching').length, 1);
});

test('opening or selecting a document uploads it once, when the user is idle, and starts its precompute', async () => {
  const s = setup({ docs: [doc(1), doc(2)] });
  await s.panel.documentOpened(doc(1));
  assert.deepEqual(s.adapter.named('readPixels'), []);
  await s.panel.userIdle();
  assert.deepEqual(s.client.named('precompute'), [
    [{ imageId: 'img-1', documentId: 'doc-1', layerStackHash: 'hash-a', ops: undefined }],
  ]);
  await s.panel.documentSelected(doc(2));
  await s.panel.userIdle();
  assert.equal(s.client.named('precompute')[1][0].documentId, 'doc-2');
  assert.equal(s.panel.activeDocId, 'doc-2');

  await s.panel.documentSelected(doc(1));
  await s.panel.userIdle();
  assert.equal(s.client.named('uploadRaw').length, 2, 'doc-1 is not uploaded again');
  assert.equal(s.client.named('precompute').length, 3);
});

test('closing a document stops its precompute, forgets its image and its result layer', async () => {
  const s = setup({ cached: true });
  await s.panel.documentSelected(await s.adapter.activeDocument());
  await s.panel.apply('beauty');
  assert.equal(s.panel.result.docId, 'doc-1');
  await s.panel.documentClosed('doc-1');
  assert.deepEqual(s.client.named('stopPrecompute'), [['doc-1']]);
  assert.equal(s.panel.result, null);
  await s.panel.slider(20);
  assert.equal(s.adapter.named('setLayerOpacity').length, 0);
  await s.panel.apply('beauty');
  assert.equal(s.client.named('uploadRaw').length, 2);
});

test('a history change with the same hash does nothing; a new hash invalidates and precomputes again', async () => {
  const s = setup();
  await s.panel.documentSelected(PORTRAIT);
  await s.panel.userIdle();
  await s.panel.historyChanged(PORTRAIT);
  await s.panel.userIdle();
  assert.equal(s.client.named('precompute').length, 1);
  assert.equal(s.client.named('uploadRaw').length, 1);

  await s.panel.historyChanged({ ...PORTRAIT, layerStackHash: 'hash-2' });
  assert.equal(s.client.named('uploadRaw').length, 1, 'a brush stroke reads no pixels');
  await s.panel.userIdle();
  assert.equal(s.client.named('uploadRaw').length, 2);
  assert.deepEqual(s.client.named('precompute')[1][0], {
    imageId: 'img-2',
    documentId: 'doc-1',
    layerStackHash: 'hash-2',
    ops: undefined,
  });
});

test('history changes while the user works are read once, the newest, when they pause', async () => {
  const s = setup();
  await s.panel.documentSelected(PORTRAIT);
  await s.panel.userIdle();
  for (const hash of ['hash-2', 'hash-3', 'hash-4']) await s.panel.historyChanged({ ...PORTRAIT, layerStackHash: hash });
  assert.equal(s.adapter.named('readPixels').length, 1, 'no reads while painting');
  await s.panel.userIdle();
  await s.panel.userIdle(); // a second idle with nothing new reads nothing
  assert.deepEqual(
    s.client.named('precompute').map(([request]) => request.layerStackHash),
    ['hash-1', 'hash-4'],
  );
  assert.equal(s.client.named('uploadRaw').length, 2, 'hash-2 and hash-3 are never read nor uploaded');
});

test('a precompute whose upload finishes after a switch does not stop the new document', async () => {
  const s = setup({ docs: [doc(1), doc(2)] });
  await s.panel.documentSelected(doc(1));
  const first = s.panel.userIdle();
  const second = s.panel.documentSelected(doc(2));
  await Promise.all([first, second]);
  await s.panel.userIdle();
  assert.deepEqual(s.client.named('precompute').map(([request]) => request.documentId), ['doc-2']);
});

// The portrait in front, the user idle; an edit, the user idle again: two states uploaded.
async function uploadTwoStates(s) {
  await s.panel.documentSelected(PORTRAIT);
  await s.panel.userIdle();
  await s.panel.historyChanged({ ...PORTRAIT, layerStackHash: 'hash-2' });
  await s.panel.userIdle();
}

test('stepping back to a state uploaded before asks HEAD and skips the upload', async () => {
  const s = setup();
  await uploadTwoStates(s);
  assert.equal(s.client.named('uploadRaw').length, 2);
  await s.panel.historyChanged(PORTRAIT); // undo: back to the first state
  await s.panel.userIdle();
  assert.deepEqual(s.client.named('hasImage'), [['img-1']]);
  assert.equal(s.client.named('uploadRaw').length, 2, 'no third upload');
  assert.equal(s.client.named('precompute').at(-1)[0].imageId, 'img-1');
});

test('a state the sidecar no longer holds is uploaded again', async () => {
  const s = setup();
  await uploadTwoStates(s);
  s.client.stored.clear(); // the sidecar's store was emptied
  await s.panel.historyChanged(PORTRAIT);
  await s.panel.userIdle();
  assert.deepEqual(s.client.named('hasImage'), [['img-1']]);
  assert.equal(s.client.named('uploadRaw').length, 3);
  assert.equal(s.client.named('precompute').at(-1)[0].imageId, 'img-3');
});

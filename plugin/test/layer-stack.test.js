'use strict';
// Photoshop's documents as the adapter reads them (layer-stack.js), on plain objects
// shaped like the DOM's Document, Layer and HistoryState.
const test = require('node:test');
const assert = require('node:assert/strict');

const { fnv1a, list, sameId, findLayer, layerStackHash, stepBackOver } = require('../layer-stack.js');

const layer = (id, fields = {}) => ({
  id,
  name: `Layer ${id}`,
  visible: true,
  opacity: 100,
  blendMode: 'normal',
  ...fields,
});

function document(fields = {}) {
  return {
    id: 7,
    activeHistoryState: { id: 1 },
    layers: [layer(3, { layers: [layer(4), layer(5)] }), layer(2)],
    ...fields,
  };
}

test('fnv1a is the 32-bit FNV-1a of the text, as 8 hex digits', () => {
  assert.equal(fnv1a(''), '811c9dc5');
  assert.equal(fnv1a('a'), 'e40c292c');
  assert.equal(fnv1a('foobar'), 'bf9cf968');
});

test('collections become arrays, and ids compare as text', () => {
  assert.deepEqual(list(undefined), []);
  assert.deepEqual(list(new Set([1, 2])), [1, 2]);
  assert.equal(sameId(5, '5'), true);
  assert.equal(sameId(null, 'null'), false);
  assert.equal(sameId(undefined, undefined), false);
});

test('findLayer finds a layer inside groups, by an id given as a number or a string', () => {
  const doc = document();
  assert.equal(findLayer(doc.layers, '5').name, 'Layer 5');
  assert.equal(findLayer(doc.layers, 3).layers.length, 2);
  assert.equal(findLayer(doc.layers, 9), null);
});

test('the layer-stack hash changes with the history state and every layer property in it', () => {
  const hash = layerStackHash(document());
  assert.match(hash, /^[0-9a-f]{8}$/);
  assert.equal(layerStackHash(document()), hash, 'the same stack, the same hash');
  const changes = [
    { activeHistoryState: { id: 2 } },
    { id: 8 },
    { layers: [layer(3, { layers: [layer(4), layer(5, { visible: false })] }), layer(2)] },
    { layers: [layer(3, { layers: [layer(4), layer(5)] }), layer(2, { opacity: 50 })] },
    { layers: [layer(3, { layers: [layer(4), layer(5)] }), layer(2, { blendMode: 'multiply' })] },
    { layers: [layer(3, { layers: [layer(4), layer(5)] }), layer(2, { name: 'renamed' })] },
    { layers: [layer(2), layer(3, { layers: [layer(4), layer(5)] })] },
    { layers: [layer(3, { layers: [layer(4)] }), layer(5), layer(2)] },
  ];
  const hashes = changes.map((change) => layerStackHash(document(change)));
  for (const [index, changed] of hashes.entries()) assert.notEqual(changed, hash, `change ${index}`);
  assert.equal(new Set(hashes).size, hashes.length, 'each change its own hash');
});

test('stepBackOver undoes the given state only while it is the last, never past the first', () => {
  const states = [{ id: 1 }, { id: 2, snapshot: true }, { id: 3 }, { id: 4 }];
  const doc = { historyStates: states, activeHistoryState: states[3] };
  assert.equal(stepBackOver(doc, 3), null, 'not the active state: nothing undone');
  assert.equal(doc.activeHistoryState.id, 4);
  assert.equal(stepBackOver(doc, '4').id, 4);
  assert.equal(doc.activeHistoryState.id, 3);
  assert.equal(stepBackOver(doc, 3).id, 3, 'snapshots are not steps to go back to');
  assert.equal(doc.activeHistoryState.id, 1);
  assert.equal(stepBackOver(doc, 1), null, 'the first state has nothing before it');
});

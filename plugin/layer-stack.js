// Photoshop's documents as the adapter (photoshop-adapter.js) reads them: the layer tree,
// the layer-stack hash that says whether a document's pixels changed since they were
// uploaded, and the step back over a draft's history state. Plain functions over DOM
// objects (Document, Layer, HistoryState), so they run on fakes.
'use strict';

const { documentProblem } = require('./host-support.js');

// FNV-1a, 32 bit: a short key, not a security measure.
function fnv1a(text) {
  let hash = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    hash ^= text.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  return hash.toString(16).padStart(8, '0');
}

// A DOM collection (documents, layers, history states) as an array; none as [].
function list(collection) {
  return collection ? Array.from(collection) : [];
}

// Ids compared as text: the panel and the sidecar may hold them as strings.
function sameId(a, b) {
  return a != null && b != null && String(a) === String(b);
}

// The layer with that id anywhere in the tree (inside groups too), or null.
function findLayer(layers, layerId) {
  for (const layer of list(layers)) {
    if (sameId(layer.id, layerId)) return layer;
    const inner = layer.layers ? findLayer(layer.layers, layerId) : null;
    if (inner) return inner;
  }
  return null;
}

function describeLayers(layers, parts) {
  for (const layer of list(layers)) {
    parts.push(`${layer.id}|${layer.name}|${layer.visible}|${layer.opacity}|${layer.blendMode}`);
    if (layer.layers) {
      parts.push('[');
      describeLayers(layer.layers, parts);
      parts.push(']');
    }
  }
}

// Changes whenever the layer stack or any layer's pixels change, and comes back with an
// undo: any pixel edit makes a new history state, so the state's id stands in for the
// pixels, and each layer's id, name, visibility, opacity and blend mode are in it.
function layerStackHash(doc) {
  const parts = [String(doc.id), String(doc.activeHistoryState?.id)];
  describeLayers(doc.layers, parts);
  return fnv1a(parts.join('\n'));
}

// The adapter contract's DocumentInfo (adapter-contract.js).
function documentInfo(doc, constants) {
  return {
    id: doc.id,
    name: doc.name ?? doc.title,
    width: doc.width,
    height: doc.height,
    layerStackHash: layerStackHash(doc),
    unsupported: documentProblem(doc, constants),
  };
}

// When the document's history still ends at `stateId`, makes the state before it the
// active one (an undo, not a new step) and returns the undone state, else null. With
// linear history the undone state disappears at the next step; with non-linear history
// it stays listed.
function stepBackOver(doc, stateId) {
  if (!sameId(doc.activeHistoryState?.id, stateId)) return null;
  const states = list(doc.historyStates).filter((state) => !state.snapshot);
  const index = states.findIndex((state) => sameId(state.id, stateId));
  if (index < 1) return null;
  doc.activeHistoryState = states[index - 1];
  return states[index];
}

module.exports = { fnv1a, list, sameId, findLayer, layerStackHash, documentInfo, stepBackOver };

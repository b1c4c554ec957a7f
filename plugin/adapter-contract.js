// The only door from the panel to the host application. photoshop-adapter.js implements
// it with require('photoshop'); a canvas adapter implements it in a browser; tests use a
// fake that records calls. Every method is async.
'use strict';

/**
 * @typedef {Object} DocumentInfo
 * @property {string|number} id
 * @property {string} name
 * @property {string} layerStackHash  changes whenever the layer stack or any layer's pixels change
 */

/**
 * @typedef {Object} Pixels  interleaved, rows top to bottom; 16-bit samples little-endian
 * @property {Uint8Array} bytes
 * @property {number} width
 * @property {number} height
 * @property {3|4} channels
 * @property {8|16} depth
 */

/**
 * @typedef {Object} Adapter
 *
 * @property {() => Promise<DocumentInfo|null>} activeDocument
 *   The document in front, or null when none is open.
 *
 * @property {(docId) => Promise<Pixels>} readPixels
 *   The document's composite, as imaging.getPixels gives it.
 *
 * @property {(docId, name: string, fn: () => Promise<*>) => Promise<*>} runAsOneHistoryStep
 *   Runs fn inside executeAsModal + suspendHistory: everything fn does to the document
 *   becomes exactly ONE history step called `name`. Resolves with fn's value. If fn
 *   throws, its changes are rolled back, no history step remains, and the error is
 *   rethrown. The panel calls it only once the pixels to place are in hand, so the modal
 *   scope lasts milliseconds and never blocks Photoshop while a job runs.
 *
 * @property {(docId, layer: {name: string, pixels: Pixels, opacity: number}) => Promise<*>} createResultLayer
 *   Adds a new pixel layer at the top of the group "ML Retouch" (creating the group
 *   if missing) and resolves with its layer id. Only valid inside runAsOneHistoryStep.
 *   Never touches existing layers' pixels.
 *
 * @property {(docId, layerId, pixels: Pixels) => Promise<void>} replaceLayerPixels
 *   Replaces that layer's pixels in place (same layer, same id). Only valid inside
 *   runAsOneHistoryStep.
 *
 * @property {(docId, layerId, percent: number) => Promise<void>} setLayerOpacity
 *   Sets the layer's opacity (0..100). Outside runAsOneHistoryStep it is a live change
 *   for a dragging slider and leaves no history step; inside, it is part of that step.
 *
 * @property {(jpeg: Uint8Array|null) => Promise<void>} showThumbnail
 *   Shows a preview JPEG in the panel's preview area (null clears it). Previews never
 *   go to the document or its history.
 */

const ADAPTER_METHODS = Object.freeze([
  'activeDocument',
  'readPixels',
  'runAsOneHistoryStep',
  'createResultLayer',
  'replaceLayerPixels',
  'setLayerOpacity',
  'showThumbnail',
]);

/** Throws a TypeError naming every method the adapter lacks; returns the adapter. */
function checkAdapter(adapter) {
  if (!adapter || typeof adapter !== 'object') throw new TypeError('an adapter object is required');
  const missing = ADAPTER_METHODS.filter((name) => typeof adapter[name] !== 'function');
  if (missing.length) throw new TypeError(`adapter is missing: ${missing.join(', ')}`);
  return adapter;
}

module.exports = { ADAPTER_METHODS, checkAdapter };

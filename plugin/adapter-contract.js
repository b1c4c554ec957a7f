// The only door from the panel to the host application. photoshop-adapter.js implements
// it with require('photoshop'); browser/canvas-adapter.js implements it on a canvas in a
// browser; tests use a fake that records calls. Every method is async.
//
// History discipline, which every adapter keeps and the panel relies on:
// - One Apply = one new layer = ONE history step. The draft goes in as a layer at once
//   (placeDraft, one step); the final replaces it (commitResult). When the document's
//   history still ends at the draft's step, the final takes that step's place, so the
//   Apply stays one step. When the user has made steps of their own since, the final is
//   a step of its own on top: their work is never undone to keep our history tidy.
// - Every document change is made inside a modal scope that lasts milliseconds, once the
//   pixels are in hand: Photoshop is never blocked while a job runs.
// - Previews (preview levels, diffusion steps) never reach the document: showThumbnail.
'use strict';

/**
 * @typedef {Object} DocumentInfo
 * @property {string|number} id
 * @property {string} name
 * @property {number} width   pixels
 * @property {number} height  pixels
 * @property {string} layerStackHash  changes whenever the layer stack or any layer's pixels change
 * @property {string|null} [unsupported]  why the panel cannot work on this document (its
 *   colour mode or depth), said up front; null or absent when it can
 */

/**
 * @typedef {Object} Pixels  interleaved, rows top to bottom; 16-bit samples little-endian,
 *   full range 0..65535 (an adapter converts from its host's range)
 * @property {Uint8Array} bytes
 * @property {number} width
 * @property {number} height
 * @property {3|4} channels
 * @property {8|16} depth
 * @property {() => void} [release]  readPixels only: frees the host's buffer behind
 *   `bytes` once the caller has sent them
 */

/**
 * @typedef {Object} Draft  what placeDraft resolves with; the panel hands it back as is
 * @property {string|number} layerId
 */

/**
 * @typedef {Object} Adapter
 *
 * @property {() => Promise<DocumentInfo|null>} activeDocument
 *   The document in front, or null when none is open.
 *
 * @property {() => Promise<DocumentInfo[]>} documents
 *   Every open document (for the batch queue).
 *
 * @property {(docId) => Promise<Pixels>} readPixels
 *   The document's composite, as imaging.getPixels gives it. Rejects, before reading,
 *   for a document with `unsupported` set. Costly (Photoshop goes modal): called on
 *   Apply and when the user is idle, never on every document event.
 *
 * @property {(docId, draft: {name: string, historyName: string, pixels: Pixels}) => Promise<Draft>} placeDraft
 *   Adds a new layer at the top of the group "ML Retouch" (creating the group if
 *   missing) holding `pixels` scaled up to the document's size: ONE history step named
 *   historyName. Never touches existing layers' pixels.
 *
 * @property {(docId, result: {name: string, historyName: string, pixels: Pixels, draft?: Draft}) => Promise<string|number>} commitResult
 *   Places the full-resolution result and resolves with its layer id. With a draft, the
 *   final replaces the draft (see the history discipline above); without, it is a new
 *   layer in "ML Retouch", one history step.
 *
 * @property {(docId, draft: Draft) => Promise<void>} discardDraft
 *   Removes a draft whose job failed or was cancelled: its step is undone when it is
 *   still the last one, otherwise the layer is deleted in a step of its own.
 *
 * @property {(docId, layerId, result: {historyName: string, pixels: Pixels}) => Promise<void>} replaceResult
 *   Refine: the layer's pixels replaced in place and its opacity set to 100 %, ONE
 *   history step.
 *
 * @property {(docId, layerId, percent: number) => Promise<void>} setLayerOpacity
 *   The layer's opacity (0..100) as a live change for a dragging slider: no history step.
 *
 * @property {(docId, layerId, percent: number, historyName: string) => Promise<void>} commitOpacity
 *   The same opacity, committed as ONE history step (on the slider's release).
 *
 * @property {(jpeg: Uint8Array|null) => Promise<void>} showThumbnail
 *   Shows a preview JPEG in the panel's preview area (null clears it). Previews never
 *   go to the document or its history.
 *
 * @property {(listener: {opened?, selected?, closed?, historyChanged?, idle?}) => (() => void)} watchDocuments
 *   Calls opened(doc), selected(doc), closed(docId) and historyChanged(doc) (doc a
 *   DocumentInfo) as the host's documents change, and idle() when the user has paused
 *   (Photoshop's userIdle); returns the function that stops it.
 *
 * Document changes may reject with an error whose code is 'modal_busy' when the host
 * stays busy with a dialog or another plugin: the panel then keeps the result and tries
 * again later (placements.js).
 */

// The methods that change a document (each may reject with 'modal_busy'), and all of them.
const DOCUMENT_CHANGES = Object.freeze([
  'placeDraft', 'commitResult', 'discardDraft',
  'replaceResult', 'setLayerOpacity', 'commitOpacity',
]);
const ADAPTER_METHODS = Object.freeze([
  'activeDocument', 'documents', 'readPixels',
  ...DOCUMENT_CHANGES,
  'showThumbnail', 'watchDocuments',
]);

/** Throws a TypeError naming every method the adapter lacks; returns the adapter. */
function checkAdapter(adapter) {
  if (!adapter || typeof adapter !== 'object') throw new TypeError('an adapter object is required');
  const missing = ADAPTER_METHODS.filter((name) => typeof adapter[name] !== 'function');
  if (missing.length) throw new TypeError(`adapter is missing: ${missing.join(', ')}`);
  return adapter;
}

/**
 * @typedef {Object} TokenStore  where the token is kept between sessions (the plugin's
 *   data folder in Photoshop, localStorage in a browser)
 * @property {() => Promise<string>} load   '' when none was saved
 * @property {(token: string) => Promise<void>} save
 */

module.exports = { ADAPTER_METHODS, DOCUMENT_CHANGES, checkAdapter };

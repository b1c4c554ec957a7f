// The adapter contract (../adapter-contract.js) on canvases, for the browser panel: a
// small stand-in for Photoshop's documents, with layers, a group "ML Retouch" and a
// history that keeps the same discipline (one Apply = one layer = one step).
//
// Each document holds its base pixels and a history: a list of steps, each a snapshot of
// the layer list. Layers are never changed in place once in a snapshot; a change makes
// new layer objects (the pixel canvases themselves are shared).
'use strict';

const GROUP = 'ML Retouch';
let canvasSerial = 0;

// Every canvas gets a serial, so a layer whose pixels were swapped hashes differently.
function newCanvas(width, height) {
  const canvas = document.createElement('canvas');
  canvas.width = width;
  canvas.height = height;
  canvas.serial = ++canvasSerial;
  return canvas;
}

/** Pixels (any channels/depth of the contract) → RGBA 8-bit ImageData. */
function toImageData({ bytes, width, height, channels, depth }) {
  const image = new ImageData(width, height);
  const out = image.data;
  const step = channels * (depth === 16 ? 2 : 1);
  const high = depth === 16 ? 1 : 0; // little-endian: the high byte of each sample
  const sample = depth === 16 ? 2 : 1;
  for (let i = 0, o = 0; o < out.length; i += step, o += 4) {
    out[o] = bytes[i + high];
    out[o + 1] = bytes[i + sample + high];
    out[o + 2] = bytes[i + 2 * sample + high];
    out[o + 3] = channels === 4 ? bytes[i + 3 * sample + high] : 255;
  }
  return image;
}

/** A canvas of the document's size holding `pixels`, scaled up when they are smaller. */
function canvasOf(pixels, width, height) {
  const source = newCanvas(pixels.width, pixels.height);
  source.getContext('2d').putImageData(toImageData(pixels), 0, 0);
  if (pixels.width === width && pixels.height === height) return source;
  const canvas = newCanvas(width, height);
  const context = canvas.getContext('2d');
  context.imageSmoothingQuality = 'high';
  context.drawImage(source, 0, 0, width, height);
  return canvas;
}

class CanvasDocument {
  constructor(id, name, image) {
    this.id = id;
    this.name = name;
    this.width = image.width;
    this.height = image.height;
    this.base = newCanvas(this.width, this.height);
    this.base.getContext('2d').drawImage(image, 0, 0);
    this.nextLayerId = 1;
    this.nextStepId = 1;
    this.history = [{ id: 0, name: 'Open', layers: [] }];
    this.current = 0; // index into history: stepping back makes later steps redo states
    this.layers = []; // the working state: the current step's layers, plus live changes
  }

  get currentStep() {
    return this.history[this.current];
  }

  layer(layerId) {
    const found = this.layers.find((layer) => layer.id === layerId);
    if (!found) throw new Error(`no layer ${layerId} in ${this.name}`);
    return found;
  }

  /** A new step on top of the current one; redo states beyond it are dropped. */
  push(name, layers) {
    this.history = this.history.slice(0, this.current + 1);
    this.history.push({ id: this.nextStepId++, name, layers });
    this.current = this.history.length - 1;
    this.layers = layers.map((layer) => ({ ...layer }));
    return this.currentStep.id;
  }

  /** Replaces the current step's layers without a new step (the draft → final swap). */
  amend(layers) {
    this.currentStep.layers = layers;
    this.layers = layers.map((layer) => ({ ...layer }));
  }

  select(index) {
    this.current = Math.max(0, Math.min(index, this.history.length - 1));
    this.layers = this.currentStep.layers.map((layer) => ({ ...layer }));
  }

  addLayer(name, canvas, draft = false) {
    const layer = { id: `layer-${this.nextLayerId++}`, name, group: GROUP, canvas, opacity: 100, draft };
    return { layer, layers: [...this.layers, layer] };
  }

  replaced(layerId, changes) {
    return this.layers.map((layer) => (layer.id === layerId ? { ...layer, ...changes } : layer));
  }

  /** Changes whenever the layer stack, a layer's pixels or the history position change. */
  get layerStackHash() {
    const layers = this.layers.map((layer) => `${layer.id}:${layer.opacity}:${layer.canvas.serial}`);
    return `${this.id}@${this.currentStep.id}|${layers.join(',')}`;
  }

  info() {
    return { id: this.id, name: this.name, width: this.width, height: this.height, layerStackHash: this.layerStackHash };
  }

  /** The composite: base, then each visible layer at its opacity. */
  draw(canvas) {
    canvas.width = this.width;
    canvas.height = this.height;
    const context = canvas.getContext('2d');
    context.globalAlpha = 1;
    context.drawImage(this.base, 0, 0);
    for (const layer of this.layers) {
      context.globalAlpha = layer.opacity / 100;
      context.drawImage(layer.canvas, 0, 0);
    }
    context.globalAlpha = 1;
  }
}

// Photoshop's userIdle, in the browser: `idle` after this long without a document event.
const IDLE_MS = 1500;

class Workspace {
  constructor({ idleMs = IDLE_MS } = {}) {
    this.idleMs = idleMs;
    this.idleTimer = null;
    this.documents = new Map();
    this.activeId = null;
    this.nextDocId = 1;
    this.listeners = new Set();
    this.watchers = new Set();
    this.log = []; // what happened to documents, in order: for people and tests
  }

  get active() {
    return this.documents.get(this.activeId) ?? null;
  }

  doc(docId) {
    const found = this.documents.get(docId);
    if (!found) throw new Error('that document is closed');
    return found;
  }

  open(name, image) {
    const doc = new CanvasDocument(`doc-${this.nextDocId++}`, name, image);
    this.documents.set(doc.id, doc);
    this.activeId = doc.id;
    this.record('open', doc);
    this.notify('opened', doc.info());
    return doc;
  }

  select(docId) {
    if (!this.documents.has(docId) || docId === this.activeId) return;
    this.activeId = docId;
    this.record('select', this.active);
    this.notify('selected', this.active.info());
  }

  close(docId) {
    const doc = this.doc(docId);
    this.documents.delete(docId);
    if (this.activeId === docId) this.activeId = this.documents.keys().next().value ?? null;
    this.record('close', doc);
    this.notify('closed', docId);
    if (this.active) this.notify('selected', this.active.info());
  }

  /** A step of the user's own (a brush dab): any edit that is not ours. */
  paint(docId, x, y) {
    const doc = this.doc(docId);
    const dab = newCanvas(doc.width, doc.height);
    const context = dab.getContext('2d');
    context.fillStyle = 'rgba(200, 40, 60, 0.8)';
    context.beginPath();
    context.arc(x, y, Math.max(4, doc.width / 60), 0, Math.PI * 2);
    context.fill();
    const { layers } = doc.addLayer('Brush dab', dab);
    layers[layers.length - 1].group = null;
    doc.push('Brush Tool', layers);
    this.changedHistory(doc, 'paint');
  }

  stepTo(docId, index) {
    const doc = this.doc(docId);
    doc.select(index);
    this.changedHistory(doc, 'history');
  }

  changedHistory(doc, what, detail) {
    this.record(what, doc, detail);
    this.notify('historyChanged', doc.info());
  }

  record(what, doc, detail = {}) {
    this.log.push({ what, docId: doc?.id ?? null, steps: doc ? doc.current : null, at: performance.now(), ...detail });
    for (const listener of this.listeners) listener();
  }

  notify(kind, payload) {
    for (const watcher of this.watchers) watcher[kind]?.(payload);
    if (kind === 'idle') return;
    clearTimeout(this.idleTimer);
    this.idleTimer = setTimeout(() => this.notify('idle'), this.idleMs);
  }

  onChange(listener) {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
}

function createCanvasAdapter(workspace, { thumbnail = () => document.getElementById('thumbnail') } = {}) {
  return {
    async activeDocument() {
      return workspace.active?.info() ?? null;
    },

    async documents() {
      return [...workspace.documents.values()].map((doc) => doc.info());
    },

    async readPixels(docId) {
      const doc = workspace.doc(docId);
      const canvas = newCanvas(doc.width, doc.height);
      doc.draw(canvas);
      const rgba = canvas.getContext('2d').getImageData(0, 0, doc.width, doc.height).data;
      const bytes = new Uint8Array(doc.width * doc.height * 3);
      for (let i = 0, o = 0; o < bytes.length; i += 4, o += 3) {
        bytes[o] = rgba[i];
        bytes[o + 1] = rgba[i + 1];
        bytes[o + 2] = rgba[i + 2];
      }
      return { bytes, width: doc.width, height: doc.height, channels: 3, depth: 8 };
    },

    async placeDraft(docId, { name, historyName, pixels }) {
      const doc = workspace.doc(docId);
      const { layer, layers } = doc.addLayer(`${name} (draft)`, canvasOf(pixels, doc.width, doc.height), true);
      const stepId = doc.push(historyName, layers);
      workspace.changedHistory(doc, 'draft', { layerId: layer.id, size: [pixels.width, pixels.height] });
      return { layerId: layer.id, stepId };
    },

    async commitResult(docId, { name, historyName, pixels, draft }) {
      const doc = workspace.doc(docId);
      const canvas = canvasOf(pixels, doc.width, doc.height);
      const present = draft && doc.layers.some((layer) => layer.id === draft.layerId);
      if (present && doc.currentStep.id === draft.stepId && doc.current === doc.history.length - 1) {
        doc.amend(doc.replaced(draft.layerId, { name, canvas, draft: false }));
        workspace.changedHistory(doc, 'final', { layerId: draft.layerId, inPlace: true });
        return draft.layerId;
      }
      if (present) {
        doc.push(`${historyName} (final)`, doc.replaced(draft.layerId, { name, canvas, draft: false }));
        workspace.changedHistory(doc, 'final', { layerId: draft.layerId, inPlace: false });
        return draft.layerId;
      }
      const { layer, layers } = doc.addLayer(name, canvas);
      doc.push(historyName, layers);
      workspace.changedHistory(doc, 'final', { layerId: layer.id, inPlace: false });
      return layer.id;
    },

    async discardDraft(docId, draft) {
      const doc = workspace.doc(docId);
      if (!doc.layers.some((layer) => layer.id === draft.layerId)) return;
      if (doc.currentStep.id === draft.stepId && doc.current === doc.history.length - 1) {
        doc.history.pop();
        doc.select(doc.history.length - 1);
      } else {
        doc.push('Delete Layer', doc.layers.filter((layer) => layer.id !== draft.layerId));
      }
      workspace.changedHistory(doc, 'discard', { layerId: draft.layerId });
    },

    async replaceResult(docId, layerId, { historyName, pixels }) {
      const doc = workspace.doc(docId);
      doc.layer(layerId);
      const canvas = canvasOf(pixels, doc.width, doc.height);
      doc.push(historyName, doc.replaced(layerId, { canvas, opacity: 100 }));
      workspace.changedHistory(doc, 'refine', { layerId });
    },

    async setLayerOpacity(docId, layerId, percent) {
      const doc = workspace.doc(docId);
      doc.layer(layerId).opacity = percent;
      workspace.record('opacity', doc, { layerId, percent });
    },

    async commitOpacity(docId, layerId, percent, historyName) {
      const doc = workspace.doc(docId);
      doc.layer(layerId);
      doc.push(historyName, doc.replaced(layerId, { opacity: percent }));
      workspace.changedHistory(doc, 'opacity-step', { layerId, percent });
    },

    async showThumbnail(jpeg) {
      const img = thumbnail();
      if (!img) return;
      if (img.src.startsWith('blob:')) URL.revokeObjectURL(img.src);
      if (jpeg) img.src = URL.createObjectURL(new Blob([jpeg], { type: 'image/jpeg' }));
      else img.removeAttribute('src');
      img.className = jpeg ? '' : 'empty';
    },

    watchDocuments(listener) {
      workspace.watchers.add(listener);
      return () => workspace.watchers.delete(listener);
    },
  };
}

module.exports = { Workspace, CanvasDocument, createCanvasAdapter, toImageData, GROUP };

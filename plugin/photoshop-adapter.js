// The adapter contract (adapter-contract.js) on Photoshop's UXP APIs (apiVersion 2,
// Photoshop 24 or later), and the token store in the plugin's data folder. The only
// module that requires 'photoshop' or 'uxp'; both arrive through `deps`, so tests pass
// fakes and Node never loads the real ones.
//
// Every document change runs inside core.executeAsModal (one at a time: the runner
// below queues them) and inside one suspendHistory/resumeHistory pair, which makes it
// exactly one history step or, when the change throws, rolls it back.
'use strict';

const { dataUrl } = require('./ui-parts.js');

const GROUP_NAME = 'ML Retouch';
const DRAG_HISTORY_NAME = 'ML Retouch: opacity';
const DRAG_IDLE_MS = 2000;
const TOKEN_FILE = 'token.txt';
const NOTIFICATIONS = ['open', 'select', 'close', 'historyStateChanged'];

function hostModules() {
  return { photoshop: require('photoshop'), uxp: require('uxp') };
}

// 16-bit samples. Photoshop's imaging API uses 0..32768 for 16-bit data; the contract
// (and the sidecar) use 0..65535. Tables make the conversion one lookup per sample.
// A Uint16Array view reads and writes little-endian bytes on the platforms Photoshop
// runs on (x86-64 and arm64), which is what the contract's byte order is.
const HOST_MAX_16 = 32768;
const FULL_MAX_16 = 65535;
let hostToFullTable = null;
let fullToHostTable = null;

/** Host range (0..32768) to full range (0..65535), rounded to nearest. */
function fromHost16(samples) {
  if (!hostToFullTable) {
    hostToFullTable = new Uint16Array(HOST_MAX_16 + 1);
    for (let v = 0; v <= HOST_MAX_16; v++) hostToFullTable[v] = Math.round((v * FULL_MAX_16) / HOST_MAX_16);
  }
  const out = new Uint16Array(samples.length);
  for (let i = 0; i < samples.length; i++) out[i] = hostToFullTable[Math.min(samples[i], HOST_MAX_16)];
  return out;
}

/** Full range (0..65535) to host range (0..32768), rounded to nearest. */
function toHost16(samples) {
  if (!fullToHostTable) {
    fullToHostTable = new Uint16Array(FULL_MAX_16 + 1);
    for (let v = 0; v <= FULL_MAX_16; v++) fullToHostTable[v] = Math.round((v * HOST_MAX_16) / FULL_MAX_16);
  }
  const out = new Uint16Array(samples.length);
  for (let i = 0; i < samples.length; i++) out[i] = fullToHostTable[samples[i]];
  return out;
}

function samples16(bytes) {
  const aligned = bytes.byteOffset % 2 === 0 ? bytes : bytes.slice();
  return new Uint16Array(aligned.buffer, aligned.byteOffset, aligned.byteLength >> 1);
}

function asBytes(samples) {
  return new Uint8Array(samples.buffer, samples.byteOffset, samples.byteLength);
}

// Contract pixels → a typed array in the host's depth and range, for createImageDataFromBuffer.
function hostSamples(pixels, hostDepth) {
  const { bytes, width, height, channels, depth } = pixels;
  const count = width * height * channels;
  if (bytes.byteLength !== count * (depth / 8)) throw new Error('The pixel buffer does not match its size.');
  if (depth === 8 && hostDepth === 8) return bytes;
  if (depth === 16 && hostDepth === 16) return toHost16(samples16(bytes));
  if (depth === 8) {
    const out = new Uint16Array(count);
    for (let i = 0; i < count; i++) out[i] = Math.round((bytes[i] * HOST_MAX_16) / 255);
    return out;
  }
  const wide = samples16(bytes);
  const out = new Uint8Array(count);
  for (let i = 0; i < count; i++) out[i] = Math.round(wide[i] / 257);
  return out;
}

// getPixels trims transparent margins from the composite; the contract wants the whole
// canvas, so a trimmed read goes back into a transparent document-sized RGBA buffer.
function padToDocument(samples, { width, height, channels }, bounds, docWidth, docHeight, opaque) {
  const out = new samples.constructor(docWidth * docHeight * 4);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const from = (y * width + x) * channels;
      const to = ((y + bounds.top) * docWidth + x + bounds.left) * 4;
      out[to] = samples[from];
      out[to + 1] = samples[from + 1];
      out[to + 2] = samples[from + 2];
      out[to + 3] = channels === 4 ? samples[from + 3] : opaque;
    }
  }
  return out;
}

function coversDocument(bounds, width, height, docWidth, docHeight) {
  return !bounds || (bounds.left === 0 && bounds.top === 0 && width === docWidth && height === docHeight);
}

// FNV-1a, 32 bit: a short key, not a security measure.
function fnv1a(text) {
  let hash = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    hash ^= text.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  return hash.toString(16).padStart(8, '0');
}

function list(collection) {
  return collection ? Array.from(collection) : [];
}

function sameId(a, b) {
  return a != null && b != null && String(a) === String(b);
}

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

// Any pixel edit makes a new history state, so the state's id stands in for the pixels.
function layerStackHash(doc) {
  const parts = [String(doc.id), String(doc.activeHistoryState?.id)];
  describeLayers(doc.layers, parts);
  return fnv1a(parts.join('\n'));
}

function documentInfo(doc) {
  return {
    id: doc.id,
    name: doc.name ?? doc.title,
    width: doc.width,
    height: doc.height,
    layerStackHash: layerStackHash(doc),
  };
}

// Queues executeAsModal calls: Photoshop refuses a second modal scope while one is open.
function createModalRunner(core) {
  let tail = Promise.resolve();
  return (commandName, fn, options = {}) => {
    const run = tail.then(() => core.executeAsModal((context) => fn(context), { commandName, ...options }));
    tail = run.catch(() => {});
    return run;
  };
}

// One history step named `name` around `change`; rolled back if it throws.
async function inOneStep(context, documentID, name, change) {
  const { hostControl } = context;
  const suspension = await hostControl.suspendHistory({ documentID, name });
  let value;
  try {
    value = await change();
  } catch (error) {
    try {
      await hostControl.resumeHistory(suspension, false);
    } catch {
      // the rollback failing must not hide why the change failed
    }
    throw error;
  }
  await hostControl.resumeHistory(suspension, true);
  return value;
}

function createPhotoshopAdapter(deps = hostModules()) {
  const { app, action, core, imaging, constants } = deps.photoshop;
  const page = deps.document ?? globalThis.document;
  const dragIdleMs = deps.dragIdleMs ?? DRAG_IDLE_MS;
  const modal = createModalRunner(core);
  const profiles = new Map(); // document id → the colour profile its pixels were read in
  let drag = null;

  function openDocument(docId) {
    return list(app.documents).find((doc) => sameId(doc.id, docId)) ?? null;
  }

  function requireDocument(docId) {
    const doc = openDocument(docId);
    if (!doc) throw new Error('The document is no longer open.');
    return doc;
  }

  function requireLayer(doc, layerId) {
    const layer = findLayer(doc.layers, layerId);
    if (!layer) throw new Error('The layer is gone.');
    return layer;
  }

  // 8 and 16 bit are exact. A 32-bit document is asked for 16-bit pixels and given
  // 16-bit ones back, leaving the conversion to the imaging API (not tried on one yet).
  function hostDepth(doc) {
    return doc.bitsPerChannel === constants.BitsPerChannelType.EIGHT ? 8 : 16;
  }

  function isGroup(layer) {
    return layer.kind === constants.LayerKind.GROUP;
  }

  function setOpacity(docId, layerId, percent) {
    const value = Math.min(100, Math.max(0, Number(percent)));
    return action.batchPlay(
      [
        {
          _obj: 'set',
          _target: [
            { _ref: 'layer', _id: layerId },
            { _ref: 'document', _id: docId },
          ],
          to: { _obj: 'layer', opacity: { _unit: 'percentUnit', _value: value } },
        },
      ],
      {},
    );
  }

  // The group at the top of the stack that holds every layer this panel makes.
  async function retouchGroup(doc) {
    const existing = list(doc.layers).find((layer) => layer.name === GROUP_NAME && isGroup(layer));
    if (existing) return existing;
    // Created above the active layer, which may sit inside another group: move it out to the top.
    const group = await doc.createLayerGroup({ name: GROUP_NAME });
    const top = list(doc.layers)[0];
    if (top && !sameId(top.id, group.id)) await group.move(top, constants.ElementPlacement.PLACEBEFORE);
    return group;
  }

  async function placeAtTopOf(group, layer) {
    const children = list(group.layers);
    if (children.length && sameId(children[0].id, layer.id)) return;
    const first = children.find((child) => !sameId(child.id, layer.id));
    if (first) await layer.move(first, constants.ElementPlacement.PLACEBEFORE);
    else await layer.move(group, constants.ElementPlacement.PLACEINSIDE);
  }

  async function writePixels(doc, layerId, pixels) {
    const data = hostSamples(pixels, hostDepth(doc));
    const profile = profiles.get(doc.id);
    const imageData = await imaging.createImageDataFromBuffer(data, {
      width: pixels.width,
      height: pixels.height,
      components: pixels.channels,
      chunky: true,
      colorSpace: 'RGB',
      ...(profile ? { colorProfile: profile } : {}),
    });
    try {
      await imaging.putPixels({
        documentID: doc.id,
        layerID: layerId,
        imageData,
        replace: true,
        targetBounds: { left: 0, top: 0 },
      });
    } finally {
      imageData.dispose();
    }
  }

  // A draft (1/8 of the document, say) is written small at the top-left corner, then
  // scaled up with Layer.scale, anchored top-left: Photoshop resamples it (fast, and
  // smooth), where uploading a document-sized copy would cost a full-resolution buffer.
  // Layer.scale transforms the layer's content bounds, which start past (0,0) when the
  // draft has transparent margins; the translate puts such content where it belongs.
  async function fitToDocument(doc, layer, pixels) {
    if (pixels.width === doc.width && pixels.height === doc.height) return;
    const scaleX = doc.width / pixels.width;
    const scaleY = doc.height / pixels.height;
    const before = layer.boundsNoEffects;
    await layer.scale(scaleX * 100, scaleY * 100, constants.AnchorPosition.TOPLEFT);
    const dx = Math.round((before?.left ?? 0) * (scaleX - 1));
    const dy = Math.round((before?.top ?? 0) * (scaleY - 1));
    if (dx || dy) await layer.translate(dx, dy);
  }

  async function fillLayer(doc, layer, pixels) {
    await writePixels(doc, layer.id, pixels);
    await fitToDocument(doc, layer, pixels);
  }

  async function addResultLayer(doc, name, pixels) {
    const group = await retouchGroup(doc);
    // createPixelLayer is the newer name; createLayer (Photoshop 23+) makes a pixel layer too.
    const layer = doc.createPixelLayer ? await doc.createPixelLayer({ name }) : await doc.createLayer({ name });
    await placeAtTopOf(group, layer);
    await fillLayer(doc, layer, pixels);
    return layer;
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

  // The slider: a drag is one modal scope with the document's history suspended, so the
  // live values make no history steps (Photoshop makes a step for every change made in
  // a modal scope otherwise: a drag would flood the History panel and push the user's
  // own steps out of it). The drag ends rolled back, leaving no step, or on release
  // (commitOpacity) as one step with the caller's name. `interactive` keeps Photoshop
  // from putting up its progress dialog while the drag lasts; while it lasts, other
  // changes to the document wait, which is why it also ends after DRAG_IDLE_MS without
  // a new value.
  function startDrag(docId, layerId) {
    const session = { docId, layerId, value: null, finish: null, stop: false, ended: false, wake: null, waiters: [] };

    // Resolves true after dragIdleMs without news, false as soon as there is some.
    const nextSignal = () => {
      if (session.value !== null || session.finish || session.stop) return Promise.resolve(false);
      return new Promise((resolve) => {
        const timer = setTimeout(() => resolve(true), dragIdleMs);
        session.wake = () => {
          clearTimeout(timer);
          resolve(false);
        };
      }).finally(() => {
        session.wake = null;
      });
    };

    const applyValues = async (doc) => {
      for (;;) {
        const idle = await nextSignal();
        if (session.value !== null) {
          const value = session.value;
          const waiting = session.waiters.splice(0);
          session.value = null;
          await setOpacity(doc.id, layerId, value);
          for (const waiter of waiting) waiter.resolve();
        }
        if (idle || session.finish || session.stop) return;
      }
    };

    const run = async (context) => {
      const doc = requireDocument(docId);
      const { hostControl } = context;
      const suspension = await hostControl.suspendHistory({ documentID: doc.id, name: DRAG_HISTORY_NAME });
      try {
        await applyValues(doc);
      } finally {
        await hostControl.resumeHistory(suspension, false);
      }
      const finish = session.finish;
      session.ended = true;
      if (!finish) return;
      await inOneStep(context, doc.id, finish.historyName, () => setOpacity(doc.id, layerId, finish.percent));
    };

    const settle = (error) => {
      for (const waiter of session.waiters.splice(0)) (error ? waiter.reject(error) : waiter.resolve());
    };
    session.done = modal(DRAG_HISTORY_NAME, run, { interactive: true }).finally(() => {
      session.ended = true;
      if (drag === session) drag = null;
    });
    session.done.then(() => settle(), settle);

    session.update = (percent) => {
      session.value = percent;
      const applied = new Promise((resolve, reject) => session.waiters.push({ resolve, reject }));
      session.wake?.();
      return applied;
    };
    // With `finish` ({percent, historyName}) the drag ends as one step; without, rolled back.
    session.end = (finish) => {
      if (finish) session.finish = finish;
      else session.stop = true;
      session.wake?.();
      return session.done;
    };
    return session;
  }

  function dragOf(docId, layerId) {
    return drag && !drag.ended && sameId(drag.docId, docId) && sameId(drag.layerId, layerId) ? drag : null;
  }

  return {
    async activeDocument() {
      if (!list(app.documents).length) return null;
      const doc = app.activeDocument;
      return doc ? documentInfo(doc) : null;
    },

    async documents() {
      return list(app.documents).map(documentInfo);
    },

    readPixels(docId) {
      return modal('ML Retouch: read pixels', async () => {
        const doc = requireDocument(docId);
        const depth = hostDepth(doc);
        const { imageData, sourceBounds } = await imaging.getPixels({
          documentID: doc.id,
          componentSize: depth,
          applyAlpha: false,
          colorSpace: 'RGB',
        });
        try {
          const data = await imageData.getData({ chunky: true });
          // Copied before dispose, which may free the memory getData's array views.
          let samples = depth === 16 ? fromHost16(data) : new Uint8Array(data);
          let { width, height, components: channels } = imageData;
          if (!coversDocument(sourceBounds, width, height, doc.width, doc.height)) {
            const opaque = depth === 16 ? FULL_MAX_16 : 255;
            samples = padToDocument(samples, { width, height, channels }, sourceBounds, doc.width, doc.height, opaque);
            ({ width, height } = doc);
            channels = 4;
          }
          if (imageData.colorProfile) profiles.set(doc.id, imageData.colorProfile);
          return { bytes: depth === 16 ? asBytes(samples) : samples, width, height, channels, depth };
        } finally {
          imageData.dispose();
        }
      });
    },

    placeDraft(docId, { name, historyName, pixels }) {
      return modal(historyName, async (context) => {
        const doc = requireDocument(docId);
        const layer = await inOneStep(context, doc.id, historyName, () => addResultLayer(doc, name, pixels));
        return { layerId: layer.id, docId: doc.id, historyStateId: doc.activeHistoryState?.id, historyName };
      });
    },

    commitResult(docId, { name, historyName, pixels, draft }) {
      return modal(historyName, async (context) => {
        const doc = requireDocument(docId);
        // The draft's step is still the last: undo it, and the final takes its place.
        const undone = draft ? stepBackOver(doc, draft.historyStateId) : null;
        if (undone) {
          try {
            const layer = await inOneStep(context, doc.id, historyName, () => addResultLayer(doc, name, pixels));
            return layer.id;
          } catch (error) {
            doc.activeHistoryState = undone; // redo: the draft stays as it was
            throw error;
          }
        }
        const layer = draft ? findLayer(doc.layers, draft.layerId) : null;
        if (!layer) {
          const added = await inOneStep(context, doc.id, historyName, () => addResultLayer(doc, name, pixels));
          return added.id;
        }
        // The user has made steps since the draft: the final is a step of its own.
        await inOneStep(context, doc.id, `${historyName} (final)`, async () => {
          await fillLayer(doc, layer, pixels);
          if (layer.name !== name) layer.name = name;
        });
        return layer.id;
      });
    },

    discardDraft(docId, draft) {
      const historyName = `${draft.historyName ?? GROUP_NAME} (removed)`;
      return modal(historyName, async (context) => {
        const doc = openDocument(docId);
        if (!doc || stepBackOver(doc, draft.historyStateId)) return;
        const layer = findLayer(doc.layers, draft.layerId);
        if (layer) await inOneStep(context, doc.id, historyName, () => layer.delete());
      });
    },

    replaceResult(docId, layerId, { historyName, pixels }) {
      return modal(historyName, async (context) => {
        const doc = requireDocument(docId);
        const layer = requireLayer(doc, layerId);
        await inOneStep(context, doc.id, historyName, async () => {
          await fillLayer(doc, layer, pixels);
          await setOpacity(doc.id, layer.id, 100);
        });
      });
    },

    async setLayerOpacity(docId, layerId, percent) {
      let current = dragOf(docId, layerId);
      if (!current) {
        if (drag && !drag.ended) drag.end(null).catch(() => {});
        current = drag = startDrag(docId, layerId);
      }
      return current.update(percent);
    },

    commitOpacity(docId, layerId, percent, historyName) {
      const current = dragOf(docId, layerId);
      if (current) return current.end({ percent, historyName });
      return modal(historyName, async (context) => {
        const doc = requireDocument(docId);
        const layer = requireLayer(doc, layerId);
        await inOneStep(context, doc.id, historyName, () => setOpacity(doc.id, layer.id, percent));
      });
    },

    // UXP shows JPEG in an <img> from a data: URL (the imaging docs' own advice).
    async showThumbnail(jpeg) {
      const image = page?.getElementById('thumbnail');
      if (!image) return;
      if (jpeg && jpeg.length) image.src = dataUrl(jpeg);
      else image.removeAttribute('src');
    },

    // What a notification's descriptor holds is not documented event by event, so the
    // document is read from the DOM after it (the one in front, or the descriptor's
    // documentID when it has one), and closes are found by which documents are gone.
    watchDocuments(listener) {
      const known = new Set(list(app.documents).map((doc) => doc.id));
      const call = (name, value) => {
        if (typeof listener[name] !== 'function') return;
        Promise.resolve()
          .then(() => listener[name](value))
          .catch(() => {});
      };
      const onClose = (descriptor) => {
        const open = new Set(list(app.documents).map((doc) => doc.id));
        const closed = [...known].filter((id) => !open.has(id) || sameId(id, descriptor?.documentID));
        for (const id of closed) {
          known.delete(id);
          call('closed', id);
        }
      };
      const handler = (event, descriptor) => {
        if (event === 'close') return onClose(descriptor);
        if (event === 'select' && descriptor?._target?.[0]?._ref !== 'document') return;
        const byId = event === 'historyStateChanged' ? openDocument(descriptor?.documentID) : null;
        const doc = byId ?? (list(app.documents).length ? app.activeDocument : null);
        if (!doc) return;
        const info = documentInfo(doc);
        if (!known.has(doc.id)) {
          known.add(doc.id);
          call('opened', info);
        } else if (event === 'select') call('selected', info);
        else if (event === 'historyStateChanged') call('historyChanged', info);
      };
      Promise.resolve(action.addNotificationListener(NOTIFICATIONS, handler)).catch(() => {});
      return () => {
        Promise.resolve(action.removeNotificationListener(NOTIFICATIONS, handler)).catch(() => {});
      };
    },
  };
}

// The token lives in the plugin's data folder (kept across Photoshop updates, removed
// with the plugin); the manifest's "localFileSystem": "plugin" permission covers it.
function createTokenStore(deps = hostModules()) {
  const files = deps.uxp.storage.localFileSystem;
  return {
    async load() {
      const folder = await files.getDataFolder();
      let entry;
      try {
        entry = await folder.getEntry(TOKEN_FILE);
      } catch {
        return ''; // never saved
      }
      return String(await entry.read()).trim();
    },
    async save(token) {
      const folder = await files.getDataFolder();
      const file = await folder.createFile(TOKEN_FILE, { overwrite: true });
      await file.write(String(token).trim());
    },
  };
}

module.exports = { createPhotoshopAdapter, createTokenStore, fromHost16, toHost16, GROUP_NAME };

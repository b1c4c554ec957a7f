// The adapter contract (adapter-contract.js) on Photoshop's UXP APIs (apiVersion 2,
// Photoshop 24.4 or later: host-support.js says why), and the token store in the
// plugin's data folder. The only module that requires 'photoshop' or 'uxp'; both arrive
// through `deps`, so tests pass fakes and Node never loads the real ones.
//
// Every document change runs inside core.executeAsModal (one at a time, tried again
// while another plugin or a dialog holds Photoshop: modal.js) and inside one
// suspendHistory/resumeHistory pair, which makes it exactly one history step or, when
// the change throws, rolls it back. Its helpers: opacity-drag.js (the slider's drag),
// pixels.js (16-bit range, padding, the draft's resize), host-support.js (version and
// document checks), layer-stack.js (the layer tree and its hash), document-watch.js
// (Photoshop's notifications as document events).
'use strict';

const { dataUrl } = require('./ui-parts.js');
const { createModalRunner, inOneStep } = require('./modal.js');
const { startOpacityDrag } = require('./opacity-drag.js');
const { hostProblem, takesModalTimeOut, documentProblem, plainProfileName } = require('./host-support.js');
const { asBytes, hostSamples, padToDocument, coversDocument, resizePixels } = require('./pixels.js');
const { list, sameId, findLayer, documentInfo, stepBackOver } = require('./layer-stack.js');
const { watchDocuments } = require('./document-watch.js');

const GROUP_NAME = 'ML Retouch';
const TOKEN_FILE = 'token.txt';

function hostModules() {
  return { photoshop: require('photoshop'), uxp: require('uxp') };
}

function createPhotoshopAdapter(deps = hostModules()) {
  const { app, action, core, imaging, constants } = deps.photoshop;
  const page = deps.document ?? globalThis.document;
  const modal = createModalRunner(core, { takesTimeOut: takesModalTimeOut(deps.uxp) });
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

  // 8 and 16 bit (exact, 16-bit in full range); other depths and modes are refused
  // before any pixels are read (host-support.js).
  function hostDepth(doc) {
    return doc.bitsPerChannel === constants.BitsPerChannelType.EIGHT ? 8 : 16;
  }

  function requireSupported(doc) {
    const problem = documentProblem(doc, constants);
    if (problem) throw new Error(problem);
  }

  function isGroup(layer) {
    return layer.kind === constants.LayerKind.GROUP;
  }

  // batchPlay resolves (it does not reject) when Photoshop refuses a command: a locked
  // or deleted layer answers {_obj: 'error', message, result}, which is an error here.
  async function setOpacity(docId, layerId, percent) {
    const value = Math.min(100, Math.max(0, Number(percent)));
    const results = await action.batchPlay(
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
    const failed = list(results).find((result) => result?._obj === 'error');
    if (failed) throw new Error(failed.message || `Photoshop refused the opacity change (${failed.result}).`);
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
    const depth = hostDepth(doc);
    const data = hostSamples(pixels, depth);
    const profile = plainProfileName(profiles.get(doc.id));
    const imageData = await imaging.createImageDataFromBuffer(data, {
      width: pixels.width,
      height: pixels.height,
      components: pixels.channels,
      chunky: true,
      colorSpace: 'RGB',
      ...(depth === 16 ? { fullRange: true } : {}),
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

  // Pixels smaller than the document (a draft, 1/8 of its size say) are resized to it
  // here and written whole. Layer.scale and Layer.translate are Photoshop's Transform
  // and Move commands: with a selection active they act on the selected pixels only,
  // and they leave the selection changed. A full-size putPixels at (0, 0), in pixels,
  // touches neither the selection nor depends on the document's resolution.
  async function fillLayer(doc, layer, pixels) {
    await writePixels(doc, layer.id, resizePixels(pixels, doc.width, doc.height));
  }

  async function addResultLayer(doc, name, pixels) {
    const group = await retouchGroup(doc);
    // createPixelLayer (24.1) is there on every Photoshop the panel runs on (24.4+).
    const layer = await doc.createPixelLayer({ name });
    await placeAtTopOf(group, layer);
    await fillLayer(doc, layer, pixels);
    return layer;
  }

  function startDrag(docId, layerId) {
    return startOpacityDrag({ docId, layerId, modal, requireDocument, setOpacity });
  }

  function dragOf(docId, layerId) {
    return drag && !drag.ended && sameId(drag.docId, docId) && sameId(drag.layerId, layerId) ? drag : null;
  }

  return {
    async activeDocument() {
      if (!list(app.documents).length) return null;
      const doc = app.activeDocument;
      return doc ? documentInfo(doc, constants) : null;
    },

    async documents() {
      return list(app.documents).map((doc) => documentInfo(doc, constants));
    },

    // The composite, read once: 16-bit in full range straight from getData, so the bytes
    // handed on are getData's own array (no copy) unless the composite was trimmed.
    // `release` frees the image data once the caller is done with the bytes.
    readPixels(docId) {
      return modal('ML Retouch: read pixels', async () => {
        const doc = requireDocument(docId);
        requireSupported(doc);
        const depth = hostDepth(doc);
        const { imageData, sourceBounds } = await imaging.getPixels({
          documentID: doc.id,
          componentSize: depth,
          applyAlpha: false,
          colorSpace: 'RGB',
        });
        let keep = false;
        try {
          let samples = await imageData.getData({ chunky: true, ...(depth === 16 ? { fullRange: true } : {}) });
          let { width, height, components: channels } = imageData;
          if (imageData.colorProfile) profiles.set(doc.id, imageData.colorProfile);
          if (!coversDocument(sourceBounds, width, height, doc.width, doc.height)) {
            const opaque = depth === 16 ? 65535 : 255;
            samples = padToDocument(samples, { width, height, channels }, sourceBounds, doc.width, doc.height, opaque);
            ({ width, height } = doc);
            channels = 4;
          } else keep = true;
          const bytes = asBytes(samples);
          const release = keep ? () => imageData.dispose() : () => {};
          return { bytes, width, height, channels, depth, release };
        } finally {
          if (!keep) imageData.dispose();
        }
      });
    },

    // A draft is only worth placing at once: while Photoshop is modal it is skipped
    // (not tried again), and the final comes in its own time.
    placeDraft(docId, { name, historyName, pixels }) {
      return modal(
        historyName,
        async (context) => {
          const doc = requireDocument(docId);
          const layer = await inOneStep(context, doc.id, historyName, () => addResultLayer(doc, name, pixels));
          return { layerId: layer.id, docId: doc.id, historyStateId: doc.activeHistoryState?.id, historyName };
        },
        { retry: false },
      );
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
      image.className = jpeg && jpeg.length ? '' : 'empty';
    },

    // Photoshop's notifications as document events (document-watch.js).
    watchDocuments(listener) {
      return watchDocuments({ app, action, core, constants }, listener);
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

module.exports = { createPhotoshopAdapter, createTokenStore, hostModules, hostProblem, GROUP_NAME };

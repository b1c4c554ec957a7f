// An in-memory Photoshop for the adapter's tests: documents hold a tree of plain layer
// records, every change must happen inside executeAsModal, and history states are
// snapshots of the tree, so undo, redo branches and suspend/resume behave as in
// Photoshop. It also behaves as Adobe's UXP and Photoshop documentation says where real
// Photoshop differs from a happy path:
// - APIs are absent below the version they appeared in (`version`, uxp.host.version):
//   imaging 24.4 (imaging_beta in 24.2–24.3), createPixelLayer 24.1, core's
//   notifications and userIdle 23.3; executeAsModal's `timeOut` (seconds) from 25.10.
// - executeAsModal while another plugin or a dialog is modal (`host.otherModal`) rejects
//   with number 9, at once before 25.10, after its timeOut from 25.10.
// - the user's "Cancel Plugin Command" (`host.cancelModal()`): isCancelled, onCancel, and
//   every later call in that scope throws.
// - batchPlay resolves with {_obj: 'error'} for a command Photoshop refuses (a locked or
//   deleted layer); it does not reject.
// - Layer.scale and Layer.translate are Transform and Move: with a selection they act on
//   the selected pixels only and take the selection along.
// - 16-bit data is 0..32768 unless `fullRange` is asked for; 32-bit documents report
//   their profile with a " (Linear RGB Profile)" suffix, which createImageDataFromBuffer
//   refuses; documents that are not RGB fail getPixels with an undocumented error.
'use strict';

const assert = require('node:assert/strict');
const constants = {
  BitsPerChannelType: { ONE: 'bitDepth1', EIGHT: 'bitDepth8', SIXTEEN: 'bitDepth16', THIRTYTWO: 'bitDepth32' },
  ElementPlacement: {
    PLACEAFTER: 'placeAfter',
    PLACEATBEGINNING: 'placeAtBeginning',
    PLACEATEND: 'placeAtEnd',
    PLACEBEFORE: 'placeBefore',
    PLACEINSIDE: 'placeInside',
  },
  AnchorPosition: { TOPLEFT: 'topLeft', MIDDLECENTER: 'middleCenter' },
  LayerKind: { GROUP: 'group', NORMAL: 'pixel' },
  DocumentMode: {
    BITMAP: 'bitmapMode',
    CMYK: 'CMYKColorMode',
    DUOTONE: 'duotoneMode',
    GRAYSCALE: 'grayscaleMode',
    INDEXEDCOLOR: 'indexedColorMode',
    LAB: 'labColorMode',
    MULTICHANNEL: 'multichannelMode',
    RGB: 'RGBColorMode',
  },
};

const LINEAR_SUFFIX = ' (Linear RGB Profile)';

function versionAtLeast(version, major, minor) {
  const [a, b] = version.split('.').map(Number);
  return a > major || (a === major && b >= minor);
}

// {number: 9} is how Adobe's own samples tell a modal conflict from other errors.
function modalBusyError(version) {
  const message = versionAtLeast(version, 25, 10)
    ? 'Plugin: com.other.plugin is running a modal command'
    : 'host is in a modal state';
  return Object.assign(new Error(message), { number: 9 });
}

const clone = (value) => structuredClone(value);
const pixelNode = (id, name) => ({ id, name, kind: 'pixel', visible: true, opacity: 100, blendMode: 'normal' });

function createFakeHost({ version = '26.0.0' } = {}) {
  let nextId = 100;
  const host = {
    version,
    otherModal: false, // a dialog or another plugin holds Photoshop
    refusedModal: 0,
    modalOptions: [],
    getPixelsCalls: 0,
    currentScope: null,
    idleListeners: [],
    idleSeconds: null,
    documents: [],
    active: null,
    modalDepth: 0,
    modalCommands: [],
    history: [], // ['suspend', name] | ['resume', name, commit] | ['activate', stateId]
    unsuspendedChanges: [],
    autoResumed: [],
    listeners: [],
    batchPlayed: [],
    failPutPixels: false,
    disposed: 0,
    newId: () => nextId++,
  };

  const requireModal = () => {
    if (host.modalDepth === 0) throw new Error('document changed outside a modal scope');
    if (host.currentScope?.isCancelled) throw new Error('the modal scope was cancelled by the user');
  };

  class FakeDocument {
    constructor({ name, width, height, bits = constants.BitsPerChannelType.EIGHT, composite, mode, resolution = 72 }) {
      this.id = host.newId();
      this.mode = mode ?? constants.DocumentMode.RGB;
      this.resolution = resolution;
      this.selection = null; // {left, top, right, bottom} of the user's selection, or null
      this.name = name;
      this.width = width;
      this.height = height;
      this.bitsPerChannel = bits;
      this.composite = composite;
      const background = pixelNode(host.newId(), 'Background');
      this.tree = [background];
      this.activeLayerId = background.id;
      this.states = [{ id: host.newId(), name: 'Open', tree: clone(this.tree) }];
      this.activeIndex = 0;
      this.suspension = null;
    }

    get layers() {
      return this.tree.map((node) => layerView(this, node.id));
    }

    get historyStates() {
      return this.states.map((state) => ({ id: state.id, name: state.name, snapshot: false }));
    }

    get activeHistoryState() {
      const state = this.states[this.activeIndex];
      return { id: state.id, name: state.name, snapshot: false };
    }

    set activeHistoryState(target) {
      requireModal();
      const index = this.states.findIndex((state) => state.id === target.id);
      if (index < 0) throw new Error('no such history state');
      this.activeIndex = index;
      this.tree = clone(this.states[index].tree);
      host.history.push(['activate', target.id]);
    }

    // Photoshop's rule: a change inside a suspension joins it; any other change is a step.
    changed(what) {
      requireModal();
      if (this.suspension) this.suspension.dirty = true;
      else {
        host.unsuspendedChanges.push(what);
        this.pushState(what);
      }
    }

    pushState(name) {
      this.states.splice(this.activeIndex + 1);
      this.states.push({ id: host.newId(), name, tree: clone(this.tree) });
      this.activeIndex = this.states.length - 1;
    }

    // What a user's own edit (a brush stroke) does: change pixels, add a step.
    userStep(name) {
      const node = this.tree[this.tree.length - 1];
      node.painted = (node.painted ?? 0) + 1;
      this.pushState(name);
    }

    find(id, nodes = this.tree, parent = null) {
      for (let index = 0; index < nodes.length; index++) {
        const node = nodes[index];
        if (node.id === id) return { node, siblings: nodes, index, parent };
        if (node.children) {
          const inner = this.find(id, node.children, node);
          if (inner) return inner;
        }
      }
      return null;
    }

    node(id) {
      const found = this.find(id);
      if (!found) throw new Error(`layer ${id} does not exist`);
      return found.node;
    }

    insertAboveActive(node) {
      const active = this.find(this.activeLayerId);
      const siblings = active ? active.siblings : this.tree;
      siblings.splice(active ? active.index : 0, 0, node);
      this.activeLayerId = node.id;
    }

    async createPixelLayer({ name }) {
      requireModal();
      const node = pixelNode(host.newId(), name);
      this.insertAboveActive(node);
      this.changed('New Layer');
      return layerView(this, node.id);
    }

    async createLayerGroup({ name }) {
      requireModal();
      const node = { ...pixelNode(host.newId(), name), kind: 'group', blendMode: 'passThrough', children: [] };
      this.insertAboveActive(node);
      this.changed('New Group');
      return layerView(this, node.id);
    }

    // createLayer(kind?, options?) (23.0): the kind first; options where the kind belongs
    // is a kind Photoshop does not know.
    async createLayer(kind = constants.LayerKind.NORMAL, options = {}) {
      requireModal();
      if (kind === constants.LayerKind.GROUP) return this.createLayerGroup(options);
      if (kind !== constants.LayerKind.NORMAL) throw new Error('Invalid layer kind');
      const node = pixelNode(host.newId(), options.name ?? 'Layer 1');
      this.insertAboveActive(node);
      this.changed('New Layer');
      return layerView(this, node.id);
    }
  }
  if (!versionAtLeast(version, 24, 1)) FakeDocument.prototype.createPixelLayer = undefined;

  function layerView(doc, id) {
    const node = () => doc.node(id);
    return {
      id,
      get name() {
        return node().name;
      },
      set name(value) {
        node().name = value;
        doc.changed('Rename Layer');
      },
      get kind() {
        return node().kind;
      },
      get visible() {
        return node().visible;
      },
      get opacity() {
        return node().opacity;
      },
      get blendMode() {
        return node().blendMode;
      },
      get layers() {
        const children = node().children;
        return children ? children.map((child) => layerView(doc, child.id)) : undefined;
      },
      get boundsNoEffects() {
        const { pixels } = node();
        return { left: 0, top: 0, right: pixels?.width ?? 0, bottom: pixels?.height ?? 0 };
      },
      async move(relative, placement) {
        requireModal();
        const moving = doc.find(id);
        moving.siblings.splice(moving.index, 1);
        const target = doc.find(relative.id);
        if (placement === constants.ElementPlacement.PLACEBEFORE) target.siblings.splice(target.index, 0, moving.node);
        else if (placement === constants.ElementPlacement.PLACEINSIDE) {
          if (!target.node.children) throw new Error('not a group');
          target.node.children.unshift(moving.node);
        } else throw new Error(`placement ${placement} not modelled`);
        doc.changed('Move');
      },
      async delete() {
        requireModal();
        const found = doc.find(id);
        found.siblings.splice(found.index, 1);
        doc.changed('Delete Layer');
      },
      // Transform and Move: with a selection, only the selected pixels move, and the
      // selection goes with them.
      async scale(width, height, anchor) {
        requireModal();
        const selection = doc.selection ? { ...doc.selection } : null;
        node().scaled = { width, height, anchor, selection };
        if (doc.selection) {
          const { left, top } = doc.selection;
          doc.selection = {
            left,
            top,
            right: left + ((doc.selection.right - left) * width) / 100,
            bottom: top + ((doc.selection.bottom - top) * height) / 100,
          };
        }
        doc.changed('Free Transform');
      },
      async translate(dx, dy) {
        requireModal();
        node().moved = { dx, dy, selection: doc.selection ? { ...doc.selection } : null };
        if (doc.selection) {
          const { left, top, right, bottom } = doc.selection;
          doc.selection = { left: left + dx, top: top + dy, right: right + dx, bottom: bottom + dy };
        }
        doc.changed('Move');
      },
    };
  }

  function documentById(id) {
    const doc = host.documents.find((candidate) => candidate.id === id);
    if (!doc) throw new Error(`document ${id} is not open`);
    return doc;
  }

  // 16-bit samples are kept in Photoshop's 0..32768; fullRange reads and writes 0..65535.
  const toFull = (v) => Math.round((Math.min(v, 32768) * 65535) / 32768);
  const toHost = (v) => Math.round((v * 32768) / 65535);

  function imageData({ data, width, height, components, colorProfile = 'sRGB IEC61966-2.1' }) {
    return {
      width,
      height,
      components,
      componentSize: data instanceof Uint16Array ? 16 : data instanceof Float32Array ? 32 : 8,
      colorProfile,
      data,
      async getData({ fullRange = false } = {}) {
        return data instanceof Uint16Array && fullRange ? data.map(toFull) : data;
      },
      dispose() {
        host.disposed += 1;
      },
    };
  }

  // From 25.10 Photoshop waits up to `timeOut` seconds for the other modal scope to end
  // (looked at every 10 ms here; tests run it on node's mock timers).
  const waitForModal = (seconds) =>
    new Promise((resolve) => {
      const started = Date.now();
      const poll = () => {
        if (!host.otherModal || Date.now() - started >= seconds * 1000) resolve();
        else setTimeout(poll, 10);
      };
      poll();
    });

  const takesTimeOut = versionAtLeast(version, 25, 10);
  const core = {
    async executeAsModal(fn, options) {
      if (host.modalDepth > 0) throw new Error('another modal scope is active');
      assert.equal(typeof options.commandName, 'string');
      host.modalOptions.push(options);
      if (host.otherModal && takesTimeOut) await waitForModal(options.timeOut ?? 1);
      if (host.otherModal) {
        host.refusedModal += 1;
        throw modalBusyError(version);
      }
      host.modalCommands.push(options.commandName);
      host.modalDepth += 1;
      const context = {
        isCancelled: false,
        onCancel: null,
        hostControl: {
          async suspendHistory({ documentID, name }) {
            requireModal();
            const doc = documentById(documentID);
            if (doc.suspension) throw new Error('history is already suspended');
            doc.suspension = { id: host.newId(), name, dirty: false, tree: clone(doc.tree) };
            host.history.push(['suspend', name]);
            return doc.suspension.id;
          },
          async resumeHistory(suspensionId, commit = true) {
            // The scope's own suspensions are resumed (rolled back) after a cancel.
            if (host.modalDepth === 0) throw new Error('document changed outside a modal scope');
            const doc = host.documents.find((candidate) => candidate.suspension?.id === suspensionId);
            if (!doc) throw new Error('no such suspension');
            const { name, dirty, tree } = doc.suspension;
            doc.suspension = null;
            const keep = commit && !context.isCancelled;
            host.history.push(['resume', name, keep]);
            if (!keep) doc.tree = tree;
            else if (dirty) doc.pushState(name);
          },
        },
      };
      host.currentScope = context;
      let failed = false;
      try {
        return await fn(context, options.descriptor);
      } catch (error) {
        failed = true;
        throw error;
      } finally {
        // Photoshop resumes forgotten suspensions itself; the adapter never should need it.
        for (const doc of host.documents) {
          if (!doc.suspension) continue;
          host.autoResumed.push(doc.suspension.name);
          if (failed || context.isCancelled) doc.tree = doc.suspension.tree;
          else if (doc.suspension.dirty) doc.pushState(doc.suspension.name);
          doc.suspension = null;
        }
        host.currentScope = null;
        host.modalDepth -= 1;
      }
    },
  };
  if (versionAtLeast(version, 23, 3)) {
    core.addNotificationListener = async (group, events, listener) => {
      assert.equal(group, 'UI');
      host.idleListeners.push({ events, listener });
    };
    core.removeNotificationListener = async (group, events, listener) => {
      host.idleListeners = host.idleListeners.filter((entry) => entry.listener !== listener);
    };
    core.setUserIdleTime = async (seconds) => {
      host.idleSeconds = seconds;
    };
  }

  const imaging = {
    async getPixels({ documentID, componentSize }) {
      host.getPixelsCalls += 1;
      const doc = documentById(documentID);
      if (doc.mode !== constants.DocumentMode.RGB) throw new Error('Error: the operation failed');
      const { data, width, height, components, bounds } = doc.composite;
      const thirtyTwo = doc.bitsPerChannel === constants.BitsPerChannelType.THIRTYTWO;
      if (!thirtyTwo) assert.equal(componentSize, data instanceof Uint16Array ? 16 : 8);
      const colorProfile = thirtyTwo ? `sRGB IEC61966-2.1${LINEAR_SUFFIX}` : undefined;
      return {
        imageData: imageData({ data: data.slice(), width, height, components, colorProfile }),
        sourceBounds: bounds ?? { left: 0, top: 0, right: width, bottom: height },
        level: 0,
      };
    },
    async createImageDataFromBuffer(data, { width, height, components, colorSpace, colorProfile, fullRange }) {
      assert.equal(colorSpace, 'RGB');
      assert.equal(data.length, width * height * components, 'buffer length must match its shape');
      if (colorProfile?.endsWith(LINEAR_SUFFIX)) throw new Error(`Unknown color profile: ${colorProfile}`);
      const stored = data instanceof Uint16Array && fullRange ? data.map(toHost) : data.slice();
      return imageData({ data: stored, width, height, components });
    },
    async putPixels({ documentID, layerID, imageData: source, replace, targetBounds }) {
      requireModal();
      if (host.failPutPixels) throw new Error('putPixels failed');
      const doc = documentById(documentID);
      const node = doc.node(layerID);
      assert.equal(node.kind, 'pixel');
      assert.equal(replace, true);
      node.pixels = {
        width: source.width,
        height: source.height,
        components: source.components,
        componentSize: source.componentSize,
        data: Array.from(source.data),
        at: targetBounds,
      };
      delete node.scaled;
      delete node.moved;
      doc.changed('Put Pixels');
    },
  };

  const photoshop = {
    constants,
    app: {
      get documents() {
        return host.documents;
      },
      get activeDocument() {
        return host.active;
      },
    },
    core,
    ...(versionAtLeast(version, 24, 4) ? { imaging } : versionAtLeast(version, 24, 2) ? { imaging_beta: imaging } : {}),
    action: {
      // A command Photoshop refuses resolves as {_obj: 'error', message, result}.
      async batchPlay(commands) {
        const results = [];
        for (const command of commands) {
          host.batchPlayed.push(command);
          const [layerRef, docRef] = command._target;
          if (command._obj !== 'set' || layerRef._ref !== 'layer' || docRef._ref !== 'document') {
            throw new Error('command not modelled');
          }
          requireModal();
          const doc = documentById(docRef._id);
          assert.equal(command.to.opacity._unit, 'percentUnit');
          const found = doc.find(layerRef._id);
          if (!found || found.node.locked) {
            const message = found ? 'The layer is locked.' : 'The object “layer” is not currently available.';
            results.push({ _obj: 'error', message, result: -25920 });
            break; // continueOnError is false by default
          }
          found.node.opacity = command.to.opacity._value;
          doc.changed('Layer Opacity');
          results.push({});
        }
        return results;
      },
      async addNotificationListener(events, listener) {
        host.listeners.push({ events, listener });
      },
      async removeNotificationListener(events, listener) {
        host.listeners = host.listeners.filter((entry) => !(entry.listener === listener && entry.events === events));
      },
    },
  };

  // The user presses Esc / "Cancel Plugin Command" while a scope is open.
  host.cancelModal = () => {
    const scope = host.currentScope;
    if (!scope) return false;
    scope.isCancelled = true;
    scope.onCancel?.();
    return true;
  };
  host.idle = (descriptor = {}) => {
    for (const entry of host.idleListeners) if (entry.events.includes('userIdle')) entry.listener('userIdle', descriptor);
  };
  host.uxp = { host: { name: 'photoshop', version } };
  host.open = (options) => {
    const doc = new FakeDocument(options);
    host.documents.push(doc);
    host.active = doc;
    return doc;
  };
  host.close = (doc) => {
    host.documents = host.documents.filter((candidate) => candidate !== doc);
    if (host.active === doc) host.active = host.documents[0] ?? null;
  };
  host.emit = (event, descriptor) => {
    for (const entry of host.listeners) if (entry.events.includes(event)) entry.listener(event, descriptor);
  };
  host.photoshop = photoshop;
  return host;
}

function createFakeFolder() {
  const files = new Map();
  const file = (name) => ({
    async read() {
      return files.get(name);
    },
    async write(text) {
      files.set(name, text);
    },
  });
  return {
    files,
    async getEntry(name) {
      if (!files.has(name)) throw new Error(`${name} not found`);
      return file(name);
    },
    async createFile(name, { overwrite = false } = {}) {
      if (files.has(name) && !overwrite) throw new Error(`${name} exists`);
      files.set(name, files.get(name) ?? '');
      return file(name);
    },
  };
}

function fakeUxp(folder = createFakeFolder(), version = '26.0.0') {
  return {
    host: { name: 'photoshop', version },
    storage: { localFileSystem: { getDataFolder: async () => folder } },
  };
}

module.exports = { constants, clone, pixelNode, createFakeHost, createFakeFolder, fakeUxp, versionAtLeast };

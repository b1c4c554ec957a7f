// The browser panel's entry: a workspace with the sample portrait, the canvas adapter,
// and the same panel the Photoshop plugin mounts. A token in the page's fragment
// (#token=…, never sent to the server) is saved as if typed into the panel.
'use strict';

const { defineSpectrumWidgets } = require('./spectrum.js');
const { Workspace, createCanvasAdapter } = require('./canvas-adapter.js');
const { mountWorkspace } = require('./workspace.js');
const { mountPanel } = require('../ui.js');

const TOKEN_KEY = 'ml-retouch.token';

const tokenStore = {
  async load() {
    return localStorage.getItem(TOKEN_KEY) || '';
  },
  async save(token) {
    localStorage.setItem(TOKEN_KEY, token);
  },
};

function fragmentOptions() {
  const options = {};
  for (const pair of location.hash.replace(/^#/, '').split('&')) {
    const [key, value = ''] = pair.split('=');
    if (key) options[decodeURIComponent(key)] = decodeURIComponent(value);
  }
  return options;
}

async function start() {
  defineSpectrumWidgets();
  const options = fragmentOptions();
  if (options.token) {
    await tokenStore.save(options.token);
    window.history.replaceState(null, '', location.pathname + location.search); // off the address bar
  }
  const workspace = new Workspace();
  const byId = (id) => document.getElementById(id);
  mountWorkspace(workspace, {
    canvas: byId('canvas'),
    tabs: byId('tabs'),
    layers: byId('layers'),
    history: byId('history'),
    openFile: byId('open-file'),
  });
  try {
    const response = await fetch('sample-portrait.jpg');
    workspace.open('sample-portrait.jpg', await createImageBitmap(await response.blob()));
  } catch {
    workspace.record('open-failed', null, { name: 'sample-portrait.jpg' });
  }
  const mounted = await mountPanel({
    root: byId('panel'),
    adapter: createCanvasAdapter(workspace),
    tokenStore,
    baseUrl: location.origin,
    precompute: options.precompute !== 'off',
    rawBody: (bytes) => new Blob([bytes]),
  });
  window.mlRetouch = { workspace, ...mounted };
}

start();

// The Photoshop panel's entry (manifest.json → plugin/index.html → here). Everything
// Photoshop-specific is in photoshop-adapter.js; the panel itself is ui.js.
'use strict';
const { createPhotoshopAdapter, createTokenStore } = require('./photoshop-adapter.js');
const { mountPanel } = require('./ui.js');

mountPanel({
  root: document.getElementById('panel'),
  adapter: createPhotoshopAdapter(),
  tokenStore: createTokenStore(),
});

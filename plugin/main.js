// The Photoshop panel's entry (manifest.json → plugin/index.html → here). Everything
// Photoshop-specific is in photoshop-adapter.js; the panel itself is ui.js. A Photoshop
// older than the panel needs (host-support.js) gets a plain message instead.
'use strict';
const { createPhotoshopAdapter, createTokenStore, hostModules, hostProblem } = require('./photoshop-adapter.js');
const { mountPanel, showUnsupported } = require('./ui.js');

const root = document.getElementById('panel');
const host = hostModules();
const problem = hostProblem(host);
if (problem) showUnsupported(root, problem);
else mountPanel({ root, adapter: createPhotoshopAdapter(host), tokenStore: createTokenStore(host) });

'use strict';
// The panel's face (ui.js, main.js, panel.css, manifest.json) against UXP as documented:
// an in-memory DOM (fake-uxp-dom.js), the in-memory Photoshop, a fake sidecar.
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const Module = require('node:module');

const { createFakeDom } = require('./fake-uxp-dom.js');
const { createFakeHost, fakeUxp } = require('./fake-photoshop.js');
const { createPhotoshopAdapter } = require('../photoshop-adapter.js');
const { DEFAULT_BASE_URL } = require('../client.js');
const { MIN_VERSION } = require('../host-support.js');
const { mockClock } = require('./clock.js');

const ROOT = path.join(__dirname, '..', '..');
const TOKEN = 'the-right-token';

// The sidecar's two answers the connection needs; `probeFails` network errors first.
function fakeSidecar({ probeFails = 0 } = {}) {
  const seen = [];
  const fetch = async (url, init = {}) => {
    seen.push([init.method ?? 'GET', url]);
    if (url.endsWith('/v1/health')) return { ok: true, status: 200, json: async () => ({ version: '0.1.0' }) };
    if (init.method === 'HEAD') {
      if (probeFails > 0) {
        probeFails -= 1;
        throw new TypeError('Network request failed');
      }
      const status = init.headers?.Authorization === `Bearer ${TOKEN}` ? 404 : 401;
      return { ok: false, status, json: async () => ({}) };
    }
    return { ok: false, status: 404, json: async () => ({}) };
  };
  return { fetch, seen };
}

class QuietSocket {
  constructor() {
    QuietSocket.made.push(this);
  }
  send() {}
  close() {}
}
QuietSocket.made = [];

function mount({ platform = 'darwin', token = '', probeFails = 0, fetch } = {}) {
  const dom = createFakeDom({ platform });
  globalThis.document = dom.document;
  const root = dom.document.createElement('div');
  dom.body.appendChild(root);
  const host = createFakeHost();
  const saved = [];
  const tokenStore = {
    load: async () => token,
    save: async (value) => saved.push(value),
  };
  const sidecar = fakeSidecar({ probeFails });
  const { mountPanel } = require('../ui.js');
  const adapter = createPhotoshopAdapter({ photoshop: host.photoshop, uxp: fakeUxp(undefined, host.version), document: dom.document });
  return mountPanel({
    root,
    adapter,
    tokenStore,
    fetch: fetch ?? sidecar.fetch,
    WebSocket: QuietSocket,
    platform,
  }).then((mounted) => ({ ...mounted, dom, saved, sidecar }));
}

const statusText = (dom) => dom.document.getElementById('connection-status').textContent;

test('on macOS the token pasted into the password field is saved and used', async (t) => {
  const clock = mockClock(t);
  const m = await mount({ platform: 'darwin' });
  await clock.until(() => statusText(m.dom) === 'Enter the token.', 'the panel asks for the token');
  const field = m.dom.document.getElementById('token');
  assert.equal(field.type, 'password', 'shown as a password field');
  m.dom.type(field, TOKEN);
  assert.equal(field.type, 'password', 'a password field again once the focus leaves');
  assert.equal(field.value, '', 'UXP on macOS cannot read it now');
  m.dom.document.getElementById('save-token').click();
  await clock.until(() => statusText(m.dom).endsWith('connected'), 'connected with the typed token');
  assert.deepEqual(m.saved, [TOKEN]);
  m.stop();
});

test('with no sidecar the panel names the command that installs it on this platform', async (t) => {
  const clock = mockClock(t);
  const refused = async () => {
    throw new TypeError('Network request failed');
  };
  const hints = {
    darwin: ['`.venv/bin/retouch-sidecar service install`', 'scripts/run'],
    win32: ['`.venv\\Scripts\\retouch-sidecar service install`', 'scripts\\run.cmd'],
  };
  for (const [platform, [command, run]] of Object.entries(hints)) {
    const m = await mount({ platform, fetch: refused });
    await clock.until(() => statusText(m.dom) === 'Sidecar not running', 'the panel says the sidecar is not running');
    const hint = m.dom.document.getElementById('connection-hint').textContent;
    assert.ok(hint.includes(command), hint);
    assert.match(hint, /project folder/);
    assert.ok(hint.includes(run), hint);
    assert.match(hint, /Retrying/);
    m.stop();
  }
});

test('a network error while the token is checked keeps the panel retrying until it connects', async (t) => {
  const clock = mockClock(t);
  const failures = [];
  const onRejection = (reason) => failures.push(reason);
  process.on('unhandledRejection', onRejection);
  try {
    const m = await mount({ token: TOKEN, probeFails: 2 });
    await clock.until(() => statusText(m.dom).endsWith('connected'), 'connected after the probe failed twice');
    assert.equal(clock.now(), 3000, 'retried after 1 s, then after 2 s');
    const probes = m.sidecar.seen.filter(([method]) => method === 'HEAD');
    assert.equal(probes.length, 3);
    m.stop();
  } finally {
    process.off('unhandledRejection', onRejection);
  }
  assert.deepEqual(failures, [], 'nothing rejected unhandled');
});

test('a dropped event stream is shown with its reconnect, and the panel asks after its jobs on return', async (t) => {
  const clock = mockClock(t);
  const m = await mount({ token: TOKEN });
  await clock.until(() => statusText(m.dom) === 'Sidecar 0.1.0 connected', 'connected');
  const socket = QuietSocket.made.at(-1);
  socket.onopen({});
  let resyncs = 0;
  const resync = m.panel.resync.bind(m.panel);
  m.panel.resync = () => {
    resyncs += 1;
    return resync();
  };
  socket.onclose({ code: 1006 });
  assert.equal(statusText(m.dom), 'Sidecar not reachable');
  const hint = m.dom.document.getElementById('connection-hint').textContent;
  assert.match(hint, /^Reconnecting in 1 s… /, 'the stream’s first wait, 500 ms, in whole seconds');
  assert.equal(m.dom.document.getElementById('connection-light').className, 'light offline');
  await clock.advance(500);
  QuietSocket.made.at(-1).onopen({});
  assert.equal(statusText(m.dom), 'Sidecar connected');
  assert.equal(resyncs, 1);
  m.stop();
});

test('in a Photoshop older than 24.4 the panel says which version it needs, with no TypeError', () => {
  const dom = createFakeDom();
  const root = dom.document.createElement('div');
  root.id = 'panel';
  dom.body.appendChild(root);
  globalThis.document = dom.document;
  const host = createFakeHost({ version: '24.0.0' });
  const load = Module._load;
  Module._load = function loadHost(request, ...rest) {
    if (request === 'photoshop') return host.photoshop;
    if (request === 'uxp') return fakeUxp(undefined, '24.0.0');
    return load.call(this, request, ...rest);
  };
  try {
    delete require.cache[require.resolve('../main.js')];
    require('../main.js');
  } finally {
    Module._load = load;
  }
  const hint = dom.document.getElementById('connection-hint').textContent;
  assert.match(hint, /needs Photoshop 24\.4 or later; this is Photoshop 24\.0\.0/);
  assert.equal(dom.document.getElementById('apply-beauty'), null, 'no Apply buttons that could not work');
});

test('panel.css uses only CSS that UXP supports', () => {
  const css = fs.readFileSync(path.join(ROOT, 'plugin', 'panel.css'), 'utf8').replace(/\/\*[\s\S]*?\*\//g, '');
  const unsupported = [
    [/display\s*:\s*(inline-)?grid/, 'display: grid'],
    [/grid-template/, 'grid-template'],
    [/(^|[\s;{])(row-|column-)?gap\s*:/, 'gap'],
    [/object-fit/, 'object-fit'],
    [/:not\(/, ':not()'],
    [/text-transform/, 'text-transform'],
    [/(^|[\s;{])font\s*:/, 'the font shorthand'],
    [/transition|animation/, 'transitions and animations'],
  ];
  for (const [pattern, name] of unsupported) assert.doesNotMatch(css, pattern, `${name} is not supported in UXP`);
  const displays = [...css.matchAll(/display\s*:\s*([a-z-]+)/g)].map((match) => match[1]);
  for (const value of displays) assert.ok(['none', 'inline', 'block', 'inline-block', 'flex', 'inline-flex'].includes(value), value);
});

test('the manifest allows exactly the address the panel talks to, and the version it needs', () => {
  const manifest = JSON.parse(fs.readFileSync(path.join(ROOT, 'manifest.json'), 'utf8'));
  const domains = manifest.requiredPermissions.network.domains;
  const ws = DEFAULT_BASE_URL.replace(/^http/, 'ws');
  assert.deepEqual([...domains].sort(), [DEFAULT_BASE_URL, ws].sort());
  assert.equal(manifest.host.minVersion, `${MIN_VERSION.join('.')}.0`);
  const readme = fs.readFileSync(path.join(ROOT, 'README.md'), 'utf8');
  const photoshop = readme.slice(readme.indexOf('### In Photoshop'), readme.indexOf('## What the ops do'));
  assert.match(photoshop, new RegExp(`Photoshop ${MIN_VERSION.join('\\.')} or later`));
  assert.ok(photoshop.includes(DEFAULT_BASE_URL.replace('http://', '')), 'the README names the fixed address');
  assert.doesNotMatch(readme, /scripts\/run --port/, 'no advice to move the sidecar where the panel cannot reach it');
});

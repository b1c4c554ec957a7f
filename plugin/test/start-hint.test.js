'use strict';
// The command the panel names when the sidecar is not there, per platform.
const test = require('node:test');
const assert = require('node:assert/strict');
const { detectPlatform, installCommand, startHint, tokenCommand } = require('../start-hint.js');

const noOs = () => {
  throw new Error('no module named os');
};

test('in Photoshop the platform comes from UXP\'s os module', () => {
  assert.equal(detectPlatform({ load: () => ({ platform: () => 'darwin' }), navigator: undefined }), 'darwin');
  assert.equal(detectPlatform({ load: () => ({ platform: () => 'win32' }), navigator: undefined }), 'win32');
  assert.equal(detectPlatform({ load: () => ({ platform: () => 'win10' }), navigator: undefined }), 'win32');
});

test('in a browser, with no os module, it comes from navigator', () => {
  const cases = [
    [{ userAgentData: { platform: 'macOS' } }, 'darwin'],
    [{ userAgentData: { platform: 'Windows' } }, 'win32'],
    [{ platform: 'MacIntel' }, 'darwin'],
    [{ platform: 'Win32' }, 'win32'],
    [{ platform: 'Linux x86_64' }, 'linux'],
    [{ userAgent: 'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36' }, 'linux'],
    [{}, ''],
    [undefined, ''],
  ];
  for (const [navigator, expected] of cases) {
    assert.equal(detectPlatform({ load: noOs, navigator }), expected, JSON.stringify(navigator));
  }
  assert.equal(detectPlatform({ load: () => ({}), navigator: { platform: 'Win32' } }), 'win32', 'an os module without platform()');
});

test('each platform gets its own install and start commands, run in the project folder', () => {
  for (const platform of ['darwin', 'linux']) {
    const hint = startHint(platform);
    assert.ok(hint.includes('`.venv/bin/retouch-sidecar service install`'), hint);
    assert.ok(!hint.includes('Scripts'), hint);
    assert.match(hint, /project folder/);
    assert.match(hint, /scripts\/run/);
  }
  const windows = startHint('win32');
  assert.ok(windows.includes('`.venv\\Scripts\\retouch-sidecar service install`'), windows);
  assert.ok(!windows.includes('.venv/bin'), windows);
  assert.ok(windows.includes('scripts\\run.cmd'), windows);
  const unknown = installCommand('');
  assert.ok(unknown.includes('.venv/bin/retouch-sidecar service install') && unknown.includes('.venv\\Scripts\\'), unknown);
});

test('the token command is spelled for the platform', () => {
  assert.equal(tokenCommand('win32'), '.venv\\Scripts\\retouch-sidecar token');
  assert.equal(tokenCommand('darwin'), '.venv/bin/retouch-sidecar token');
  assert.equal(tokenCommand(''), '.venv/bin/retouch-sidecar token');
});

// What the panel tells the user to run when the sidecar is not there: the command that
// installs it as a login service on their platform, and scripts/run (scripts\run.cmd on
// Windows) to start it once.
// In Photoshop the platform comes from UXP's os module; in the browser panel (no os
// module there) from navigator.
'use strict';

const INSTALL = {
  posix: '.venv/bin/retouch-sidecar service install',
  win32: '.venv\\Scripts\\retouch-sidecar service install',
};
const RUN = { posix: 'scripts/run', win32: 'scripts\\run.cmd' };

function loadOs() {
  return require('os');
}

/** 'darwin', 'win32', 'linux', or '' when it cannot be told. */
function detectPlatform({ load = loadOs, navigator = globalThis.navigator } = {}) {
  try {
    const os = load();
    const name = os && typeof os.platform === 'function' ? String(os.platform() || '') : '';
    if (name) return name.startsWith('win') ? 'win32' : name; // UXP has said "win10"
  } catch {
    // no os module: a browser
  }
  const text = String(navigator?.userAgentData?.platform || navigator?.platform || navigator?.userAgent || '');
  if (/mac|darwin|iphone|ipad/i.test(text)) return 'darwin';
  if (/win/i.test(text)) return 'win32';
  if (/linux|x11|cros/i.test(text)) return 'linux';
  return '';
}

/** The command that installs the sidecar as a service here (both when unknown). */
function installCommand(platform) {
  if (platform === 'win32') return `\`${INSTALL.win32}\``;
  if (platform) return `\`${INSTALL.posix}\``;
  return `\`${INSTALL.posix}\` (Windows: \`${INSTALL.win32}\`)`;
}

/** One sentence: what to run, and where, so the sidecar is there now and after login. */
function startHint(platform) {
  const run = platform === 'win32' ? RUN.win32 : RUN.posix;
  return (
    `To have it start at login, run ${installCommand(platform)} in the project folder ` +
    `(or ${run} there to start it once now).`
  );
}

/** The command that prints the bearer token, in this platform's spelling. */
function tokenCommand(platform) {
  return platform === 'win32' ? '.venv\\Scripts\\retouch-sidecar token' : '.venv/bin/retouch-sidecar token';
}

module.exports = { detectPlatform, installCommand, startHint, tokenCommand };

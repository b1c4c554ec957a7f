// What the panel needs of Photoshop, checked before anything runs: the version (read
// from uxp.host.version) and the APIs themselves, so an older Photoshop gets a clear
// "needs Photoshop 24.4 or later" instead of a TypeError mid-Apply; and which documents
// it can work on (RGB, 8 or 16 bits per channel), said before any pixels are read.
//
// Why 24.4: photoshop.imaging (getPixels, putPixels, createImageDataFromBuffer) left
// prerelease in 24.4, which is also where its 16-bit `fullRange` option is documented;
// createPixelLayer arrived in 24.1; the interactive modal scope and the userIdle
// notification in 23.3. executeAsModal's `timeOut` (wait for another plugin's modal
// scope) needs 25.10 and is only used from there.
'use strict';

const MIN_VERSION = [24, 4];
const TIMEOUT_VERSION = [25, 10];

// "24.4.1" → [24, 4]; null when it has no major and minor number.
function parseVersion(text) {
  const [major, minor] = String(text ?? '')
    .split('.')
    .map((part) => Number.parseInt(part, 10));
  return Number.isInteger(major) && Number.isInteger(minor) ? [major, minor] : null;
}

function atLeast(version, [major, minor]) {
  return version !== null && (version[0] > major || (version[0] === major && version[1] >= minor));
}

const versionText = ([major, minor]) => `${major}.${minor}`;

/** The reason this Photoshop cannot run the panel, or null when it can. */
function hostProblem({ photoshop, uxp }) {
  const needs = `ML Retouch needs Photoshop ${versionText(MIN_VERSION)} or later`;
  const version = parseVersion(uxp?.host?.version);
  if (version && !atLeast(version, MIN_VERSION)) {
    return `${needs}; this is Photoshop ${uxp.host.version}. Update it from the Creative Cloud app.`;
  }
  const imaging = photoshop?.imaging;
  const missing = [
    ['imaging.getPixels', imaging?.getPixels],
    ['imaging.putPixels', imaging?.putPixels],
    ['imaging.createImageDataFromBuffer', imaging?.createImageDataFromBuffer],
    ['core.executeAsModal', photoshop?.core?.executeAsModal],
    ['action.batchPlay', photoshop?.action?.batchPlay],
  ]
    .filter(([, fn]) => typeof fn !== 'function')
    .map(([name]) => name);
  if (missing.length) return `${needs} (this one lacks ${missing.join(', ')}).`;
  return null;
}

/** True when executeAsModal takes `timeOut` (25.10 and later). */
function takesModalTimeOut(uxp) {
  return atLeast(parseVersion(uxp?.host?.version), TIMEOUT_VERSION);
}

const MODE_NAMES = {
  BITMAP: 'Bitmap',
  CMYK: 'CMYK',
  DUOTONE: 'Duotone',
  GRAYSCALE: 'Grayscale',
  INDEXEDCOLOR: 'Indexed Color',
  LAB: 'Lab',
  MULTICHANNEL: 'Multichannel',
};

/**
 * Why the panel cannot work on this document, or null. Compared with the constants'
 * members, whose values are not documented.
 */
function documentProblem(doc, constants) {
  const modes = constants.DocumentMode ?? {};
  if (doc.mode !== undefined && modes.RGB !== undefined && doc.mode !== modes.RGB) {
    const name = Object.keys(MODE_NAMES).find((key) => modes[key] === doc.mode);
    const mode = name ? MODE_NAMES[name] : 'not RGB';
    return `ML Retouch works on RGB documents; this one is ${mode}. Convert a copy with Image → Mode → RGB Color.`;
  }
  const bits = constants.BitsPerChannelType ?? {};
  if (doc.bitsPerChannel === bits.THIRTYTWO) {
    return 'ML Retouch works on 8- and 16-bit documents; this one is 32-bit (linear light). Convert a copy with Image → Mode → 16 Bits/Channel.';
  }
  if (doc.bitsPerChannel === bits.ONE) return 'ML Retouch cannot work on 1-bit documents.';
  return null;
}

// A profile name as Photoshop reports it for 32-bit documents carries this suffix, which
// must not be passed back.
function plainProfileName(name) {
  return typeof name === 'string' ? name.replace(/\s*\(Linear RGB Profile\)\s*$/, '') : name;
}

module.exports = {
  MIN_VERSION,
  hostProblem,
  takesModalTimeOut,
  documentProblem,
  plainProfileName,
  parseVersion,
};

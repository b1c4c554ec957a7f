// Small DOM helpers for ui.js. Only the DOM calls UXP's smaller DOM has for certain
// (createElement, setAttribute, appendChild, removeChild): no append/replaceChildren.
'use strict';

const PROPERTIES = new Set(['id', 'className', 'title', 'alt', 'src']);

/** createElement with attributes (or a few properties), `text`, and children. */
function el(tag, attributes = {}, children = []) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (name === 'text') node.textContent = value;
    else if (PROPERTIES.has(name)) node[name] = value;
    else node.setAttribute(name, value);
  }
  for (const child of children) {
    node.appendChild(typeof child === 'string' ? document.createTextNode(child) : child);
  }
  return node;
}

/** Replaces every child of `node` with `children`. */
function setChildren(node, children) {
  while (node.firstChild) node.removeChild(node.firstChild);
  for (const child of children) node.appendChild(child);
}

const BASE64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';

/** A data: URL for JPEG bytes (UXP has no object URLs for <img>). */
function dataUrl(bytes, type = 'image/jpeg') {
  let out = '';
  for (let i = 0; i < bytes.length; i += 3) {
    const a = bytes[i];
    const b = bytes[i + 1];
    const c = bytes[i + 2];
    out += BASE64[a >> 2] + BASE64[((a & 3) << 4) | ((b ?? 0) >> 4)];
    out += b === undefined ? '=' : BASE64[((b & 15) << 2) | ((c ?? 0) >> 6)];
    out += c === undefined ? '=' : BASE64[c & 63];
  }
  return `data:${type};base64,${out}`;
}

/** "about 12 s left" / "about 2 min left" / '' when unknown. */
function formatEta(seconds) {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds)) return '';
  if (seconds < 1) return 'less than a second left';
  if (seconds < 90) return `about ${Math.round(seconds)} s left`;
  return `about ${Math.round(seconds / 60)} min left`;
}

module.exports = { el, setChildren, dataUrl, formatEta };

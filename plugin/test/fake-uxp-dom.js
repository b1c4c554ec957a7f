// A small DOM as UXP gives a panel, enough for ui.js: elements with attributes,
// children, text, properties and events. On macOS it keeps UXP's documented known issue:
// a password field's value cannot be read (sp-textfield and <input> alike).
'use strict';

class FakeText {
  constructor(text) {
    this.nodeType = 3;
    this.textContent = String(text);
    this.parentNode = null;
  }
}

class FakeElement {
  constructor(dom, tagName) {
    this.dom = dom;
    this.tagName = tagName.toUpperCase();
    this.attributes = new Map();
    this.childNodes = [];
    this.parentNode = null;
    this.listeners = new Map();
    this.ownText = '';
    this.typed = '';
    this.disabled = false;
  }

  get id() {
    return this.getAttribute('id') ?? '';
  }

  set id(value) {
    this.setAttribute('id', value);
  }

  get className() {
    return this.getAttribute('class') ?? '';
  }

  set className(value) {
    this.setAttribute('class', value);
  }

  get type() {
    return this.getAttribute('type') ?? 'text';
  }

  set type(value) {
    this.setAttribute('type', value);
  }

  // What the user typed; '' on macOS while the field is a password field.
  get value() {
    if (this.type === 'password' && this.dom.platform === 'darwin') return '';
    return this.typed;
  }

  set value(text) {
    this.typed = String(text);
  }

  setAttribute(name, value) {
    this.attributes.set(name, String(value));
  }

  getAttribute(name) {
    return this.attributes.has(name) ? this.attributes.get(name) : null;
  }

  removeAttribute(name) {
    this.attributes.delete(name);
  }

  get firstChild() {
    return this.childNodes[0] ?? null;
  }

  appendChild(child) {
    if (child.parentNode) child.parentNode.removeChild(child);
    child.parentNode = this;
    this.childNodes.push(child);
    return child;
  }

  removeChild(child) {
    const index = this.childNodes.indexOf(child);
    if (index === -1) throw new Error('not a child');
    this.childNodes.splice(index, 1);
    child.parentNode = null;
    return child;
  }

  get textContent() {
    return this.ownText + this.childNodes.map((child) => child.textContent).join('');
  }

  set textContent(text) {
    for (const child of [...this.childNodes]) this.removeChild(child);
    this.ownText = String(text);
  }

  addEventListener(type, listener) {
    if (!this.listeners.has(type)) this.listeners.set(type, []);
    this.listeners.get(type).push(listener);
  }

  dispatch(type) {
    for (const listener of this.listeners.get(type) ?? []) listener({ type, target: this });
  }

  click() {
    if (!this.disabled) this.dispatch('click');
  }

  *walk() {
    yield this;
    for (const child of this.childNodes) if (child instanceof FakeElement) yield* child.walk();
  }
}

function createFakeDom({ platform = 'darwin' } = {}) {
  const dom = { platform };
  dom.body = new FakeElement(dom, 'body');
  dom.document = {
    body: dom.body,
    createElement: (tag) => new FakeElement(dom, tag),
    createTextNode: (text) => new FakeText(text),
    getElementById: (id) => {
      for (const node of dom.body.walk()) if (node.id === id) return node;
      return null;
    },
  };
  // The user's hands: focus a field, type into it (input events), leave it.
  dom.type = (field, text) => {
    field.dispatch('focus');
    for (const ch of text) {
      field.typed += ch;
      field.dispatch('input');
    }
    field.dispatch('blur');
  };
  return dom;
}

module.exports = { createFakeDom, FakeElement };

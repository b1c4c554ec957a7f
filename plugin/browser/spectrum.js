// Stand-ins for the Spectrum UXP widgets the panel uses (sp-button, sp-slider,
// sp-progressbar, sp-checkbox, sp-textfield, sp-label), for browsers, where Photoshop's
// built-in ones do not exist. Each wraps a native control in light DOM, so native
// input/change/click events bubble from the element as they do in UXP, and offers the
// same properties the panel uses (value, checked, disabled).
'use strict';

function defineOnce(name, cls) {
  if (!customElements.get(name)) customElements.define(name, cls);
}

class SpButton extends HTMLElement {
  connectedCallback() {
    if (this.ready) return;
    this.ready = true;
    this.setAttribute('role', 'button');
    if (!this.hasAttribute('tabindex')) this.tabIndex = 0;
    // A disabled button swallows clicks, as UXP's does.
    this.addEventListener('click', (event) => {
      if (this.disabled) event.stopImmediatePropagation();
    }, true);
    this.addEventListener('keydown', (event) => {
      if (event.key === 'Enter' || event.key === ' ') {
        event.preventDefault();
        this.click();
      }
    });
  }

  get disabled() {
    return this.hasAttribute('disabled');
  }

  set disabled(value) {
    this.toggleAttribute('disabled', Boolean(value));
    this.setAttribute('aria-disabled', String(Boolean(value)));
  }
}

// Native <input> inside; `value`/`checked` read and write it.
class InputElement extends HTMLElement {
  connectedCallback() {
    if (this.input) return;
    this.input = document.createElement('input');
    this.configure(this.input);
    if (this.pending !== undefined) this.assign(this.pending);
    this.appendChild(this.input);
  }

  configure() {}

  assign(value) {
    this.input.value = value;
  }
}

class SpSlider extends InputElement {
  configure(input) {
    input.type = 'range';
    input.min = this.getAttribute('min') ?? '0';
    input.max = this.getAttribute('max') ?? '100';
    input.step = this.getAttribute('step') ?? '1';
    input.value = this.getAttribute('value') ?? input.min;
    input.setAttribute('aria-label', this.getAttribute('aria-label') ?? 'slider');
  }

  get value() {
    return this.input ? Number(this.input.value) : Number(this.pending ?? this.getAttribute('value') ?? 0);
  }

  set value(value) {
    if (this.input) this.input.value = String(value);
    else this.pending = String(value);
  }

  get disabled() {
    return this.hasAttribute('disabled');
  }

  set disabled(value) {
    this.toggleAttribute('disabled', Boolean(value));
    if (this.input) this.input.disabled = Boolean(value);
  }
}

class SpTextfield extends InputElement {
  configure(input) {
    input.type = this.getAttribute('type') === 'password' ? 'password' : 'text';
    input.placeholder = this.getAttribute('placeholder') ?? '';
    input.setAttribute('aria-label', this.getAttribute('aria-label') ?? input.placeholder);
    input.autocomplete = 'off';
  }

  get value() {
    return this.input ? this.input.value : (this.pending ?? '');
  }

  set value(value) {
    if (this.input) this.input.value = value;
    else this.pending = value;
  }
}

class SpCheckbox extends HTMLElement {
  connectedCallback() {
    if (this.box) return;
    const label = document.createElement('label');
    this.box = document.createElement('input');
    this.box.type = 'checkbox';
    this.box.checked = this.hasAttribute('checked');
    label.append(this.box, ...this.childNodes);
    this.appendChild(label);
  }

  get checked() {
    return this.box ? this.box.checked : this.hasAttribute('checked');
  }

  set checked(value) {
    if (this.box) this.box.checked = Boolean(value);
    this.toggleAttribute('checked', Boolean(value));
  }
}

class SpProgressbar extends HTMLElement {
  static get observedAttributes() {
    return ['value', 'max'];
  }

  connectedCallback() {
    if (this.track) return;
    this.setAttribute('role', 'progressbar');
    this.track = document.createElement('div');
    this.track.className = 'sp-progressbar-track';
    this.fill = document.createElement('div');
    this.fill.className = 'sp-progressbar-fill';
    this.track.appendChild(this.fill);
    this.appendChild(this.track);
    this.draw();
  }

  attributeChangedCallback() {
    this.draw();
  }

  get value() {
    return Number(this.getAttribute('value') ?? 0);
  }

  set value(value) {
    this.setAttribute('value', String(value));
  }

  draw() {
    if (!this.fill) return;
    const max = Number(this.getAttribute('max') ?? 100) || 100;
    const share = Math.max(0, Math.min(1, this.value / max));
    this.fill.style.width = `${(share * 100).toFixed(1)}%`;
    this.setAttribute('aria-valuenow', String(this.value));
    this.setAttribute('aria-valuemax', String(max));
  }
}

function defineSpectrumWidgets() {
  defineOnce('sp-button', SpButton);
  defineOnce('sp-action-button', class extends SpButton {});
  defineOnce('sp-slider', SpSlider);
  defineOnce('sp-textfield', SpTextfield);
  defineOnce('sp-checkbox', SpCheckbox);
  defineOnce('sp-progressbar', SpProgressbar);
}

module.exports = { defineSpectrumWidgets };

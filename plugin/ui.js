// The panel's face: builds its widgets (Spectrum UXP: sp-button, sp-slider,
// sp-progressbar, sp-checkbox, sp-textfield) and wires them to the Panel, the client and
// the connection (connection.js: the token probe, its retries and the event stream).
// The same code runs in Photoshop (main.js, photoshop-adapter.js) and in a browser
// (browser/start.js, browser/canvas-adapter.js).
'use strict';

const { DEFAULT_BASE_URL, SidecarClient, checkConnection } = require('./client.js');
const { Connection, RETRY } = require('./connection.js');
const { EventStream } = require('./events.js');
const { Panel, messageOf } = require('./panel-state.js');
const { APPLY_OPS, OP_NAMES, opName, isTerminal } = require('./contract.js');
const { el, setChildren, dataUrl, formatEta } = require('./ui-parts.js');
const { detectPlatform, startHint, tokenCommand } = require('./start-hint.js');

const PHASE_TEXT = {
  idle: 'Ready.',
  uploading: 'Sending pixels…',
  running: 'Working…',
  placing: 'Placing the layer…',
  done: 'Done.',
  failed: 'Failed.',
};

// Fans events out from whichever EventStream is current (a new token makes a new one),
// and keeps it subscribed to the jobs the panel follows.
class Relay {
  constructor() {
    this.listeners = new Set();
    this.followed = new Set();
    this.stream = null;
  }

  attach(stream) {
    this.stream = stream;
    if (this.followed.size) stream.subscribe([...this.followed]);
  }

  follow(jobId) {
    this.followed.add(jobId);
    this.stream?.subscribe([...this.followed]);
  }

  // An empty list would mean every job: with none left, the last subscription stays.
  unfollow(jobId) {
    if (!this.followed.delete(jobId) || !this.followed.size) return;
    this.stream?.subscribe([...this.followed]);
  }

  listen(listener) {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  event(event) {
    for (const listener of this.listeners) listener.onEvent?.(event);
  }

  preview(header, jpeg) {
    for (const listener of this.listeners) listener.onPreview?.(header, jpeg);
  }
}

function buildView(root) {
  const view = {};
  view.light = el('span', { className: 'light', id: 'connection-light' });
  view.status = el('span', { id: 'connection-status', text: 'Connecting…' });
  view.token = el('sp-textfield', { id: 'token', type: 'password', placeholder: 'Sidecar token' });
  view.saveToken = el('sp-button', { id: 'save-token', variant: 'secondary', text: 'Save token' });
  view.tokenRow = el('div', { className: 'token-row' }, [view.token, view.saveToken]);
  view.hint = el('p', { className: 'hint', id: 'connection-hint' });
  const connection = el('section', { className: 'connection' }, [
    el('div', { className: 'status' }, [view.light, view.status]),
    view.hint,
    view.tokenRow,
  ]);

  view.applyButtons = {};
  const buttons = APPLY_OPS.map((op) => {
    const button = el('sp-button', { id: `apply-${op}`, variant: 'cta', text: OP_NAMES[op] });
    view.applyButtons[op] = button;
    return button;
  });
  view.progress = el('sp-progressbar', { id: 'progress', max: '100', value: '0' });
  view.phase = el('span', { id: 'phase', text: PHASE_TEXT.idle });
  view.eta = el('span', { id: 'eta', className: 'eta' });
  view.cancel = el('sp-button', { id: 'cancel', variant: 'secondary', quiet: '', text: 'Cancel' });
  view.thumbnail = el('img', { id: 'thumbnail', className: 'empty', alt: 'Preview' });
  view.streamSteps = el('sp-checkbox', { id: 'stream-steps' }, ['Stream step previews']);
  const apply = el('section', { className: 'apply' }, [
    el('h3', { text: 'Apply' }),
    el('div', { className: 'apply-buttons' }, buttons),
    el('div', { className: 'progress-row' }, [view.phase, view.eta]),
    view.progress,
    el('div', { className: 'preview-row' }, [view.thumbnail, el('div', {}, [view.streamSteps, view.cancel])]),
  ]);

  view.slider = el('sp-slider', { id: 'intensity', min: '0', max: '100', value: '100', 'aria-label': 'Intensity' });
  view.sliderValue = el('span', { id: 'intensity-value', text: '100 %' });
  view.refine = el('sp-button', { id: 'refine', variant: 'primary', text: 'Refine at 100 %' });
  const intensity = el('section', { className: 'intensity' }, [
    el('div', { className: 'progress-row' }, [el('h3', { text: 'Intensity' }), view.sliderValue]),
    view.slider,
    el('p', { className: 'hint', text: 'A preview of the intensity (layer opacity); Refine recomputes at that value.' }),
    view.refine,
  ]);

  view.queueAll = el('sp-button', { id: 'queue-all', variant: 'secondary', text: 'Queue Beauty: all open documents' });
  view.rows = el('div', { id: 'queue', className: 'queue', role: 'list' });
  const queueSection = el('section', { className: 'queue-section' }, [
    el('h3', { text: 'Queue' }),
    view.queueAll,
    view.rows,
  ]);
  view.message = el('p', { id: 'message', className: 'message', role: 'status' });
  setChildren(root, [connection, apply, intensity, queueSection, view.message]);
  return view;
}

function rowStateText(row) {
  if (row.state === 'failed' && row.error) return `failed: ${row.error}`;
  if (row.placement === 'waiting') return 'done · waiting for Photoshop (a dialog or another plugin is busy)';
  if (row.placement === 'failed') return `done · not placed: ${row.error ?? 'Photoshop refused it'}`;
  return row.state;
}

function renderRow(row, panel, activeDocId) {
  const thumb = el('img', { className: row.thumbnail ? 'row-thumb' : 'row-thumb empty', alt: '' });
  if (row.thumbnail) thumb.src = dataUrl(row.thumbnail);
  const bar = el('sp-progressbar', { className: 'row-progress', max: '100', value: String(Math.round(row.progress * 100)) });
  const state = rowStateText(row);
  const finished = isTerminal(row.state);
  const star = el('sp-action-button', {
    className: `star${row.priority === 'hero' ? ' starred' : ''}`,
    title: 'Star: serve this one next',
    text: row.priority === 'hero' ? '★' : '☆',
  });
  star.disabled = finished || row.priority === 'hero' || row.priority === 'active';
  star.addEventListener('click', () => panel.star(row.jobId));
  const cancel = el('sp-action-button', { className: 'cancel-row', title: 'Cancel', text: '✕' });
  cancel.disabled = finished;
  cancel.addEventListener('click', () => panel.cancelJob(row.jobId));
  const front = row.docId === activeDocId ? ' front' : '';
  const placement = row.placement ? ` placement-${row.placement}` : '';
  const attributes = { className: `row ${row.state}${front}${placement}`, 'data-job-id': row.jobId, 'data-state': row.state };
  if (row.placement) attributes['data-placement'] = row.placement;
  return el('div', attributes, [
    thumb,
    el('div', { className: 'row-main' }, [
      el('div', { className: 'row-name', text: row.name }),
      el('div', { className: 'row-state', text: state }),
      bar,
    ]),
    star,
    cancel,
  ]);
}

function render(view, panel, connection) {
  const { state } = panel;
  const busy = ['uploading', 'running', 'placing'].includes(state.phase);
  const ready = connection.state === 'connected';
  for (const button of Object.values(view.applyButtons)) button.disabled = !ready || busy;
  view.cancel.disabled = !busy || !panel.currentJobId;
  view.progress.value = String(Math.round((state.phase === 'done' ? 1 : state.progress) * 100));
  const stage = state.phase === 'running' && state.stage ? `${PHASE_TEXT.running.replace('…', '')}: ${state.stage}` : PHASE_TEXT[state.phase];
  view.phase.textContent = state.draft && state.phase === 'running' ? `${stage} (draft in place)` : stage;
  view.phase.setAttribute('data-phase', state.phase);
  view.eta.textContent = busy ? formatEta(state.etaS) : '';
  view.message.textContent = state.message || '';
  view.message.className = state.message ? 'message' : 'message hidden';
  const hasResult = Boolean(panel.result) && !busy;
  view.slider.disabled = !hasResult;
  view.refine.disabled = !hasResult || !ready;
  view.queueAll.disabled = !ready;
  view.queueAll.textContent = `Queue ${opName(view.queueOp)}: all open documents`;
  setChildren(view.rows, panel.queueView().map((row) => renderRow(row, panel, panel.activeDocId)));
}

/**
 * Mounts the panel into `root`. Resolves with { panel, client, stop } once the widgets
 * are up; connecting goes on in the background (with retries) until stop().
 */
async function mountPanel({
  root,
  adapter,
  tokenStore,
  fetch: fetchFn = globalThis.fetch,
  WebSocket: Socket = globalThis.WebSocket,
  baseUrl = DEFAULT_BASE_URL,
  precompute = true,
  rawBody,
  retry = RETRY,
  platform = detectPlatform(),
}) {
  const view = buildView(root);
  view.queueOp = 'beauty';
  const relay = new Relay();
  const client = new SidecarClient({ fetch: fetchFn, baseUrl, token: await tokenStore.load(), rawBody });
  const panel = new Panel({
    adapter,
    client,
    events: relay,
    onChange: () => render(view, panel, connection),
    precompute,
  });
  let stopDocuments = () => {};

  const showConnection = (state, text, hint = '') => {
    view.light.className = `light ${state}`;
    view.status.textContent = text;
    view.hint.textContent = hint;
    // The token field only when the token is what is missing, not when the sidecar is down.
    view.tokenRow.className = state === 'unauthorized' ? 'token-row' : 'token-row hidden';
    view.hint.className = hint ? 'hint' : 'hint hidden';
    render(view, panel, connection);
  };

  const describe = (state, info) => {
    if (state === 'connecting') return ['Connecting…'];
    if (state === 'connected') return [info.reconnected ? 'Sidecar connected' : `Sidecar ${info.version} connected`];
    if (state === 'unauthorized') {
      return [info.message, `Run \`${tokenCommand(platform)}\` in the project folder and paste it here.`];
    }
    if (!info.dropped) return ['Sidecar not running', `${info.message} ${startHint(platform)} Retrying…`];
    const seconds = Math.ceil(info.retryMs / 1000);
    const when = seconds ? ` in ${seconds} s` : '';
    return ['Sidecar not reachable', `Reconnecting${when}… ${startHint(platform)}`];
  };

  const connection = new Connection({
    check: () => checkConnection(fetchFn, { baseUrl, token: client.token }),
    messageOf,
    retry,
    onChange: (state, info) => showConnection(state, ...describe(state, info)),
    openStream: (onState) => {
      const stream = new EventStream({
        WebSocket: Socket,
        url: baseUrl,
        token: client.token,
        onEvent: (event) => relay.event(event),
        onPreview: (header, jpeg) => relay.preview(header, jpeg),
        onState,
      });
      relay.attach(stream);
      return stream;
    },
    onConnected: async () => {
      stopDocuments();
      stopDocuments = panel.watchDocuments();
      const doc = await adapter.activeDocument().catch(() => null);
      if (doc) panel.documentSelected(doc);
    },
    onReconnected: () => panel.resync(),
  });

  // A password field's value cannot be read on macOS (a UXP known issue). Adobe's
  // workaround: the field is a text field while it has the focus, a password field
  // otherwise; what is typed or pasted is kept as it arrives.
  let typedToken = '';
  const setTokenType = (type) => {
    view.token.setAttribute('type', type);
    view.token.type = type;
  };
  view.token.addEventListener('focus', () => setTokenType('text'));
  view.token.addEventListener('blur', () => setTokenType('password'));
  view.token.addEventListener('input', () => {
    const value = view.token.value;
    if (typeof value === 'string') typedToken = value;
  });
  view.saveToken.addEventListener('click', async () => {
    const token = String(view.token.value || typedToken || '').trim();
    if (!token) return;
    typedToken = '';
    await tokenStore.save(token);
    client.token = token;
    view.token.value = '';
    connection.retryNow();
  });
  for (const op of APPLY_OPS) {
    view.applyButtons[op].addEventListener('click', () => {
      view.queueOp = op;
      view.slider.value = 100;
      view.sliderValue.textContent = '100 %';
      view.refine.textContent = 'Refine at 100 %';
      panel.apply(op);
    });
  }
  view.cancel.addEventListener('click', () => panel.cancelJob());
  view.streamSteps.addEventListener('change', () => {
    panel.streamSteps = Boolean(view.streamSteps.checked);
  });
  view.slider.addEventListener('input', () => {
    const percent = Number(view.slider.value);
    view.sliderValue.textContent = `${percent} %`;
    view.refine.textContent = `Refine at ${percent} %`;
    panel.slider(percent);
  });
  view.slider.addEventListener('change', () => panel.sliderReleased(Number(view.slider.value)));
  view.refine.addEventListener('click', () => panel.refine(Number(view.slider.value)));
  view.queueAll.addEventListener('click', () => panel.queueDocuments(view.queueOp));

  connection.start();
  const stop = () => {
    connection.stop();
    stopDocuments();
    panel.stopListening();
  };
  return { panel, client, view, stop };
}

/** In place of the panel, when this Photoshop cannot run it: why, and what to do. */
function showUnsupported(root, problem) {
  const light = el('span', { className: 'light unsupported', id: 'connection-light' });
  const status = el('span', { id: 'connection-status', text: 'This Photoshop cannot run ML Retouch' });
  const hint = el('p', { className: 'hint', id: 'connection-hint', text: problem });
  setChildren(root, [el('section', { className: 'connection' }, [el('div', { className: 'status' }, [light, status]), hint])]);
}

module.exports = { mountPanel, showUnsupported };

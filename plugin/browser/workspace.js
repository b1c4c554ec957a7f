// The browser panel's stand-in for Photoshop's window: document tabs, the canvas, and
// the Layers and History panels of the Workspace in canvas-adapter.js.
'use strict';

const { GROUP } = require('./canvas-adapter.js');

function item(text, className = '') {
  const li = document.createElement('li');
  li.textContent = text;
  if (className) li.className = className;
  return li;
}

function renderTabs(workspace, tabs) {
  tabs.replaceChildren(
    ...[...workspace.documents.values()].map((doc) => {
      const tab = document.createElement('button');
      tab.type = 'button';
      tab.className = `tab${doc.id === workspace.activeId ? ' active' : ''}`;
      tab.dataset.docId = doc.id;
      tab.textContent = doc.name;
      tab.addEventListener('click', () => workspace.select(doc.id));
      const close = document.createElement('span');
      close.className = 'tab-close';
      close.textContent = '×';
      close.title = `Close ${doc.name}`;
      close.addEventListener('click', (event) => {
        event.stopPropagation();
        workspace.close(doc.id);
      });
      tab.appendChild(close);
      return tab;
    }),
  );
}

function renderLayers(doc, list) {
  if (!doc) return list.replaceChildren();
  const ours = doc.layers.filter((layer) => layer.group === GROUP).reverse();
  const others = doc.layers.filter((layer) => layer.group !== GROUP).reverse();
  const rows = [];
  if (ours.length) {
    rows.push(item(`▾ ${GROUP}`, 'group'));
    for (const layer of ours) {
      const row = item(`${layer.name}  ${Math.round(layer.opacity)} %`, `layer in-group${layer.draft ? ' draft' : ''}`);
      row.dataset.layerId = layer.id;
      row.dataset.opacity = String(layer.opacity);
      rows.push(row);
    }
  }
  for (const layer of others) rows.push(item(layer.name, 'layer'));
  rows.push(item('Background', 'layer'));
  list.replaceChildren(...rows);
}

function renderHistory(workspace, doc, list) {
  if (!doc) return list.replaceChildren();
  list.replaceChildren(
    ...doc.history.map((step, index) => {
      const row = item(step.name, `step${index === doc.current ? ' current' : ''}${index > doc.current ? ' redo' : ''}`);
      row.addEventListener('click', () => workspace.stepTo(doc.id, index));
      return row;
    }),
  );
}

/** Draws the workspace into the page's elements and keeps them current. */
function mountWorkspace(workspace, { canvas, tabs, layers, history, openFile }) {
  let queued = false;
  const draw = () => {
    queued = false;
    const doc = workspace.active;
    renderTabs(workspace, tabs);
    renderLayers(doc, layers);
    renderHistory(workspace, doc, history);
    if (doc) doc.draw(canvas);
    else canvas.width = canvas.height = 0;
  };
  // Live opacity changes arrive per slider tick: draw once per frame.
  workspace.onChange(() => {
    if (!queued) {
      queued = true;
      requestAnimationFrame(draw);
    }
  });
  canvas.addEventListener('click', (event) => {
    const doc = workspace.active;
    if (!doc) return;
    const box = canvas.getBoundingClientRect();
    const x = ((event.clientX - box.left) / box.width) * doc.width;
    const y = ((event.clientY - box.top) / box.height) * doc.height;
    workspace.paint(doc.id, x, y);
  });
  openFile.addEventListener('change', async () => {
    for (const file of openFile.files) {
      try {
        workspace.open(file.name, await createImageBitmap(file));
      } catch {
        workspace.record('open-failed', null, { name: file.name });
      }
    }
    openFile.value = '';
  });
  draw();
}

module.exports = { mountWorkspace };

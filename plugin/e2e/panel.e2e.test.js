// The browser panel against a real sidecar in headless Chromium: Apply shows a draft
// layer then the final in its place as one history step, the slider is layer opacity
// with one step on release, Refine replaces the layer, and the batch queue stars and
// cancels rows. Screenshots go to $PANEL_SCREENSHOTS (scripts/screenshots → docs/images).
'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { startSidecar, ROOT } = require('./sidecar.js');
const { launch, openPanel, screenshot } = require('./browser.js');

// A sidecar and a browser for one test, both ended after it.
async function session(t, options) {
  const sidecar = await startSidecar(options);
  const browser = await launch();
  t.after(async () => {
    await browser.close();
    await sidecar.stop();
  });
  return { sidecar, browser };
}

const SAMPLE = fs.readFileSync(path.join(ROOT, 'sidecar', 'data', 'sample-portrait.jpg'));

const history = (page) =>
  page.evaluate(() => window.mlRetouch.workspace.active.history.map((step) => step.name));
const ourLayers = (page) =>
  page.evaluate(() =>
    window.mlRetouch.workspace.active.layers
      .filter((layer) => layer.group === 'ML Retouch')
      .map(({ id, name, opacity, draft }) => ({ id, name, opacity, draft })),
  );
const log = (page) => page.evaluate(() => window.mlRetouch.workspace.log);
// The mean absolute difference (0..255) between the canvas now and when it was marked.
const markCanvas = (page) =>
  page.evaluate(() => {
    const canvas = document.getElementById('canvas');
    window.marked = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
  });
const changeSinceMark = (page) =>
  page.evaluate(() => {
    const canvas = document.getElementById('canvas');
    const now = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
    let sum = 0;
    for (let i = 0; i < now.length; i += 1) sum += Math.abs(now[i] - window.marked[i]);
    return sum / now.length;
  });

// A 3000×3000 document made from the sample portrait, in front: large enough that its
// draft always shows well before the final.
const openLargePortrait = (page) =>
  page.evaluate(async () => {
    const image = await createImageBitmap(await (await fetch('sample-portrait.jpg')).blob());
    const canvas = document.createElement('canvas');
    canvas.width = canvas.height = 3000;
    canvas.getContext('2d').drawImage(image, 0, 0, 3000, 3000);
    window.mlRetouch.workspace.open('portrait-9mp.jpg', canvas);
  });

test('browser panel: Apply, slider and Refine on the sample portrait', async (t) => {
  const { sidecar, browser } = await session(t);
  // Precompute off, so this first Apply really runs and shows its draft.
  const { page, errors } = await openPanel(browser, sidecar, { precompute: false });
  await page.waitForFunction(() => window.mlRetouch.workspace.active);
  await openLargePortrait(page);
  await page.waitForFunction(() => document.getElementById('canvas').width === 3000);
  await markCanvas(page);
  assert.deepEqual(await history(page), ['Open']);

  await page.evaluate(() => {
    window.seen = { progress: [], phases: [] };
    const bar = document.getElementById('progress');
    const phase = document.getElementById('phase');
    new MutationObserver(() => window.seen.progress.push(Number(bar.getAttribute('value')))).observe(bar, {
      attributes: true,
      attributeFilter: ['value'],
    });
    new MutationObserver(() => window.seen.phases.push(phase.dataset.phase)).observe(phase, {
      attributes: true,
      attributeFilter: ['data-phase'],
    });
  });
  await t.test('Apply places a draft layer at once, then the final in its place: one history step', async () => {
    await page.click('#apply-beauty');
    await page.waitForFunction(() => document.getElementById('phase').dataset.phase === 'done', null, { timeout: 60000 });
    const seen = await page.evaluate(() => window.seen);
    assert.ok(seen.progress.some((value) => value > 0 && value < 100), `progress moved: ${seen.progress}`);
    assert.equal(seen.progress.at(-1), 100);
    assert.ok(seen.phases.includes('running'));

    const events = (await log(page)).filter((entry) => ['draft', 'final'].includes(entry.what));
    assert.deepEqual(events.map((entry) => entry.what), ['draft', 'final'], 'a draft, then the final');
    const [draft, final] = events;
    assert.ok(draft.size[0] < 3000 && draft.size[1] < 3000, `the draft is a small level: ${draft.size}`);
    assert.equal(final.layerId, draft.layerId);
    assert.equal(final.inPlace, true);
    assert.deepEqual(await history(page), ['Open', 'ML Retouch: Beauty']);
    const layers = await ourLayers(page);
    assert.equal(layers.length, 1);
    assert.equal(layers[0].draft, false);
    assert.equal(layers[0].opacity, 100);

    await page.waitForTimeout(50);
    const change = await changeSinceMark(page);
    assert.ok(change > 0.05 && change < 20, `the retouch changed the picture a little: ${change}`);
    await screenshot(page, 'panel-apply.png');
  });

  await t.test('dragging the slider is live layer opacity with no step; release makes one', async () => {
    const slider = page.locator('#intensity input');
    const box = await slider.boundingBox();
    const y = box.y + box.height / 2;
    await page.mouse.move(box.x + box.width - 2, y);
    await page.mouse.down();
    await page.mouse.move(box.x + box.width * 0.7, y, { steps: 4 });
    await page.mouse.move(box.x + box.width * 0.5, y, { steps: 4 });
    const dragging = await ourLayers(page);
    assert.ok(dragging[0].opacity > 35 && dragging[0].opacity < 65, `live opacity ${dragging[0].opacity}`);
    assert.equal((await history(page)).length, 2, 'no history step while dragging');
    await page.mouse.up();
    await page.waitForFunction(() => window.mlRetouch.workspace.active.history.length === 3);
    const names = await history(page);
    assert.match(names[2], /^ML Retouch: Beauty opacity \d+ %$/);
    assert.match(await page.textContent('#refine'), /^Refine at \d+ %$/);
    await screenshot(page, 'panel-slider.png');
  });

  await t.test('Refine re-runs at the slider value and replaces the same layer, back at 100 %', async () => {
    const [layer] = await ourLayers(page);
    const percent = Number((await page.textContent('#refine')).match(/\d+/)[0]);
    await page.click('#refine');
    await page.waitForFunction(() => window.mlRetouch.workspace.active.history.length === 4, null, { timeout: 60000 });
    const names = await history(page);
    assert.equal(names[3], `ML Retouch: Refine Beauty at ${percent} %`);
    const [refined] = await ourLayers(page);
    assert.equal(refined.id, layer.id);
    assert.equal(refined.opacity, 100);
  });

  assert.deepEqual(errors, []);
});

test('browser panel: a queue of open documents, starred and cancelled, the front one first', async (t) => {
  // The synthetic engine (10 × 50 ms steps a job) and a long job of the test's own keep
  // the queued rows waiting long enough to star and cancel them.
  const { sidecar, browser } = await session(t, { engines: ['synthetic'] });
  const { page, errors } = await openPanel(browser, sidecar, { precompute: false });
  await page.setInputFiles('#open-file', ['b', 'c', 'd'].map((tag) => ({ name: `shoot-${tag}.jpg`, mimeType: 'image/jpeg', buffer: SAMPLE })));
  await page.waitForFunction(() => window.mlRetouch.workspace.documents.size === 4);
  await page.click('.tab[data-doc-id="doc-1"]'); // the sample portrait in front

  const pixels = Buffer.alloc(8 * 8 * 3, 128);
  const headers = { 'Content-Type': 'application/octet-stream', 'X-Image-Width': '8', 'X-Image-Height': '8', 'X-Image-Channels': '3', 'X-Image-Depth': '8' };
  const image = await sidecar.api('POST', '/v1/images', { body: pixels, headers });
  const blocker = await sidecar.api('POST', '/v1/jobs', {
    json: { op: 'color', image_id: image.json.image_id, params: { steps: 600, step_ms: 50 }, priority: 'normal' },
  });
  assert.equal(blocker.status, 202);

  await page.click('#queue-all');
  await page.waitForFunction(() => document.querySelectorAll('#queue .row').length === 4);
  const rows = () =>
    page.$$eval('#queue .row', (items) => items.map((item) => ({ id: item.dataset.jobId, state: item.dataset.state, name: item.querySelector('.row-name').textContent })));
  const first = await rows();
  assert.match(first[0].name, /sample-portrait/, 'the front document is first');

  // The front document's job is `active`: it runs before the long job ends.
  await page.waitForFunction(() => document.querySelector('#queue .row.done .row-name')?.textContent.includes('sample-portrait'), null, { timeout: 30000 });
  const waiting = (await rows()).filter((row) => row.state === 'queued');
  assert.equal(waiting.length, 3);

  const last = waiting[2];
  await page.click(`#queue .row[data-job-id="${last.id}"] .star`);
  await page.waitForFunction((id) => document.querySelector('#queue .row').dataset.jobId === id, last.id);
  const starred = await sidecar.api('GET', `/v1/jobs/${last.id}`);
  assert.equal(starred.json.priority, 'hero');
  const queued = (await sidecar.api('GET', '/v1/jobs')).json.jobs.filter((job) => job.state === 'queued');
  assert.equal(queued[0].job_id, last.id, 'the sidecar serves the starred row next');

  const dropped = waiting[0];
  await page.click(`#queue .row[data-job-id="${dropped.id}"] .cancel-row`);
  await page.waitForFunction((id) => document.querySelector(`#queue .row[data-job-id="${id}"]`).dataset.state === 'cancelled', dropped.id);
  await screenshot(page, 'panel-queue.png');

  await sidecar.api('DELETE', `/v1/jobs/${blocker.json.job_id}`);
  await page.waitForFunction(() => [...document.querySelectorAll('#queue .row')].every((row) => ['done', 'cancelled'].includes(row.dataset.state)), null, { timeout: 30000 });
  // Each result is placed once its row is done: wait for the last placement.
  await page.waitForFunction(() => {
    const counts = [...window.mlRetouch.workspace.documents.values()].map((doc) => doc.history.length);
    return counts.filter((count) => count === 2).length === 3;
  });
  const steps = await page.evaluate(() =>
    Object.fromEntries([...window.mlRetouch.workspace.documents.values()].map((doc) => [doc.name, doc.history.map((step) => step.name)])),
  );
  const cancelledName = dropped.name.split(' · ')[1];
  for (const [name, names] of Object.entries(steps)) {
    const expected = name === cancelledName ? ['Open'] : ['Open', 'ML Retouch: Beauty'];
    assert.deepEqual(names, expected, name);
  }
  assert.deepEqual(errors, []);
});

test('browser panel: says when the sidecar is not running and reconnects by itself', async (t) => {
  const { sidecar, browser } = await session(t);
  const { page, errors } = await openPanel(browser, sidecar, { precompute: false });
  await sidecar.halt();
  await page.waitForFunction(() => document.querySelector('#connection-light.offline'), null, { timeout: 15000 });
  assert.match(await page.textContent('#connection-status'), /not reachable|not running/);
  assert.match(await page.textContent('#connection-hint'), /Reconnecting|Retrying/);
  assert.equal(await page.getAttribute('#apply-beauty', 'disabled'), '', 'Apply is off while offline');
  await screenshot(page, 'panel-offline.png');

  await sidecar.launch();
  await page.waitForFunction(() => document.querySelector('#connection-light.connected'), null, { timeout: 30000 });
  assert.equal(await page.getAttribute('#apply-beauty', 'disabled'), null, 'Apply is back');
  await page.click('#apply-beauty');
  await page.waitForFunction(() => document.getElementById('phase').dataset.phase === 'done', null, { timeout: 60000 });
  assert.deepEqual(await history(page), ['Open', 'ML Retouch: Beauty']);
  assert.deepEqual(errors, []);
});

test('browser panel: the token is asked for once, a wrong one is refused, the right one is kept', async (t) => {
  const { sidecar, browser } = await session(t);
  const page = await browser.newPage();
  await page.goto(`${sidecar.url}/panel/#precompute=off`);
  await page.waitForSelector('#connection-light.unauthorized');
  assert.ok(await page.isVisible('#token input'), 'the token field shows');
  await page.fill('#token input', 'not-the-token');
  await page.click('#save-token');
  await page.waitForFunction(() => /refused/.test(document.getElementById('connection-status').textContent));
  await page.fill('#token input', sidecar.token);
  await page.click('#save-token');
  await page.waitForSelector('#connection-light.connected');
  assert.equal(await page.isVisible('#token input'), false, 'no token field once connected');
  await page.reload();
  await page.waitForSelector('#connection-light.connected'); // kept: not asked again
});

// The panel's state and flows (Apply, slider, Refine, document events), written against
// the adapter contract and the sidecar client, so it runs under Node with fakes.
//
// Draft → final: previews (draft, preview, refine, final, and steps when streamSteps is
// on) only ever go to the panel's thumbnail. The document is touched once, when the full
// result is in hand: one runAsOneHistoryStep that creates the layer. A draft layer that
// the final replaces would have to keep the history step (and its executeAsModal scope)
// open for the whole 10–30 s job, blocking Photoshop the whole time.
//
// Events: `events` is an EventStream (events.js), or anything with
// listen({ onEvent(event), onPreview(header, jpeg) }) → remover.
'use strict';

const { checkAdapter } = require('./adapter-contract.js');
const queue = require('./queue.js');

const OP_NAMES = {
  beauty: 'Beauty',
  dodge_burn: 'Dodge & Burn',
  volume: 'Volume',
  color: 'Color',
  generate: 'Generate',
};
const TERMINAL_EVENTS = new Set(['done', 'failed', 'cancelled']);
// Terminal events of jobs the panel does not know yet: a fast (or cached) job can finish
// before the POST /v1/jobs answer arrives.
const EARLY_EVENTS_KEPT = 64;

function opName(op) {
  return OP_NAMES[op] ?? op;
}

// The sidecar's message, or a plain sentence; never a stack trace.
function messageOf(error) {
  const message = error?.error?.message ?? error?.message;
  return typeof message === 'string' && message ? message.split('\n')[0] : 'Something went wrong.';
}

async function quietly(fn) {
  try {
    return await fn();
  } catch {
    return undefined;
  }
}

class Panel {
  constructor({ adapter, client, events, onChange = () => {}, precomputeOps } = {}) {
    this.adapter = checkAdapter(adapter);
    this.client = client;
    this.onChange = onChange;
    this.precomputeOps = precomputeOps;
    this.streamSteps = false;
    this.state = { phase: 'idle', progress: 0, stage: null, etaS: null, message: '' };
    this.rows = [];
    this.activeDocId = null;
    this.result = null; // the layer the slider and Refine act on, with the job that made it
    this.attempt = 0; // the latest Apply/Refine: only it drives `state`
    this.currentJobId = null;
    this.images = new Map(); // docId → { layerStackHash, imageId: Promise<string> }
    this.precomputes = new Map(); // docId → { next, done }
    this.watches = new Map(); // jobId → resolve(terminal event)
    this.early = new Map(); // jobId → terminal event
    this.stopListening = events
      ? events.listen({
          onEvent: (event) => this.handleJobEvent(event),
          onPreview: (header, jpeg) => this.handlePreview(header, jpeg),
        })
      : () => {};
  }

  /** The queue rows in view order. */
  queueView() {
    return queue.order(this.rows, this.activeDocId);
  }

  async apply(op, { intensity = 1, params = {} } = {}) {
    const attempt = await this.begin('uploading');
    try {
      const doc = await this.adapter.activeDocument();
      if (!doc) throw new Error('Open a document first.');
      const job = {
        op,
        params,
        intensity,
        docId: doc.id,
        docName: doc.name,
        layerStackHash: doc.layerStackHash,
        imageId: await this.imageFor(doc),
      };
      const placed = await this.perform(attempt, job, `ML Retouch: ${opName(op)}`, (pixels) =>
        this.adapter.createResultLayer(doc.id, { name: opName(op), pixels, opacity: 100 }),
      );
      if (!placed) return null;
      this.result = { ...job, layerId: placed.value };
      await quietly(() => this.client.recordAction(doc.id, op));
      return { jobId: placed.jobId, layerId: placed.value };
    } catch (error) {
      this.fail(attempt, error);
      return null;
    }
  }

  /** Re-runs the last Apply at percent/100 and puts its pixels into the same layer. */
  async refine(percent) {
    const target = this.result;
    if (!target) return null;
    const attempt = await this.begin('running');
    // The same input image as the Apply: the document's composite now includes the layer.
    const job = { ...target, intensity: percent / 100 };
    try {
      const historyName = `ML Retouch: Refine ${opName(job.op)}`;
      const placed = await this.perform(attempt, job, historyName, async (pixels) => {
        await this.adapter.replaceLayerPixels(job.docId, job.layerId, pixels);
        await this.adapter.setLayerOpacity(job.docId, job.layerId, 100);
      });
      if (!placed) return null;
      this.result = job;
      return { jobId: placed.jobId, layerId: job.layerId };
    } catch (error) {
      this.fail(attempt, error);
      return null;
    }
  }

  /** While dragging: the layer's opacity, live, with no history step and no inference. */
  async slider(percent) {
    const target = this.result;
    if (!target) return;
    try {
      await this.adapter.setLayerOpacity(target.docId, target.layerId, percent);
    } catch (error) {
      this.setState({ message: messageOf(error) });
    }
  }

  /** On release: the same opacity, committed as one history step. */
  async sliderReleased(percent) {
    const target = this.result;
    if (!target) return;
    try {
      await this.adapter.runAsOneHistoryStep(target.docId, `ML Retouch: ${opName(target.op)} opacity`, () =>
        this.adapter.setLayerOpacity(target.docId, target.layerId, percent),
      );
    } catch (error) {
      this.setState({ message: messageOf(error) });
    }
  }

  async star(jobId) {
    const row = this.rows.find((candidate) => candidate.jobId === jobId);
    const request = row && queue.star(row);
    if (!request) return;
    await this.client.patch(request.jobId, request.body.priority);
    this.rows = this.rows.map((each) => (each.jobId === jobId ? { ...each, priority: 'hero' } : each));
    this.changed();
  }

  async cancelJob(jobId = this.currentJobId) {
    const row = this.rows.find((candidate) => candidate.jobId === jobId);
    const request = row && queue.cancel(row);
    if (request) await this.client.cancel(request.jobId);
  }

  async documentOpened(doc) {
    await this.documentSelected(doc);
  }

  async documentSelected(doc) {
    this.activeDocId = doc.id;
    this.changed();
    await this.precompute(doc);
  }

  async documentClosed(docId) {
    this.images.delete(docId);
    if (this.activeDocId === docId) this.activeDocId = null;
    if (this.result?.docId === docId) this.result = null;
    await quietly(() => this.client.stopPrecompute(docId));
  }

  async historyChanged(doc) {
    if (this.images.get(doc.id)?.layerStackHash === doc.layerStackHash) return;
    this.images.delete(doc.id);
    await this.precompute(doc);
  }

  handleJobEvent(event) {
    if (!this.rows.some((row) => row.jobId === event.job_id)) {
      if (TERMINAL_EVENTS.has(event.type)) this.rememberEarly(event);
      return;
    }
    const rows = queue.applyEvent(this.rows, event);
    if (rows === this.rows) return; // stale seq
    this.rows = rows;
    if (TERMINAL_EVENTS.has(event.type)) {
      const watch = this.watches.get(event.job_id);
      if (watch) watch(event);
      else this.rememberEarly(event);
    } else if (event.job_id === this.currentJobId) {
      const row = rows.find((candidate) => candidate.jobId === event.job_id);
      this.setState({ progress: row.progress, stage: row.stage, etaS: row.etaS });
      return;
    }
    this.changed();
  }

  handlePreview(header, jpeg) {
    if (header.level === 'step' && !this.streamSteps) return;
    const rows = queue.applyPreview(this.rows, header, jpeg);
    if (rows === this.rows) return; // unknown job or stale seq
    this.rows = rows;
    this.changed();
    if (header.job_id === this.currentJobId) quietly(() => this.adapter.showThumbnail(jpeg));
  }

  // Internals.

  setState(changes) {
    this.state = { ...this.state, ...changes };
    this.changed();
  }

  changed() {
    this.onChange(this.state);
  }

  async begin(phase) {
    this.attempt += 1;
    this.currentJobId = null;
    this.setState({ phase, progress: 0, stage: null, etaS: null, message: '' });
    await quietly(() => this.adapter.showThumbnail(null));
    return this.attempt;
  }

  show(attempt, changes) {
    if (attempt === this.attempt) this.setState(changes);
  }

  fail(attempt, error) {
    if (attempt !== this.attempt) return;
    this.setState({ phase: 'failed', etaS: null, message: messageOf(error) });
    quietly(() => this.adapter.showThumbnail(null));
  }

  // Runs the job and, when it is done, `place(pixels)` inside one history step.
  // Resolves with { jobId, value: place's value }, or null when the job was cancelled.
  async perform(attempt, job, historyName, place) {
    const { jobId, done } = await this.submit(attempt, job);
    const finished = done ? { type: 'done' } : await this.waitFor(jobId);
    if (finished.type === 'failed') throw new Error(finished.error?.message || 'The job failed.');
    if (finished.type === 'cancelled') {
      this.show(attempt, { phase: 'idle', etaS: null, message: 'Cancelled.' });
      return null;
    }
    const { bytes, width, height, channels, depth } = await this.client.result(jobId, { format: 'raw' });
    const pixels = { bytes, width, height, channels, depth };
    this.show(attempt, { phase: 'placing', progress: 1, etaS: 0 });
    const value = await this.adapter.runAsOneHistoryStep(job.docId, historyName, () => place(pixels));
    this.show(attempt, { phase: 'done', progress: 1, stage: null, etaS: 0, message: '' });
    return { jobId, value };
  }

  async submit(attempt, job) {
    this.show(attempt, { phase: 'running' });
    const answer = await this.client.submit({
      op: job.op,
      image_id: job.imageId,
      intensity: job.intensity,
      params: job.params,
      priority: 'active',
      document_id: job.docId,
      layer_stack_hash: job.layerStackHash,
      preview: { progressive: true, stream_steps: this.streamSteps },
    });
    const jobId = answer.job_id;
    const row = queue.createRow({
      jobId,
      docId: job.docId,
      name: `${opName(job.op)} · ${job.docName}`,
      priority: 'active',
      state: answer.state,
    });
    this.rows = [...this.rows, row];
    const early = this.early.get(jobId);
    if (early) this.rows = queue.applyEvent(this.rows, early);
    if (attempt === this.attempt) this.currentJobId = jobId;
    this.changed();
    return { jobId, done: answer.cached || answer.state === 'done' };
  }

  waitFor(jobId) {
    const early = this.early.get(jobId);
    if (early) {
      this.early.delete(jobId);
      return Promise.resolve(early);
    }
    return new Promise((resolve) => {
      this.watches.set(jobId, (event) => {
        this.watches.delete(jobId);
        resolve(event);
      });
    });
  }

  rememberEarly(event) {
    this.early.set(event.job_id, event);
    if (this.early.size > EARLY_EVENTS_KEPT) this.early.delete(this.early.keys().next().value);
  }

  // The sidecar's image id for the document as it is; the upload is shared by everyone
  // who asks while it is under way, and skipped while the layer stack is unchanged.
  imageFor(doc) {
    const known = this.images.get(doc.id);
    if (known?.layerStackHash === doc.layerStackHash) return known.imageId;
    const imageId = this.adapter
      .readPixels(doc.id)
      .then(({ bytes, width, height, channels, depth }) =>
        this.client.uploadRaw(bytes, { width, height, channels, depth }),
      )
      .then((answer) => answer.image_id);
    const entry = { layerStackHash: doc.layerStackHash, imageId };
    this.images.set(doc.id, entry);
    imageId.catch(() => {
      if (this.images.get(doc.id) === entry) this.images.delete(doc.id);
    });
    return imageId;
  }

  // At most one precompute per document under way; history changes that arrive meanwhile
  // collapse into one more run with the newest state (a brush stroke per second must not
  // mean an upload per second).
  precompute(doc) {
    const running = this.precomputes.get(doc.id);
    if (running) {
      running.next = doc;
      return running.done;
    }
    const slot = { next: doc, done: null };
    this.precomputes.set(doc.id, slot);
    slot.done = (async () => {
      while (slot.next) {
        const target = slot.next;
        slot.next = null;
        await quietly(() => this.precomputeNow(target));
      }
      this.precomputes.delete(doc.id);
    })();
    return slot.done;
  }

  async precomputeNow(doc) {
    const imageId = await this.imageFor(doc);
    // Switched away, closed or edited while uploading: precompute now would stop the
    // precompute of the document in front, or work on stale pixels.
    if (this.activeDocId != null && this.activeDocId !== doc.id) return;
    if (this.images.get(doc.id)?.layerStackHash !== doc.layerStackHash) return;
    await this.client.precompute({
      imageId,
      documentId: doc.id,
      layerStackHash: doc.layerStackHash,
      ops: this.precomputeOps,
    });
  }
}

module.exports = { Panel, OP_NAMES, messageOf };

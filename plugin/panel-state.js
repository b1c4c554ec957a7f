// The panel's state and flows (Apply, slider, Refine, the batch queue, document events),
// written against the adapter contract and the sidecar client, so it runs under Node
// with fakes and in a browser with the canvas adapter.
//
// Draft → final: the first progressive level of an Apply (the draft, or the next level
// when the draft went by before the job was known) goes into the document at once as the
// Apply's layer; the full-resolution result replaces it when the job is done. The
// adapter keeps that to one history step (adapter-contract.js). Later levels, and step
// previews when streamSteps is on, only reach the panel's thumbnail.
//
// Events: `events` is the ui's relay over an EventStream (events.js), or anything with
// listen({ onEvent(event), onPreview(header, jpeg) }) → remover and follow(jobId) /
// unfollow(jobId). A job's first events can go by before the answer to its POST
// /v1/jobs: the panel follows the job once it knows it, and the sidecar then replays the
// job's history (its state events and latest preview), so the panel keeps no buffer of
// events for jobs it does not know.
//
// Finished results that Photoshop cannot take yet (a dialog is open, another plugin is
// busy) wait in `placements` and go in when it is free; they are never dropped.
'use strict';

const { checkAdapter } = require('./adapter-contract.js');
const queue = require('./queue.js');
const { DocumentImages } = require('./document-images.js');
const { Placements, isModalBusy } = require('./placements.js');

const OP_NAMES = {
  beauty: 'Beauty',
  dodge_burn: 'Dodge & Burn',
  volume: 'Volume',
  color: 'Color',
  generate: 'Generate',
};
const TERMINAL_EVENTS = new Set(['done', 'failed', 'cancelled']);
const DRAFT_LEVELS = new Set(['draft', 'preview', 'refine']);
const BUSY_MESSAGE = 'Photoshop is busy (a dialog or another plugin); the result goes in when it is free.';

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

function pixelsOf({ bytes, width, height, channels, depth }) {
  return { bytes, width, height, channels, depth };
}

class Panel {
  constructor({ adapter, client, events, onChange = () => {}, precomputeOps, precompute = true, placeRetryMs } = {}) {
    this.adapter = checkAdapter(adapter);
    this.client = client;
    this.onChange = onChange;
    this.streamSteps = false;
    this.state = { phase: 'idle', progress: 0, stage: null, etaS: null, message: '', draft: false };
    this.rows = [];
    this.activeDocId = null;
    this.result = null; // the layer the slider and Refine act on, with the job that made it
    this.attempt = 0; // the latest Apply/Refine: only it drives `state`
    this.currentJobId = null;
    this.jobs = new Map(); // jobId → { docId, op, wantsDraft, draft: Promise<Draft|null>, closed, finished }
    this.events = events;
    this.placements = new Placements({ delaysMs: placeRetryMs });
    this.uploads = new DocumentImages({
      adapter,
      client,
      precompute,
      ops: precomputeOps,
      frontId: () => this.activeDocId,
    });
    this.watches = new Map(); // jobId → resolve(terminal event)
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

  /** Apply on the document in front: draft layer at once, final in its place. */
  async apply(op, { intensity = 1, params = {} } = {}) {
    const attempt = await this.begin('uploading');
    try {
      const doc = await this.adapter.activeDocument();
      if (!doc) throw new Error('Open a document first.');
      if (doc.unsupported) throw new Error(doc.unsupported);
      const job = await this.jobFor(doc, op, { intensity, params });
      const placed = await this.perform(attempt, job, { priority: 'active', wantsDraft: true });
      if (!placed) return null;
      this.result = { ...job, layerId: placed.layerId, opacity: 100 };
      this.changed();
      await quietly(() => this.client.recordAction(doc.id, op));
      return placed;
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
      const placed = await this.perform(attempt, job, {
        priority: 'active',
        wantsDraft: false,
        place: async (pixels) => {
          const historyName = `ML Retouch: Refine ${opName(job.op)} at ${Math.round(percent)} %`;
          await this.adapter.replaceResult(job.docId, job.layerId, { historyName, pixels });
          return job.layerId;
        },
      });
      if (!placed) return null;
      this.result = { ...job, opacity: 100 };
      this.changed();
      return placed;
    } catch (error) {
      this.fail(attempt, error);
      return null;
    }
  }

  /**
   * Queues `op` for every open document (or those given), the one in front first.
   * Each result becomes one layer, one history step, in its own document when done.
   * Resolves once every job is submitted; the jobs finish in the background.
   */
  async queueDocuments(op, docs) {
    const targets = docs ?? (await this.adapter.documents());
    const front = await quietly(() => this.adapter.activeDocument());
    const ordered = [...targets].sort((a, b) => (b.id === front?.id) - (a.id === front?.id));
    const submitted = [];
    for (const doc of ordered) {
      try {
        if (doc.unsupported) throw new Error(doc.unsupported);
        const job = await this.jobFor(doc, op, {});
        const priority = doc.id === front?.id ? 'active' : 'normal';
        const { jobId, done } = await this.submit(null, job, { priority, wantsDraft: false });
        submitted.push(jobId);
        this.finishQueued(job, jobId, done);
      } catch (error) {
        this.setState({ message: `${doc.name}: ${messageOf(error)}` });
      }
    }
    return submitted;
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
    if (!target || target.opacity === percent) return;
    try {
      const historyName = `ML Retouch: ${opName(target.op)} opacity ${Math.round(percent)} %`;
      await this.adapter.commitOpacity(target.docId, target.layerId, percent, historyName);
      target.opacity = percent;
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

  /** After the event stream reconnects: what happened to each unfinished job meanwhile. */
  async resync() {
    const open = this.rows.filter((row) => !queue.isFinished(row));
    for (const row of open) {
      const status = await quietly(() => this.client.job(row.jobId));
      if (!status || this.settled(row.jobId)) continue; // its end came by event meanwhile
      this.rows = queue.applyStatus(this.rows, status);
      if (TERMINAL_EVENTS.has(status.state)) {
        this.finishWatch({ type: status.state, job_id: row.jobId, error: status.error });
      }
    }
    this.changed();
  }

  async documentOpened(doc) {
    await this.documentSelected(doc);
  }

  // Reading a document's pixels takes Photoshop's modal state (and, on a big file, its
  // progress dialog): a select or a brush stroke only notes the document; its pixels are
  // read when the user is idle (userIdle) or on Apply.
  async documentSelected(doc) {
    this.activeDocId = doc.id;
    this.idleTarget = doc;
    this.changed();
    this.placements.retryNow();
  }

  async documentClosed(docId) {
    this.uploads.closed(docId);
    this.placements.dropDocument(docId);
    if (this.idleTarget?.id === docId) this.idleTarget = null;
    if (this.activeDocId === docId) this.activeDocId = null;
    if (this.result?.docId === docId) this.result = null;
    this.changed();
    await quietly(() => this.client.stopPrecompute(docId));
  }

  async historyChanged(doc) {
    this.placements.retryNow();
    if (this.uploads.isCurrent(doc)) return;
    this.uploads.forget(doc.id);
    if (doc.id === this.activeDocId || this.activeDocId === null) this.idleTarget = doc;
  }

  /** The user has been idle: precompute the document in front, if it changed. */
  async userIdle() {
    this.placements.retryNow();
    const doc = this.idleTarget;
    this.idleTarget = null;
    if (!doc || doc.unsupported || (this.activeDocId !== null && doc.id !== this.activeDocId)) return;
    await this.uploads.precompute(doc);
  }

  /** Hooks the panel to the adapter's document events; returns the remover. */
  watchDocuments() {
    return this.adapter.watchDocuments({
      opened: (doc) => quietly(() => this.documentOpened(doc)),
      selected: (doc) => quietly(() => this.documentSelected(doc)),
      closed: (docId) => quietly(() => this.documentClosed(docId)),
      historyChanged: (doc) => quietly(() => this.historyChanged(doc)),
      idle: () => quietly(() => this.userIdle()),
    });
  }

  handleJobEvent(event) {
    if (this.settled(event.job_id)) return; // not ours, replayed once followed, or finished
    const rows = queue.applyEvent(this.rows, event);
    if (rows === this.rows) return; // stale seq
    this.rows = rows;
    if (TERMINAL_EVENTS.has(event.type)) {
      this.finishWatch(event);
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
    if (rows === this.rows) return; // unknown job (replayed once followed) or stale seq
    this.rows = rows;
    const job = this.jobs.get(header.job_id);
    if (job?.wantsDraft && !job.draft && !job.closed && DRAFT_LEVELS.has(header.level)) {
      job.draft = this.placeDraft(job, header);
    }
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
    this.setState({ phase, progress: 0, stage: null, etaS: null, message: '', draft: false });
    await quietly(() => this.adapter.showThumbnail(null));
    return this.attempt;
  }

  show(attempt, changes) {
    if (attempt === this.attempt) this.setState(changes);
  }

  fail(attempt, error) {
    if (attempt !== this.attempt) return;
    this.setState({ phase: 'failed', etaS: null, message: messageOf(error), draft: false });
    quietly(() => this.adapter.showThumbnail(null));
  }

  async jobFor(doc, op, { intensity = 1, params = {} }) {
    return {
      op,
      params,
      intensity,
      docId: doc.id,
      docName: doc.name,
      layerStackHash: doc.layerStackHash,
      imageId: await this.uploads.imageFor(doc),
    };
  }

  // The draft's pixels, fetched raw (the host may not decode JPEG), into the document as
  // the Apply's layer. A draft that cannot be placed is skipped: the final still comes.
  async placeDraft(job, header) {
    try {
      const raw = await this.client.preview(header.job_id, header.seq, { format: 'raw' });
      if (job.closed) return null;
      const draft = await this.adapter.placeDraft(job.docId, {
        name: opName(job.op),
        historyName: `ML Retouch: ${opName(job.op)}`,
        pixels: pixelsOf(raw),
      });
      if (header.job_id === this.currentJobId) this.setState({ draft: true });
      return draft;
    } catch {
      return null;
    }
  }

  // Runs the job and, when it is done, places its pixels: in place of its draft, or as a
  // new layer, or with `place` (Refine). Resolves with { jobId, layerId }, or null when
  // the job was cancelled; throws when it failed or its result could not be placed (the
  // draft is then removed: a blurry draft must never stay behind as the result).
  async perform(attempt, job, { priority, wantsDraft, place }) {
    const { jobId, done } = await this.submit(attempt, job, { priority, wantsDraft });
    const finished = done ? { type: 'done' } : await this.waitFor(jobId);
    const entry = this.jobs.get(jobId);
    entry.closed = true;
    const draft = entry.draft ? await entry.draft : null;
    try {
      if (finished.type !== 'done') {
        if (draft) await this.removeDraft(job.docId, jobId, draft);
        if (finished.type === 'failed') throw new Error(finished.error?.message || 'The job failed.');
        this.show(attempt, { phase: 'idle', etaS: null, message: 'Cancelled.', draft: false });
        return null;
      }
      this.show(attempt, { phase: 'placing', progress: 1, etaS: 0 });
      const commit = place
        ? async () => place(await this.resultPixels(jobId))
        : () => this.commitFinal(job, jobId, draft ?? undefined);
      let layerId;
      try {
        layerId = await this.placeOrWait(jobId, job.docId, commit, () =>
          this.show(attempt, { phase: 'placing', message: BUSY_MESSAGE }),
        );
      } catch (error) {
        if (draft) await this.removeDraft(job.docId, jobId, draft);
        throw error;
      }
      this.show(attempt, { phase: 'done', progress: 1, stage: null, etaS: 0, message: '', draft: false });
      return { jobId, layerId };
    } finally {
      this.forgetJob(jobId);
    }
  }

  // A queued document's job: placed in its document when done, reported on its row.
  async finishQueued(job, jobId, done) {
    const finished = done ? { type: 'done' } : await this.waitFor(jobId);
    this.forgetJob(jobId);
    if (finished.type !== 'done') return;
    const commit = () => this.commitFinal(job, jobId);
    try {
      await this.placeOrWait(jobId, job.docId, commit, () => this.markPlacement(jobId, 'waiting'));
      this.markPlacement(jobId, 'placed');
    } catch (error) {
      this.rows = queue.setPlacement(this.rows, jobId, 'failed', messageOf(error));
      this.changed();
    }
  }

  async resultPixels(jobId) {
    return pixelsOf(await this.client.result(jobId, { format: 'raw' }));
  }

  // The job's full-resolution result into its document, in place of `draft` if given.
  async commitFinal(job, jobId, draft) {
    return this.adapter.commitResult(job.docId, {
      name: opName(job.op),
      historyName: `ML Retouch: ${opName(job.op)}`,
      pixels: await this.resultPixels(jobId),
      draft,
    });
  }

  // `commit` now; when Photoshop is modal, the result waits in `placements` (waiting()
  // says so) and goes in when Photoshop is free. Rejects when it cannot be placed at all.
  async placeOrWait(jobId, docId, commit, waiting) {
    try {
      return await commit();
    } catch (error) {
      if (!isModalBusy(error)) throw error;
      waiting();
      return this.placements.add({ key: jobId, docId, attempt: commit });
    }
  }

  // A draft whose job failed, was cancelled or whose final cannot go in. If Photoshop is
  // modal, the removal waits like a result would.
  async removeDraft(docId, jobId, draft) {
    const discard = () => this.adapter.discardDraft(docId, draft);
    await quietly(() => this.placeOrWait(`${jobId}:draft`, docId, discard, () => {}));
  }

  markPlacement(jobId, placement) {
    this.rows = queue.setPlacement(this.rows, jobId, placement);
    this.changed();
  }

  async submit(attempt, job, { priority, wantsDraft }) {
    if (attempt !== null) this.show(attempt, { phase: 'running' });
    const answer = await this.client.submit({
      op: job.op,
      image_id: job.imageId,
      intensity: job.intensity,
      params: job.params,
      priority,
      document_id: job.docId,
      layer_stack_hash: job.layerStackHash,
      preview: { progressive: true, stream_steps: this.streamSteps },
    });
    const jobId = answer.job_id;
    const done = answer.cached || answer.state === 'done';
    this.jobs.set(jobId, { docId: job.docId, op: job.op, wantsDraft, draft: null, closed: false, finished: null });
    const row = queue.createRow({
      jobId,
      docId: job.docId,
      name: `${opName(job.op)} · ${job.docName}`,
      priority,
      state: answer.state,
    });
    this.rows = [...this.rows, row];
    if (attempt !== null && attempt === this.attempt) this.currentJobId = jobId;
    // The sidecar replays what went by before now (state events, the latest preview).
    if (!done) this.events?.follow?.(jobId);
    this.changed();
    return { jobId, done };
  }

  // Not ours, or ended and taken: its row is finished and nothing waits on it. A second
  // `done` (after a restart, a reconnect, a resync) must not place or remove a layer again.
  settled(jobId) {
    const row = this.rows.find((candidate) => candidate.jobId === jobId);
    return !row || (queue.isFinished(row) && !this.watches.has(jobId));
  }

  forgetJob(jobId) {
    this.jobs.delete(jobId);
    this.events?.unfollow?.(jobId);
  }

  waitFor(jobId) {
    const finished = this.jobs.get(jobId)?.finished;
    if (finished) return Promise.resolve(finished);
    return new Promise((resolve) => {
      this.watches.set(jobId, (event) => {
        this.watches.delete(jobId);
        resolve(event);
      });
    });
  }

  finishWatch(event) {
    const watch = this.watches.get(event.job_id);
    if (watch) watch(event);
    else {
      const entry = this.jobs.get(event.job_id);
      if (entry) entry.finished = event;
    }
  }
}

module.exports = { Panel, OP_NAMES, messageOf, opName };

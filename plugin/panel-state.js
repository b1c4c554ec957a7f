// The panel's flows (Apply, slider, Refine, the batch queue, document events), written
// against the adapter contract and the sidecar client, so it runs under Node with fakes
// and in a browser with the canvas adapter.
//
// The pieces: `jobs` (job-tracking.js) the submitted jobs, their queue rows and their
// ends; `layers` (result-layers.js) their pixels into the documents, draft then final,
// waiting while Photoshop is busy; `uploads` (document-images.js) the documents' images
// on the sidecar and their background precompute. Kept here: the panel's visible state
// (`state`, for the latest Apply or Refine only), the layer the slider acts on
// (`result`) and the document in front.
//
// Events: `events` is the ui's relay over an EventStream (events.js), or anything with
// listen({ onEvent(event), onPreview(header, jpeg) }) → remover and follow(jobId) /
// unfollow(jobId). Previews after the draft, and step previews when streamSteps is on,
// only reach the panel's thumbnail.
'use strict';

const { checkAdapter } = require('./adapter-contract.js');
const { DocumentImages } = require('./document-images.js');
const { JobTracking, quietly } = require('./job-tracking.js');
const { ResultLayers } = require('./result-layers.js');
const { DRAFT_LEVELS, isTerminal, opName } = require('./contract.js');

const BUSY_MESSAGE = 'Photoshop is busy (a dialog or another plugin); the result goes in when it is free.';

// The sidecar's message, or a plain sentence; never a stack trace.
function messageOf(error) {
  const message = error?.error?.message ?? error?.message;
  return typeof message === 'string' && message ? message.split('\n')[0] : 'Something went wrong.';
}

class Panel {
  constructor({ adapter, client, events, onChange = () => {}, precomputeOps, precompute = true } = {}) {
    this.adapter = checkAdapter(adapter);
    this.client = client;
    this.onChange = onChange;
    this.streamSteps = false;
    this.state = { phase: 'idle', progress: 0, stage: null, etaS: null, message: '', draft: false };
    this.activeDocId = null;
    this.result = null; // the layer the slider and Refine act on, with the job that made it
    this.attempt = 0; // the latest Apply/Refine: only it drives `state`
    this.currentJobId = null;
    this.jobs = new JobTracking({ client, events });
    this.layers = new ResultLayers({ adapter, client });
    this.uploads = new DocumentImages({
      adapter,
      client,
      precompute,
      ops: precomputeOps,
      frontId: () => this.activeDocId,
    });
    this.stopListening = events
      ? events.listen({
          onEvent: (event) => this.handleJobEvent(event),
          onPreview: (header, jpeg) => this.handlePreview(header, jpeg),
        })
      : () => {};
  }

  /** The queue rows, in submit order. */
  get rows() {
    return this.jobs.rows;
  }

  /** The queue rows in view order. */
  queueView() {
    return this.jobs.view(this.activeDocId);
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
        place: (jobId) => this.layers.replaceLayer(job, jobId, percent),
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
    if (await this.jobs.star(jobId)) this.changed();
  }

  async cancelJob(jobId = this.currentJobId) {
    await this.jobs.cancel(jobId);
  }

  /** After the event stream reconnects: what happened to each unfinished job meanwhile. */
  async resync() {
    await this.jobs.resync();
    this.changed();
  }

  async documentOpened(doc) {
    await this.documentSelected(doc);
  }

  // A select or a brush stroke only notes the document: its pixels are read when the
  // user is idle (userIdle) or on Apply (document-images.js).
  async documentSelected(doc) {
    this.activeDocId = doc.id;
    this.uploads.selected(doc);
    this.changed();
    this.layers.retryNow();
  }

  async documentClosed(docId) {
    this.uploads.closed(docId);
    this.layers.dropDocument(docId);
    if (this.activeDocId === docId) this.activeDocId = null;
    if (this.result?.docId === docId) this.result = null;
    this.changed();
    await quietly(() => this.client.stopPrecompute(docId));
  }

  async historyChanged(doc) {
    this.layers.retryNow();
    this.uploads.historyChanged(doc);
  }

  /** The user has been idle: precompute the document in front, if it changed. */
  async userIdle() {
    this.layers.retryNow();
    await this.uploads.idle();
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
    // Nothing for a job not ours or settled (replayed once followed, finished), or a stale seq.
    const row = this.jobs.event(event);
    if (!row) return;
    if (!isTerminal(event.type) && event.job_id === this.currentJobId) {
      this.setState({ progress: row.progress, stage: row.stage, etaS: row.etaS });
      return;
    }
    this.changed();
  }

  handlePreview(header, jpeg) {
    if (header.level === 'step' && !this.streamSteps) return;
    if (!this.jobs.preview(header, jpeg)) return; // unknown job (replayed once followed) or stale seq
    const job = this.jobs.job(header.job_id);
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

  // The draft layer (result-layers.js); the state says so while its Apply is the latest.
  async placeDraft(job, header) {
    const draft = await this.layers.placeDraft(job, header);
    if (draft && header.job_id === this.currentJobId) this.setState({ draft: true });
    return draft;
  }

  // Runs the job and, when it is done, places its pixels (result-layers.js): in place of
  // its draft, or as a new layer, or with `place` (Refine). Resolves with { jobId,
  // layerId }, or null when the job was cancelled; throws when it failed or its result
  // could not be placed (its draft is removed then, as when it is cancelled).
  async perform(attempt, job, { priority, wantsDraft, place }) {
    const { jobId, done } = await this.submit(attempt, job, { priority, wantsDraft });
    const finished = done ? { type: 'done' } : await this.jobs.waitFor(jobId);
    const entry = this.jobs.job(jobId);
    entry.closed = true;
    const draft = entry.draft ? await entry.draft : null;
    try {
      if (finished.type !== 'done') {
        if (draft) await this.layers.removeDraft(job.docId, jobId, draft);
        if (finished.type === 'failed') throw new Error(finished.error?.message || 'The job failed.');
        this.show(attempt, { phase: 'idle', etaS: null, message: 'Cancelled.', draft: false });
        return null;
      }
      this.show(attempt, { phase: 'placing', progress: 1, etaS: 0 });
      const layerId = await this.layers.placeResult(job, jobId, {
        draft,
        place,
        waiting: () => this.show(attempt, { phase: 'placing', message: BUSY_MESSAGE }),
      });
      this.show(attempt, { phase: 'done', progress: 1, stage: null, etaS: 0, message: '', draft: false });
      return { jobId, layerId };
    } finally {
      this.jobs.forget(jobId);
    }
  }

  // A queued document's job: placed in its document when done, reported on its row.
  async finishQueued(job, jobId, done) {
    const finished = done ? { type: 'done' } : await this.jobs.waitFor(jobId);
    this.jobs.forget(jobId);
    if (finished.type !== 'done') return;
    try {
      await this.layers.placeResult(job, jobId, { waiting: () => this.markPlacement(jobId, 'waiting') });
      this.markPlacement(jobId, 'placed');
    } catch (error) {
      this.markPlacement(jobId, 'failed', messageOf(error));
    }
  }

  markPlacement(jobId, placement, error) {
    this.jobs.setPlacement(jobId, placement, error);
    this.changed();
  }

  async submit(attempt, job, { priority, wantsDraft }) {
    if (attempt !== null) this.show(attempt, { phase: 'running' });
    const streamSteps = this.streamSteps;
    const { jobId, done } = await this.jobs.submit(job, { priority, wantsDraft, streamSteps });
    if (attempt !== null && attempt === this.attempt) this.currentJobId = jobId;
    this.changed();
    return { jobId, done };
  }
}

module.exports = { Panel, messageOf };

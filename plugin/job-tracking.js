// The jobs the panel submits and what becomes of each: its queue row (queue.js), what
// the panel keeps while it runs (its document, its draft layer) and, for whoever waits
// on it, its end (done, failed or cancelled). Starring, cancelling and the resync after
// a reconnect go through here too.
//
// Events come from `events` (the ui's relay over an EventStream, events.js, or a fake).
// A job's first events can go by before the answer to its POST /v1/jobs: the job is
// followed once it is known, and the sidecar then replays its history (its state events
// and latest preview), so no events are buffered for jobs not known yet. A job's end
// counts once: a second `done` (after a sidecar restart, a reconnect, a resync) finds
// the job settled and changes nothing.
'use strict';

const queue = require('./queue.js');
const { isTerminal, opName } = require('./contract.js');

// What `fn` resolves to, or undefined when it fails (a best-effort step: its failure
// changes nothing the user sees).
async function quietly(fn) {
  try {
    return await fn();
  } catch {
    return undefined;
  }
}

class JobTracking {
  constructor({ client, events } = {}) {
    this.client = client;
    this.events = events;
    this.rows = []; // the queue rows, in submit order
    this.jobs = new Map(); // jobId → { docId, op, wantsDraft, draft: Promise<Draft|null>, closed, finished }
    this.watches = new Map(); // jobId → resolve(terminal event)
  }

  /**
   * POST /v1/jobs for `job` ({op, imageId, intensity, params, docId, docName,
   * layerStackHash}); the job is tracked and, unless it is done already (a cached
   * result), followed. Resolves with { jobId, done }.
   */
  async submit(job, { priority, wantsDraft, streamSteps = false }) {
    const answer = await this.client.submit({
      op: job.op,
      image_id: job.imageId,
      intensity: job.intensity,
      params: job.params,
      priority,
      document_id: job.docId,
      layer_stack_hash: job.layerStackHash,
      // a draft only where one is shown: the sidecar then renders only the final
      preview: { progressive: Boolean(wantsDraft), stream_steps: streamSteps },
    });
    const jobId = answer.job_id;
    const done = answer.cached || answer.state === 'done';
    const name = `${opName(job.op)} · ${job.docName}`;
    this.add({ jobId, docId: job.docId, op: job.op, name, priority, state: answer.state, wantsDraft });
    if (!done) this.follow(jobId);
    return { jobId, done };
  }

  /** A job the sidecar accepted: its row, and what the panel keeps while it runs. */
  add({ jobId, docId, op, name, priority, state, wantsDraft }) {
    this.jobs.set(jobId, { docId, op, wantsDraft, draft: null, closed: false, finished: null });
    this.rows = [...this.rows, queue.createRow({ jobId, docId, name, priority, state })];
  }

  /** What the panel keeps for an unfinished job it waits on, or undefined. */
  job(jobId) {
    return this.jobs.get(jobId);
  }

  row(jobId) {
    return this.rows.find((candidate) => candidate.jobId === jobId);
  }

  /** The rows in view order: the document in front first (queue.order). */
  view(activeDocId) {
    return queue.order(this.rows, activeDocId);
  }

  // The sidecar replays what went by before now (state events, the latest preview).
  follow(jobId) {
    this.events?.follow?.(jobId);
  }

  // Not ours, or ended and taken: its row is finished and nothing waits on it.
  settled(jobId) {
    const row = this.row(jobId);
    return !row || (queue.isFinished(row) && !this.watches.has(jobId));
  }

  /**
   * A job event: its row updated and, for done, failed or cancelled, its waiter told.
   * Returns the job's row, or null when the event changed nothing (a job not ours or
   * settled, a stale seq).
   */
  event(event) {
    if (this.settled(event.job_id)) return null;
    const rows = queue.applyEvent(this.rows, event);
    if (rows === this.rows) return null;
    this.rows = rows;
    if (isTerminal(event.type)) this.finish(event);
    return this.row(event.job_id);
  }

  /** A preview: the row's thumbnail. False when it changed nothing (unknown job, stale seq). */
  preview(header, jpeg) {
    const rows = queue.applyPreview(this.rows, header, jpeg);
    if (rows === this.rows) return false;
    this.rows = rows;
    return true;
  }

  /** The rows of jobs not yet finished: after a reconnect, their end may have gone by. */
  unfinished() {
    return this.rows.filter((row) => !queue.isFinished(row));
  }

  /**
   * A job status (GET /v1/jobs/{id}) for the job of `jobId`: its row updated and, when it
   * has ended, its waiter told. False when the job was settled meanwhile (its end came by
   * event): a late answer must neither reopen its row nor end it twice.
   */
  status(jobId, status) {
    if (this.settled(jobId)) return false;
    this.rows = queue.applyStatus(this.rows, status);
    if (isTerminal(status.state)) this.finish({ type: status.state, job_id: jobId, error: status.error });
    return true;
  }

  /** After the event stream reconnects: what became of each unfinished job meanwhile. */
  async resync() {
    for (const row of this.unfinished()) {
      const status = await quietly(() => this.client.job(row.jobId));
      if (status) this.status(row.jobId, status);
    }
  }

  /** Stars the job's row as a hero (served next); false when there is nothing to reorder. */
  async star(jobId) {
    const row = this.row(jobId);
    const request = row && queue.star(row);
    if (!request) return false;
    await this.client.patch(request.jobId, request.body.priority);
    this.rows = this.rows.map((each) => (each.jobId === jobId ? { ...each, priority: 'hero' } : each));
    return true;
  }

  /** Cancels the job unless it has finished; its end comes as a `cancelled` event. */
  async cancel(jobId) {
    const row = this.row(jobId);
    const request = row && queue.cancel(row);
    if (request) await this.client.cancel(request.jobId);
  }

  /** Notes where the job's result is in its document: 'waiting', 'placed' or 'failed'. */
  setPlacement(jobId, placement, error) {
    this.rows = queue.setPlacement(this.rows, jobId, placement, error);
  }

  /** Resolves with the job's terminal event, at once when it has already come. */
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

  // The job's end, for whoever waits on it; kept for waitFor when nobody waits yet
  // (the end came before the answer to the submit was handled).
  finish(event) {
    const watch = this.watches.get(event.job_id);
    if (watch) watch(event);
    else {
      const entry = this.jobs.get(event.job_id);
      if (entry) entry.finished = event;
    }
  }

  /** The panel is done with the job: its row stays, its events are no longer followed. */
  forget(jobId) {
    this.jobs.delete(jobId);
    this.events?.unfollow?.(jobId);
  }
}

module.exports = { JobTracking, quietly };

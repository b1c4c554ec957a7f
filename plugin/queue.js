// The batch queue as the panel shows it. Pure functions over plain rows: nothing here
// talks to the sidecar; star() and cancel() say which request to send.
'use strict';

const { PRIORITIES, isTerminal } = require('./contract.js');

// The sidecar's service order, 1 first. The active document's rows come before all of these.
const PRIORITY_RANK = Object.fromEntries(PRIORITIES.map((priority, index) => [priority, index + 1]));

function createRow({ jobId, docId, name, priority = 'normal', state = 'queued', submittedAt = Date.now() }) {
  return {
    jobId,
    docId,
    name,
    state,
    progress: state === 'done' ? 1 : 0,
    stage: null,
    etaS: null,
    priority,
    thumbnail: null,
    error: null,
    placement: null, // null | 'waiting' (Photoshop was busy) | 'placed' | 'failed'
    seq: -1,
    submittedAt,
    finishedAt: state === 'done' ? submittedAt : null,
  };
}

function isFinished(row) {
  return isTerminal(row.state);
}

// Background work never delays anything, so it stays last even for the document in front.
function rank(row, activeDocId) {
  if (row.priority === 'background') return PRIORITY_RANK.background;
  if (activeDocId != null && row.docId === activeDocId) return 0;
  return PRIORITY_RANK[row.priority] ?? PRIORITY_RANK.normal;
}

/** Unfinished rows in service order (FIFO within a rank), then finished rows, newest first. */
function order(rows, activeDocId) {
  const waiting = rows
    .filter((row) => !isFinished(row))
    .sort((a, b) => rank(a, activeDocId) - rank(b, activeDocId) || a.submittedAt - b.submittedAt);
  const finished = rows
    .filter(isFinished)
    .sort((a, b) => (b.finishedAt ?? b.submittedAt) - (a.finishedAt ?? a.submittedAt));
  return [...waiting, ...finished];
}

function eventTime(event) {
  const parsed = Date.parse(event.ts);
  return Number.isNaN(parsed) ? Date.now() : parsed;
}

function changesFor(row, event) {
  switch (event.type) {
    case 'queued':
    case 'requeued':
      return { state: 'queued' };
    case 'started':
      return { state: 'running' };
    case 'stage':
      return { stage: event.stage };
    case 'progress':
      return { progress: event.progress, stage: event.stage ?? row.stage, etaS: event.eta_s ?? null };
    case 'done':
      return { state: 'done', progress: 1, etaS: 0, finishedAt: eventTime(event) };
    case 'failed':
      return {
        state: 'failed',
        error: event.error?.message ?? 'The job failed.',
        finishedAt: eventTime(event),
      };
    case 'cancelled':
      return { state: 'cancelled', etaS: null, finishedAt: eventTime(event) };
    default:
      return {};
  }
}

function updateRow(rows, jobId, seq, changes) {
  const index = rows.findIndex((row) => row.jobId === jobId);
  if (index === -1 || !(seq > rows[index].seq)) return rows;
  const next = rows.slice();
  next[index] = { ...rows[index], ...changes, seq };
  return next;
}

/** Rows with the event's job updated; the same array when the job is unknown or the seq stale. */
function applyEvent(rows, event) {
  const row = rows.find((candidate) => candidate.jobId === event.job_id);
  if (!row) return rows;
  return updateRow(rows, event.job_id, event.seq, changesFor(row, event));
}

/** Rows with the preview's JPEG as the job's thumbnail (previews share the job's seq). */
function applyPreview(rows, header, jpeg) {
  return updateRow(rows, header.job_id, header.seq, { thumbnail: jpeg });
}

/**
 * Rows with the job's state taken from a GET /v1/jobs/{id} answer: after a reconnect,
 * events may have been missed. Keeps the row's seq, so later events still apply.
 */
function applyStatus(rows, status) {
  const index = rows.findIndex((row) => row.jobId === status.job_id);
  if (index === -1) return rows;
  const row = rows[index];
  const changes = {
    state: status.state,
    progress: status.state === 'done' ? 1 : (status.progress ?? row.progress),
    stage: status.stage ?? row.stage,
    etaS: status.eta_s ?? null,
    priority: status.priority ?? row.priority,
    error: status.error?.message ?? row.error,
  };
  if (isFinished({ state: status.state }) && row.finishedAt == null) {
    const finished = Date.parse(status.finished_at ?? '');
    changes.finishedAt = Number.isNaN(finished) ? Date.now() : finished;
  }
  const next = rows.slice();
  next[index] = { ...row, ...changes };
  return next;
}

/** The PATCH that stars the row as a hero, or null when there is nothing to reorder. */
function star(row) {
  if (isFinished(row) || row.priority === 'hero' || row.priority === 'active') return null;
  return { method: 'PATCH', path: `/v1/jobs/${row.jobId}`, jobId: row.jobId, body: { priority: 'hero' } };
}

/** The DELETE that cancels the row's job, or null when it has already finished. */
function cancel(row) {
  if (isFinished(row)) return null;
  return { method: 'DELETE', path: `/v1/jobs/${row.jobId}`, jobId: row.jobId };
}

/** Rows with the job's placement in its document noted ('waiting', 'placed', 'failed'). */
function setPlacement(rows, jobId, placement, error) {
  const index = rows.findIndex((row) => row.jobId === jobId);
  if (index === -1) return rows;
  const next = rows.slice();
  next[index] = { ...rows[index], placement, error: error ?? rows[index].error };
  return next;
}

module.exports = { createRow, isFinished, order, applyEvent, applyPreview, applyStatus, setPlacement, star, cancel };

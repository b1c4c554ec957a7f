// A job's pixels into its document, through the adapter (adapter-contract.js).
//
// Draft → final: the first progressive level of an Apply (the draft, or the next level
// when the draft went by before the job was known) goes into the document at once as the
// Apply's layer; the full-resolution result replaces it when the job is done. The
// adapter keeps that to one history step. A draft whose job fails or is cancelled, or
// whose final cannot go in, is taken out again: a blurry draft must never stay behind
// as the result. Refine puts its pixels into the Apply's layer.
//
// Photoshop refuses changes while it is modal (a dialog is open, another plugin is
// busy): a result then waits in `placements` (placements.js) and goes in when Photoshop
// is free; it is never dropped while its document is open. A draft is placed at once or
// not at all.
'use strict';

const { Placements, isModalBusy } = require('./placements.js');
const { opName } = require('./contract.js');

function pixelsOf({ bytes, width, height, channels, depth }) {
  return { bytes, width, height, channels, depth };
}

class ResultLayers {
  constructor({ adapter, client }) {
    this.adapter = adapter;
    this.client = client;
    this.placements = new Placements();
  }

  // The draft's pixels, fetched raw (the host may not decode JPEG), into the document as
  // the Apply's layer. `job` is the job's entry in job-tracking.js: once it is closed
  // (the job ended meanwhile) the draft is not placed. Resolves with the Draft, or null
  // when it was skipped: a draft that cannot be placed is not tried again, the final
  // still comes.
  async placeDraft(job, header) {
    try {
      const raw = await this.client.preview(header.job_id, header.seq, { format: 'raw' });
      if (job.closed) return null;
      return await this.adapter.placeDraft(job.docId, {
        name: opName(job.op),
        historyName: `ML Retouch: ${opName(job.op)}`,
        pixels: pixelsOf(raw),
      });
    } catch {
      return null;
    }
  }

  async resultPixels(jobId) {
    return pixelsOf(await this.client.result(jobId, { format: 'raw' }));
  }

  // The job's full-resolution result into its document, in place of `draft` if given.
  // Resolves with the layer's id.
  async commitFinal(job, jobId, draft) {
    return this.adapter.commitResult(job.docId, {
      name: opName(job.op),
      historyName: `ML Retouch: ${opName(job.op)}`,
      pixels: await this.resultPixels(jobId),
      draft,
    });
  }

  // Refine: the job's result into the layer of the Apply it refines, at full opacity.
  async replaceLayer(job, jobId, percent) {
    const historyName = `ML Retouch: Refine ${opName(job.op)} at ${Math.round(percent)} %`;
    const pixels = await this.resultPixels(jobId);
    await this.adapter.replaceResult(job.docId, job.layerId, { historyName, pixels });
    return job.layerId;
  }

  // `commit` now; when Photoshop is modal, the result waits in `placements` (waiting()
  // says so) and goes in when Photoshop is free. Rejects when it cannot be placed at all.
  async placeOrWait(key, docId, commit, waiting) {
    try {
      return await commit();
    } catch (error) {
      if (!isModalBusy(error)) throw error;
      waiting();
      return this.placements.add({ key, docId, attempt: commit });
    }
  }

  // The done job's result into its document: in place of `draft` (or as a new layer), or
  // by `place(jobId)` (Refine). Resolves with the layer's id; when it cannot go in, the
  // draft is removed and the error thrown.
  async placeResult(job, jobId, { draft, place, waiting }) {
    const commit = place ? () => place(jobId) : () => this.commitFinal(job, jobId, draft ?? undefined);
    try {
      return await this.placeOrWait(jobId, job.docId, commit, waiting);
    } catch (error) {
      if (draft) await this.removeDraft(job.docId, jobId, draft);
      throw error;
    }
  }

  // A draft whose job failed, was cancelled or whose final cannot go in. If Photoshop is
  // modal, the removal waits like a result would. Never rejects.
  async removeDraft(docId, jobId, draft) {
    const discard = () => this.adapter.discardDraft(docId, draft);
    try {
      await this.placeOrWait(`${jobId}:draft`, docId, discard, () => {});
    } catch {
      // the layer stays; nothing more the panel can do about it
    }
  }

  /** Photoshop answered (a document event, the user idle): what waits is tried now. */
  retryNow() {
    this.placements.retryNow();
  }

  /** The document closed: what waited for it cannot go in. */
  dropDocument(docId) {
    this.placements.dropDocument(docId);
  }
}

module.exports = { ResultLayers, pixelsOf };

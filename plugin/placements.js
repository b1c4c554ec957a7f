// Results (and draft removals) that Photoshop could not take because it was modal: a
// dialog open, another plugin's command running. Each waits here and is tried again
// with backoff, and at once whenever Photoshop shows it is free again (a document event,
// the user idle), until it goes in, fails for another reason, or its document closes.
// Nothing finished is dropped while its document is open.
'use strict';

const { isModalBusy } = require('./modal.js');

const RETRY_DELAYS_MS = [2000, 5000, 10000, 30000];

class Placements {
  constructor({ delaysMs = RETRY_DELAYS_MS } = {}) {
    this.delaysMs = delaysMs;
    this.waiting = new Map(); // key → { docId, attempt, resolve, reject, tries, timer, running }
  }

  get size() {
    return this.waiting.size;
  }

  has(key) {
    return this.waiting.has(key);
  }

  /** Waits for `attempt()` to succeed; rejects when it fails other than modal-busy or its document closes. */
  add({ key, docId, attempt }) {
    return new Promise((resolve, reject) => {
      const entry = { key, docId, attempt, resolve, reject, tries: 0, timer: null, running: false };
      this.waiting.set(key, entry);
      this.schedule(entry);
    });
  }

  /** Photoshop answered (an event, the user idle): try everything waiting now. */
  retryNow() {
    for (const entry of [...this.waiting.values()]) this.tryOne(entry);
  }

  /** The document closed: what waited for it cannot go in. */
  dropDocument(docId) {
    for (const entry of [...this.waiting.values()]) {
      if (entry.docId !== docId) continue;
      this.finish(entry);
      entry.reject(new Error('The document was closed before the result could be placed.'));
    }
  }

  schedule(entry) {
    const delay = this.delaysMs[Math.min(entry.tries, this.delaysMs.length - 1)];
    entry.timer = setTimeout(() => this.tryOne(entry), delay);
  }

  finish(entry) {
    if (entry.timer !== null) clearTimeout(entry.timer);
    entry.timer = null;
    this.waiting.delete(entry.key);
  }

  async tryOne(entry) {
    if (entry.running || this.waiting.get(entry.key) !== entry) return;
    entry.running = true;
    if (entry.timer !== null) clearTimeout(entry.timer);
    entry.timer = null;
    try {
      const value = await entry.attempt();
      if (this.waiting.get(entry.key) !== entry) return;
      this.finish(entry);
      entry.resolve(value);
    } catch (error) {
      if (this.waiting.get(entry.key) !== entry) return;
      if (isModalBusy(error)) {
        entry.tries += 1;
        this.schedule(entry);
      } else {
        this.finish(entry);
        entry.reject(error);
      }
    } finally {
      entry.running = false;
    }
  }
}

module.exports = { Placements, isModalBusy, RETRY_DELAYS_MS };

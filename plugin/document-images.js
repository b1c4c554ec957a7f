// Which sidecar image each open document is, and its background precompute: one upload
// per layer-stack state, shared by everyone who asks while it is under way, and none
// for a state the sidecar already holds.
//
// Reading a document's pixels takes Photoshop's modal state (and, on a big file, its
// progress dialog): a select or a brush stroke only notes the document; its pixels are
// read when the user is idle (idle()) or on Apply (imageFor()).
'use strict';

const STATES_REMEMBERED = 64;

class DocumentImages {
  constructor({ adapter, client, precompute = true, ops, frontId = () => null }) {
    this.adapter = adapter;
    this.client = client;
    this.enabled = precompute; // off: documents are uploaded on Apply only
    this.ops = ops;
    this.frontId = frontId;
    this.images = new Map(); // docId → { layerStackHash, imageId: Promise<string> }
    this.precomputes = new Map(); // docId → { next, done }
    this.seen = new Map(); // `${docId}|${layerStackHash}` → imageId, oldest first
    this.nextIdle = null; // the document to precompute when the user pauses
  }

  /** True when the document's pixels as they are now are already uploaded (or uploading). */
  isCurrent(doc) {
    return this.images.get(doc.id)?.layerStackHash === doc.layerStackHash;
  }

  forget(docId) {
    this.images.delete(docId);
  }

  /** A closed document: its states are gone for good (a reopened file gets a new id). */
  closed(docId) {
    this.images.delete(docId);
    for (const key of [...this.seen.keys()]) if (key.startsWith(`${docId}|`)) this.seen.delete(key);
    if (this.nextIdle?.id === docId) this.nextIdle = null;
  }

  /** A document opened or brought to the front: precomputed when the user pauses. */
  selected(doc) {
    this.nextIdle = doc;
  }

  /** A document's history changed: when its pixels did, it is read again at the next pause. */
  historyChanged(doc) {
    if (this.isCurrent(doc)) return;
    this.forget(doc.id);
    const front = this.frontId();
    if (front == null || doc.id === front) this.nextIdle = doc;
  }

  /** The user has been idle: precompute the document in front, if it changed. */
  async idle() {
    const doc = this.nextIdle;
    this.nextIdle = null;
    const front = this.frontId();
    if (!doc || doc.unsupported || (front != null && doc.id !== front)) return;
    await this.precompute(doc);
  }

  // The sidecar's image id for the document as it is; the upload is shared by everyone
  // who asks while it is under way, and skipped while the layer stack is unchanged.
  imageFor(doc) {
    const known = this.images.get(doc.id);
    if (known?.layerStackHash === doc.layerStackHash) return known.imageId;
    const imageId = this.stateSeenBefore(doc).then(
      (seen) => seen ?? this.upload(doc).then((id) => this.remember(doc, id)),
    );
    const entry = { layerStackHash: doc.layerStackHash, imageId };
    this.images.set(doc.id, entry);
    imageId.catch(() => {
      if (this.images.get(doc.id) === entry) this.images.delete(doc.id);
    });
    return imageId;
  }

  // A layer-stack state this panel uploaded before (undo, redo, stepping back in
  // history): its image id, when HEAD /v1/images/{id} says the sidecar still has it.
  async stateSeenBefore(doc) {
    const imageId = this.seen.get(`${doc.id}|${doc.layerStackHash}`);
    if (!imageId) return null;
    return (await this.client.hasImage(imageId).catch(() => false)) ? imageId : null;
  }

  // One read, one upload; `release` (where the adapter gives one) frees the host's copy.
  async upload(doc) {
    const pixels = await this.adapter.readPixels(doc.id);
    try {
      return (await this.client.uploadRaw(pixels.bytes, pixels)).image_id;
    } finally {
      pixels.release?.();
    }
  }

  remember(doc, imageId) {
    const key = `${doc.id}|${doc.layerStackHash}`;
    this.seen.delete(key);
    this.seen.set(key, imageId);
    if (this.seen.size > STATES_REMEMBERED) this.seen.delete(this.seen.keys().next().value);
    return imageId;
  }

  // At most one precompute per document under way; history changes that arrive meanwhile
  // collapse into one more run with the newest state (a brush stroke per second must not
  // mean an upload per second).
  precompute(doc) {
    if (!this.enabled) return Promise.resolve();
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
        await this.precomputeNow(target).catch(() => {});
      }
      this.precomputes.delete(doc.id);
    })();
    return slot.done;
  }

  async precomputeNow(doc) {
    const imageId = await this.imageFor(doc);
    // Switched away, closed or edited while uploading: precompute now would stop the
    // precompute of the document in front, or work on stale pixels.
    const front = this.frontId();
    if (front != null && front !== doc.id) return;
    if (this.images.get(doc.id)?.layerStackHash !== doc.layerStackHash) return;
    await this.client.precompute({
      imageId,
      documentId: doc.id,
      layerStackHash: doc.layerStackHash,
      ops: this.ops,
    });
  }
}

module.exports = { DocumentImages };

// Photoshop's notifications as the adapter contract's document events (opened, selected,
// closed, historyChanged, idle: adapter-contract.js), for photoshop-adapter.js.
//
// What a notification's descriptor holds is not documented event by event, so the
// document is read from the DOM after it (the one in front, or the descriptor's
// documentID when it has one), and closes are found by which documents are gone.
// The user going idle is core's UI notification userIdle (23.3), after
// setUserIdleTime seconds; it fires again with idleEnd when they come back.
'use strict';

const { list, sameId, documentInfo } = require('./layer-stack.js');

const NOTIFICATIONS = ['open', 'select', 'close', 'historyStateChanged'];
const IDLE_SECONDS = 3; // the user idle this long: time to read a changed document

// A listener Photoshop refuses leaves the panel without that event, nothing more.
function quiet(fn) {
  try {
    Promise.resolve(fn()).catch(() => {});
  } catch {
    // refused at once
  }
}

/** Calls the listener's methods as Photoshop's documents change; returns the remover. */
function watchDocuments({ app, action, core, constants }, listener) {
  const known = new Set(list(app.documents).map((doc) => doc.id));
  const call = (name, value) => {
    if (typeof listener[name] !== 'function') return;
    Promise.resolve()
      .then(() => listener[name](value))
      .catch(() => {});
  };
  const openDocument = (docId) => list(app.documents).find((doc) => sameId(doc.id, docId)) ?? null;
  const onClose = (descriptor) => {
    const open = new Set(list(app.documents).map((doc) => doc.id));
    const closed = [...known].filter((id) => !open.has(id) || sameId(id, descriptor?.documentID));
    for (const id of closed) {
      known.delete(id);
      call('closed', id);
    }
  };
  const handler = (event, descriptor) => {
    if (event === 'close') return onClose(descriptor);
    if (event === 'select' && descriptor?._target?.[0]?._ref !== 'document') return;
    const byId = event === 'historyStateChanged' ? openDocument(descriptor?.documentID) : null;
    const doc = byId ?? (list(app.documents).length ? app.activeDocument : null);
    if (!doc) return;
    const info = documentInfo(doc, constants);
    if (!known.has(doc.id)) {
      known.add(doc.id);
      call('opened', info);
    } else if (event === 'select') call('selected', info);
    else if (event === 'historyStateChanged') call('historyChanged', info);
  };
  const onIdle = (event, descriptor) => {
    if (!descriptor?.idleEnd) call('idle');
  };
  const watchesIdle = typeof core.addNotificationListener === 'function';
  quiet(() => action.addNotificationListener(NOTIFICATIONS, handler));
  if (watchesIdle) {
    quiet(() => core.setUserIdleTime?.(IDLE_SECONDS));
    quiet(() => core.addNotificationListener('UI', ['userIdle'], onIdle));
  }
  return () => {
    quiet(() => action.removeNotificationListener(NOTIFICATIONS, handler));
    if (watchesIdle) quiet(() => core.removeNotificationListener('UI', ['userIdle'], onIdle));
  };
}

module.exports = { watchDocuments, NOTIFICATIONS, IDLE_SECONDS };

// The intensity slider's drag in Photoshop (photoshop-adapter.js): live opacity changes
// inside one interactive modal scope with the document's history suspended.
'use strict';

const { inOneStep } = require('./modal.js');

const DRAG_HISTORY_NAME = 'ML Retouch: opacity';
const DRAG_IDLE_MS = 2000;

// The slider: a drag is one modal scope with the document's history suspended, so the
// live values make no history steps (Photoshop makes a step for every change made in
// a modal scope otherwise: a drag would flood the History panel and push the user's
// own steps out of it). The drag ends rolled back, leaving no step, or on release
// (commitOpacity) as one step with the caller's name. `interactive` keeps Photoshop
// from putting up its progress dialog while the drag lasts; while it lasts, other
// changes to the document wait, which is why it also ends after DRAG_IDLE_MS without
// a new value. The user can end it with Photoshop's "Cancel Plugin Command" (Esc):
// onCancel and isCancelled end it rolled back, and its release then makes no step.
function startOpacityDrag({ docId, layerId, modal, requireDocument, setOpacity, idleMs = DRAG_IDLE_MS }) {
  const session = { docId, layerId, value: null, finish: null, stop: false, ended: false, wake: null, waiters: [] };
  session.cancelled = false;

  // Resolves true after idleMs without news, false as soon as there is some.
  const nextSignal = () => {
    if (session.value !== null || session.finish || session.stop) return Promise.resolve(false);
    return new Promise((resolve) => {
      const timer = setTimeout(() => resolve(true), idleMs);
      session.wake = () => {
        clearTimeout(timer);
        resolve(false);
      };
    }).finally(() => {
      session.wake = null;
    });
  };

  const applyValues = async (doc, context) => {
    for (;;) {
      const idle = await nextSignal();
      if (context.isCancelled) session.cancelled = true;
      if (session.cancelled) return;
      if (session.value !== null) {
        const value = session.value;
        const waiting = session.waiters.splice(0);
        session.value = null;
        try {
          await setOpacity(doc.id, layerId, value);
        } catch (error) {
          for (const waiter of waiting) waiter.reject(error);
          throw error;
        }
        for (const waiter of waiting) waiter.resolve();
      }
      if (idle || session.finish || session.stop) return;
    }
  };

  const run = async (context) => {
    const doc = requireDocument(docId);
    const { hostControl } = context;
    context.onCancel = () => {
      session.cancelled = true;
      session.wake?.();
    };
    const suspension = await hostControl.suspendHistory({ documentID: doc.id, name: DRAG_HISTORY_NAME });
    try {
      await applyValues(doc, context);
    } finally {
      await hostControl.resumeHistory(suspension, false);
    }
    const finish = session.finish;
    session.ended = true;
    if (session.cancelled || context.isCancelled) throw new Error('The opacity change was cancelled.');
    if (!finish) return;
    await inOneStep(context, doc.id, finish.historyName, () => setOpacity(doc.id, layerId, finish.percent));
  };

  const settle = (error) => {
    for (const waiter of session.waiters.splice(0)) (error ? waiter.reject(error) : waiter.resolve());
  };
  session.done = modal(DRAG_HISTORY_NAME, run, { interactive: true }).finally(() => {
    session.ended = true;
  });
  session.done.then(() => settle(), settle);

  session.update = (percent) => {
    session.value = percent;
    const applied = new Promise((resolve, reject) => session.waiters.push({ resolve, reject }));
    session.wake?.();
    return applied;
  };
  // With `finish` ({percent, historyName}) the drag ends as one step; without, rolled back.
  session.end = (finish) => {
    if (finish) session.finish = finish;
    else session.stop = true;
    session.wake?.();
    return session.done;
  };
  return session;
}

module.exports = { startOpacityDrag, DRAG_HISTORY_NAME, DRAG_IDLE_MS };

// Photoshop's modal scopes for the adapter: every document change runs inside
// core.executeAsModal, one at a time, and inside one suspendHistory/resumeHistory pair.
//
// executeAsModal is refused while Photoshop itself or another plugin is modal (a dialog
// is open, another plugin's command runs): the promise rejects with error.number 9, at
// once before Photoshop 25.10, and after the `timeOut` (seconds) the call passes from
// 25.10 on.
// Such a refusal is tried again with backoff; when Photoshop stays busy past the last
// try, the caller gets a ModalBusyError (code 'modal_busy') and decides what waits.
'use strict';

const MODAL_BUSY_NUMBER = 9;
// Waits between tries: about 15 s in all before the caller hears of it.
const RETRY_DELAYS_MS = [250, 500, 1000, 2000, 4000, 8000];
// How long Photoshop 25.10+ itself waits for the modal state on each try (seconds).
const MODAL_TIMEOUT_S = 2;

class ModalBusyError extends Error {
  constructor(commandName, cause) {
    super('Photoshop is busy (a dialog or another plugin is in the way); the change waits until it is free.');
    this.name = 'ModalBusyError';
    this.code = 'modal_busy';
    this.commandName = commandName;
    this.cause = cause;
  }
}

/** True for executeAsModal's refusal because another modal scope is open. */
function isModalBusy(error) {
  if (!error) return false;
  if (error.code === 'modal_busy' || error.number === MODAL_BUSY_NUMBER) return true;
  // "host is in a modal state" (before 25.10), "Plugin: … is running a modal command" (25.10+)
  return typeof error.message === 'string' && /modal state|running a modal command/i.test(error.message);
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Queues executeAsModal calls (Photoshop refuses a second modal scope while one is open)
 * and tries a refused one again. `timeOut` is passed where the host takes it.
 * Only a refusal before `fn` began is tried again: an error thrown by `fn` is the
 * caller's at once.
 */
function createModalRunner(core, { takesTimeOut = false, delaysMs = RETRY_DELAYS_MS, wait = sleep } = {}) {
  let tail = Promise.resolve();
  const attempt = async (commandName, fn, options, delays) => {
    for (let tries = 0; ; tries++) {
      let began = false;
      try {
        const scope = { commandName, ...options };
        if (takesTimeOut) scope.timeOut = MODAL_TIMEOUT_S;
        return await core.executeAsModal((context, descriptor) => {
          began = true;
          return fn(context, descriptor);
        }, scope);
      } catch (error) {
        if (began || !isModalBusy(error)) throw error;
        if (tries >= delays.length) throw new ModalBusyError(commandName, error);
        await wait(delays[tries]);
      }
    }
  };
  // `retry: false`: a refusal is the caller's at once (as a ModalBusyError).
  return (commandName, fn, { retry = true, ...options } = {}) => {
    const run = tail.then(() => attempt(commandName, fn, options, retry ? delaysMs : []));
    tail = run.catch(() => {});
    return run;
  };
}

// One history step named `name` around `change`; rolled back if it throws.
async function inOneStep(context, documentID, name, change) {
  const { hostControl } = context;
  const suspension = await hostControl.suspendHistory({ documentID, name });
  let value;
  try {
    value = await change();
  } catch (error) {
    try {
      await hostControl.resumeHistory(suspension, false);
    } catch {
      // the rollback failing must not hide why the change failed
    }
    throw error;
  }
  await hostControl.resumeHistory(suspension, true);
  return value;
}

module.exports = { createModalRunner, inOneStep, isModalBusy, ModalBusyError, RETRY_DELAYS_MS, MODAL_TIMEOUT_S };

// The sidecar's names the panel relies on, defined once: its ops, a job's states, the
// queue's priorities and the preview levels. They come from the sidecar's pydantic
// models; test/contract.test.js checks them against the generated shared-schema/*.json.
'use strict';

// Every op the sidecar knows (the schema's Op), with the name the panel shows.
const OP_NAMES = Object.freeze({
  beauty: 'Beauty',
  dodge_burn: 'Dodge & Burn',
  volume: 'Volume',
  color: 'Color',
  generate: 'Generate',
});
const OPS = Object.freeze(Object.keys(OP_NAMES));

// The retouch ops, one Apply button each. `generate` makes a new image from a prompt,
// not a layer over the document, so the panel has no button for it.
const APPLY_OPS = Object.freeze(OPS.filter((op) => op !== 'generate'));

// A job's states (the schema's JobState); a job in one of the last three never changes
// again, and each of them is also the type of the event that ends the job.
const JOB_STATES = Object.freeze(['queued', 'running', 'done', 'failed', 'cancelled']);
const TERMINAL_STATES = new Set(['done', 'failed', 'cancelled']);

// The queue's service order, first to last (the schema's Priority).
const PRIORITIES = Object.freeze(['active', 'hero', 'normal', 'background']);

// A preview's levels (the schema's PreviewHeader.level); the first three are progressive
// levels of the result, any of which can stand in as the Apply's draft layer.
const PREVIEW_LEVELS = Object.freeze(['draft', 'preview', 'refine', 'final', 'step']);
const DRAFT_LEVELS = new Set(['draft', 'preview', 'refine']);

/** The op's name as the panel shows it ("Dodge & Burn"); an unknown op as it is. */
function opName(op) {
  return OP_NAMES[op] ?? op;
}

/** True for done, failed and cancelled: a job state, or an event type, that ends a job. */
function isTerminal(stateOrType) {
  return TERMINAL_STATES.has(stateOrType);
}

module.exports = {
  OP_NAMES,
  OPS,
  APPLY_OPS,
  JOB_STATES,
  TERMINAL_STATES,
  PRIORITIES,
  PREVIEW_LEVELS,
  DRAFT_LEVELS,
  opName,
  isTerminal,
};

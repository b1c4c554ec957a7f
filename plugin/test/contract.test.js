'use strict';
// The sidecar's names the panel defines once (contract.js) against the JSON schema the
// sidecar's pydantic models generate (shared-schema/*.json): a new op, job state,
// priority or preview level on the sidecar's side fails here until the panel knows it.
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');

const contract = require('../contract.js');
const queue = require('../queue.js');

const SCHEMA_DIR = path.join(__dirname, '..', '..', 'shared-schema');

function definitions(file) {
  return JSON.parse(fs.readFileSync(path.join(SCHEMA_DIR, file), 'utf8')).$defs;
}

const jobs = definitions('jobs.json');
const events = definitions('events.json');
const service = definitions('service.json');

test('the ops are the schema’s Op, in its order, in jobs and in the service', () => {
  assert.deepEqual(contract.OPS, jobs.Op.enum);
  assert.deepEqual(contract.OPS, service.Op.enum);
  assert.equal(jobs.JobRequest.properties.op.$ref, '#/$defs/Op');
  for (const op of contract.OPS) assert.equal(typeof contract.OP_NAMES[op], 'string', op);
});

test('every Apply button is an op; generate, which takes a prompt, has none', () => {
  assert.deepEqual(contract.APPLY_OPS, ['beauty', 'dodge_burn', 'volume', 'color']);
  for (const op of contract.APPLY_OPS) assert.ok(jobs.Op.enum.includes(op), op);
  assert.ok(!contract.APPLY_OPS.includes('generate'));
});

test('the job states are the schema’s JobState; the terminal ones are also the events that end a job', () => {
  assert.deepEqual(contract.JOB_STATES, jobs.JobState.enum);
  assert.equal(jobs.JobStatus.properties.state.$ref, '#/$defs/JobState');
  const eventTypes = Object.keys(events.JobEvent.discriminator.mapping);
  for (const state of contract.TERMINAL_STATES) {
    assert.ok(jobs.JobState.enum.includes(state), `${state} is a job state`);
    assert.ok(eventTypes.includes(state), `${state} is an event type`);
    const schema = events[events.JobEvent.discriminator.mapping[state].split('/').pop()];
    assert.equal(schema.properties.type.const, state);
  }
  // The states a job is in while it still runs or waits: no event of theirs ends it.
  const open = contract.JOB_STATES.filter((state) => !contract.isTerminal(state));
  assert.deepEqual(open, ['queued', 'running']);
  assert.ok(!eventTypes.includes('running'), 'a job starts running with a `started` event');
  assert.ok(contract.isTerminal('done') && !contract.isTerminal('progress'));
});

test('a queue row counts as finished exactly in the terminal states', () => {
  for (const state of contract.JOB_STATES) {
    assert.equal(queue.isFinished({ state }), contract.TERMINAL_STATES.has(state), state);
  }
});

test('the priorities are the schema’s Priority, in its service order', () => {
  assert.deepEqual(contract.PRIORITIES, jobs.Priority.enum);
  assert.match(jobs.Priority.description, /first to last/);
  const row = (priority, index) => queue.createRow({ jobId: `j${index}`, docId: 'd', name: priority, priority });
  const rows = [...contract.PRIORITIES].reverse().map(row);
  assert.deepEqual(queue.order(rows, null).map((row) => row.priority), contract.PRIORITIES);
});

test('the preview levels are the schema’s, and the draft levels come first among them', () => {
  assert.deepEqual(contract.PREVIEW_LEVELS, events.PreviewHeader.properties.level.enum);
  assert.deepEqual([...contract.DRAFT_LEVELS], contract.PREVIEW_LEVELS.slice(0, 3));
});

'use strict';
// The jobs the panel follows (job-tracking.js): following and unfollowing, ends that
// come before the submit's answer, the resync after a reconnect, and a job's end that
// comes twice. Through the Panel on the fakes of panel-fakes.js, and on its own.
const test = require('node:test');
const assert = require('node:assert/strict');
const { Panel } = require('../panel-state.js');
const { JobTracking } = require('../job-tracking.js');
const {
  fakeAdapter, fakeClient, setup, settle, hold, done, applying, applyingWithDraft, // the world, and driving it
  pixels, draftPixels, doc, jpeg, event, preview, // what goes through it
} = require('./panel-fakes.js');

// --- On its own -------------------------------------------------------------------

// A JobTracking on a fake client (job-N for the Nth submit) and a fake relay.
function tracking({ cached = false } = {}) {
  const client = fakeClient({ cached });
  const followed = [];
  const unfollowed = [];
  const events = { follow: (jobId) => followed.push(jobId), unfollow: (jobId) => unfollowed.push(jobId) };
  return { jobs: new JobTracking({ client, events }), client, followed, unfollowed };
}

const JOB = {
  op: 'dodge_burn',
  imageId: 'img-1',
  intensity: 0.5,
  params: {},
  docId: 'doc-1',
  docName: 'a.psd',
  layerStackHash: 'h',
};

test('a job whose draft nobody shows (another document, the queue) asks for no progressive levels', async () => {
  const s = tracking();
  await s.jobs.submit(JOB, { priority: 'normal', wantsDraft: false });
  assert.deepEqual(s.client.named('submit')[0][0].preview, { progressive: false, stream_steps: false });
  await s.jobs.submit(JOB, { priority: 'active', wantsDraft: true });
  assert.deepEqual(s.client.named('submit')[1][0].preview, { progressive: true, stream_steps: false });
});

test('submit posts the API body, shows a row and follows the job unless it is done already', async () => {
  const s = tracking();
  assert.deepEqual(await s.jobs.submit(JOB, { priority: 'active', wantsDraft: true, streamSteps: true }), {
    jobId: 'job-1',
    done: false,
  });
  assert.deepEqual(s.client.named('submit'), [
    [
      {
        op: 'dodge_burn',
        image_id: 'img-1',
        intensity: 0.5,
        params: {},
        priority: 'active',
        document_id: 'doc-1',
        layer_stack_hash: 'h',
        preview: { progressive: true, stream_steps: true },
      },
    ],
  ]);
  assert.deepEqual(s.followed, ['job-1']);
  const row = s.jobs.row('job-1');
  assert.equal(row.name, 'Dodge & Burn · a.psd');
  assert.equal(row.priority, 'active');
  assert.deepEqual(s.jobs.job('job-1'), {
    docId: 'doc-1',
    op: 'dodge_burn',
    wantsDraft: true,
    draft: null,
    closed: false,
    finished: null,
  });

  const cached = tracking({ cached: true });
  const answer = await cached.jobs.submit(JOB, { priority: 'normal', wantsDraft: false });
  assert.deepEqual(answer, { jobId: 'job-1', done: true });
  assert.deepEqual(cached.followed, [], 'a cached result has no events to follow');
  assert.equal(cached.jobs.row('job-1').state, 'done');
});

test('waitFor resolves with the job’s end, whether it comes before or after the wait begins', async () => {
  const s = tracking();
  await s.jobs.submit(JOB, { priority: 'active' });
  await s.jobs.submit(JOB, { priority: 'active' });
  const early = event('failed', 'job-1', { error: { message: 'no face' } });
  assert.ok(s.jobs.event(early), 'the row changed');
  assert.equal(await s.jobs.waitFor('job-1'), early);
  const waiting = s.jobs.waitFor('job-2');
  assert.equal(s.jobs.settled('job-2'), false);
  const late = event('cancelled', 'job-2');
  s.jobs.event(late);
  assert.equal(await waiting, late);
});

test('an event changes nothing for a job not ours, a stale seq, or a job already settled', async () => {
  const s = tracking();
  await s.jobs.submit(JOB, { priority: 'active' });
  assert.equal(s.jobs.event(event('started', 'job-9')), null, 'not ours');
  const started = event('started', 'job-1');
  assert.equal(s.jobs.event(started).state, 'running');
  assert.equal(s.jobs.event({ ...started, type: 'progress', progress: 0.5 }), null, 'stale seq');
  const waiting = s.jobs.waitFor('job-1');
  s.jobs.event(event('done', 'job-1'));
  await waiting;
  s.jobs.forget('job-1');
  assert.deepEqual(s.unfollowed, ['job-1']);
  assert.equal(s.jobs.settled('job-1'), true);
  const rows = s.jobs.rows;
  assert.equal(s.jobs.event(event('done', 'job-1')), null, 'a second done');
  assert.equal(s.jobs.event(event('queued', 'job-1')), null, 'a replayed history');
  assert.equal(s.jobs.rows, rows);
});

test('resync takes what became of unfinished jobs from their status, and nothing for settled ones', async () => {
  const s = tracking();
  for (let i = 0; i < 3; i += 1) await s.jobs.submit(JOB, { priority: 'normal' });
  s.jobs.event(event('cancelled', 'job-3'));
  const ended = s.jobs.waitFor('job-2');
  s.client.statuses.set('job-1', { job_id: 'job-1', state: 'running', progress: 0.4, priority: 'hero' });
  s.client.statuses.set('job-2', { job_id: 'job-2', state: 'failed', error: { message: 'out of memory' } });
  await s.jobs.resync();
  assert.deepEqual(s.client.named('job'), [['job-1'], ['job-2']], 'job-3 had finished');
  assert.deepEqual(await ended, { type: 'failed', job_id: 'job-2', error: { message: 'out of memory' } });
  assert.deepEqual(s.jobs.rows.map((row) => [row.state, row.priority]), [
    ['running', 'hero'],
    ['failed', 'normal'],
    ['cancelled', 'normal'],
  ]);
  assert.equal(s.jobs.status('job-3', { job_id: 'job-3', state: 'done' }), false, 'a settled job stays as it ended');
});

test('star sends one PATCH and marks the row; cancel sends a DELETE while the job runs', async () => {
  const s = tracking();
  await s.jobs.submit(JOB, { priority: 'normal' });
  assert.equal(await s.jobs.star('job-1'), true);
  assert.equal(await s.jobs.star('job-1'), false, 'a hero already');
  assert.equal(await s.jobs.star('job-9'), false, 'not ours');
  assert.deepEqual(s.client.named('patch'), [['job-1', 'hero']]);
  assert.equal(s.jobs.row('job-1').priority, 'hero');
  await s.jobs.cancel('job-1');
  s.jobs.event(event('cancelled', 'job-1'));
  await s.jobs.cancel('job-1');
  assert.deepEqual(s.client.named('cancel'), [['job-1']]);
});

// --- Through the panel ---------------------------------------------------------------

test('the panel follows each job it submits and stops once the job is settled', async () => {
  const s = setup();
  const { running } = await applying(s);
  assert.deepEqual(s.events.followed, ['job-1']);
  done(s, 'job-1');
  await running;
  assert.deepEqual(s.events.unfollowed, ['job-1']);
  assert.equal(s.panel.early, undefined, 'no buffer of unknown jobs’ events');
  assert.equal(s.panel.earlyPreviews, undefined);
});

test('a job that finishes before its submit is answered is still placed', async () => {
  const s = setup();
  s.client.onSubmit = (answer) => done(s, answer.job_id);
  assert.deepEqual(await s.panel.apply('beauty'), { jobId: 'job-1', layerId: 'layer-1' });
  assert.deepEqual(s.adapter.steps(), ['ML Retouch: Beauty']);
  assert.equal(s.panel.rows[0].state, 'done');
});

test('a job that fails before its submit is answered fails the Apply', async () => {
  const s = setup();
  s.client.onSubmit = (answer) =>
    s.events.emit('event', event('failed', answer.job_id, { error: { code: 'x', message: 'Too large.' } }));
  assert.equal(await s.panel.apply('beauty'), null);
  assert.deepEqual([s.panel.state.phase, s.panel.state.message], ['failed', 'Too large.']);
  assert.equal(s.panel.rows[0].state, 'failed');
  assert.deepEqual(s.adapter.documentChanges(), []);
});

// --- Reconnect ----------------------------------------------------------------------

const status = (jobId, state, fields = {}) => ({
  job_id: jobId,
  op: 'beauty',
  state,
  priority: 'active',
  progress: state === 'done' ? 1 : 0,
  created_at: '2025-01-01T00:00:00Z',
  ...fields,
});

test('resync completes an Apply whose done event was missed: the final replaces the draft, one step', async () => {
  const s = setup();
  const { running } = await applyingWithDraft(s);
  // The stream drops here; the job finishes meanwhile.
  s.client.statuses.set('job-1', status('job-1', 'done', { finished_at: '2025-01-01T00:00:09Z' }));
  await s.panel.resync();
  assert.deepEqual(await running, { jobId: 'job-1', layerId: 'layer-2' });

  assert.deepEqual(s.client.named('job'), [['job-1']]);
  assert.deepEqual(s.adapter.steps(), ['ML Retouch: Beauty']);
  assert.deepEqual(s.adapter.layersOf().map(({ id, pixels: held }) => [id, held]), [['layer-2', pixels(201)]]);
  assert.deepEqual([s.panel.rows[0].state, s.panel.rows[0].finishedAt], ['done', Date.parse('2025-01-01T00:00:09Z')]);
  assert.equal(s.panel.state.phase, 'done');

  done(s, 'job-1'); // the late event, once the stream is back
  await settle();
  assert.equal(s.adapter.named('commitResult').length, 1, 'placed once');
});

test('resync fails an Apply whose job failed meanwhile, and removes its draft', async () => {
  const s = setup();
  const { running } = await applyingWithDraft(s);
  const error = { code: 'internal', message: 'Out of GPU memory.', details: {} };
  s.client.statuses.set('job-1', status('job-1', 'failed', { error }));
  await s.panel.resync();
  assert.equal(await running, null);
  assert.deepEqual([s.panel.state.phase, s.panel.state.message], ['failed', 'Out of GPU memory.']);
  assert.deepEqual(s.adapter.steps(), []);
  assert.deepEqual([s.panel.rows[0].state, s.panel.rows[0].error], ['failed', 'Out of GPU memory.']);
});

test('resync asks only about unfinished jobs, skips those it cannot look up, and later events still apply', async () => {
  const s = setup({ docs: [doc(1), doc(2), doc(3), doc(4)] });
  await s.panel.queueDocuments('volume');
  done(s, 'job-1');
  s.events.emit('event', event('started', 'job-2'));
  s.events.emit('event', event('progress', 'job-2', { progress: 0.1, stage: 'analysis' }));
  await settle();
  assert.deepEqual(s.adapter.steps('doc-1'), ['ML Retouch: Volume']);

  // job-2 moved on, job-3 finished, job-4 is unknown to the sidecar now.
  s.client.statuses.set('job-2', status('job-2', 'running', { progress: 0.5, stage: 'refine', eta_s: 4 }));
  s.client.statuses.set('job-3', status('job-3', 'done', { priority: 'normal' }));
  await s.panel.resync();
  await settle();

  assert.deepEqual(s.client.named('job'), [['job-2'], ['job-3'], ['job-4']]);
  assert.deepEqual(s.adapter.steps('doc-3'), ['ML Retouch: Volume'], 'the missed done is placed');
  const row2 = s.panel.rows.find((row) => row.jobId === 'job-2');
  assert.deepEqual([row2.state, row2.progress, row2.stage, row2.etaS], ['running', 0.5, 'refine', 4]);
  assert.equal(s.panel.rows.find((row) => row.jobId === 'job-4').state, 'queued');

  s.events.emit('event', event('progress', 'job-2', { progress: 0.75, stage: 'refine', eta_s: 2 }));
  assert.equal(s.panel.rows.find((row) => row.jobId === 'job-2').progress, 0.75);
  done(s, 'job-2');
  done(s, 'job-4');
  await settle();
  for (const id of ['doc-1', 'doc-2', 'doc-3', 'doc-4']) {
    assert.deepEqual(s.adapter.steps(id), ['ML Retouch: Volume'], `${id} has exactly one step`);
  }
  assert.equal(s.adapter.named('commitResult').length, 4);
});

// A job's history sent again: to a new subscription, or by a sidecar that restarted and
// brought the job back from disk (its seq going on from where it was, api.md).
const replayedHistory = (s, jobId) => {
  for (const type of ['queued', 'started', 'progress']) {
    s.events.emit('event', event(type, jobId, { progress: 0.5, stage: 'refine' }));
  }
  done(s, jobId);
};

test('a second done for a placed Apply, by event, replay or resync, places, replaces and removes nothing', async () => {
  const s = setup();
  const { running } = await applyingWithDraft(s);
  done(s, 'job-1');
  assert.deepEqual(await running, { jobId: 'job-1', layerId: 'layer-2' });
  const row = s.panel.rows[0];

  done(s, 'job-1'); // the same done again, once the stream is back
  replayedHistory(s, 'job-1');
  s.client.statuses.set('job-1', status('job-1', 'done'));
  await s.panel.resync();
  await settle();

  assert.deepEqual(s.adapter.documentChanges().map((call) => call.name), ['placeDraft', 'commitResult']);
  assert.deepEqual(s.adapter.steps(), ['ML Retouch: Beauty']);
  assert.deepEqual(s.adapter.layersOf().map(({ id, draft }) => [id, draft]), [['layer-2', false]]);
  assert.equal(s.client.named('result').length, 1, 'the result is fetched once');
  assert.deepEqual(s.client.named('job'), [], 'a finished row is not asked about');
  assert.equal(s.panel.rows[0], row, 'the row is left as it was');
  assert.deepEqual(s.panel.result.layerId, 'layer-2');
});

test('a done that comes again while the final is going in, then by a resync, is placed once', async () => {
  const s = setup();
  const committing = hold(s.adapter, 'commitResult');
  const { running } = await applying(s);
  done(s, 'job-1');
  await settle();
  assert.equal(s.adapter.named('commitResult').length, 1, 'the final is going in');

  done(s, 'job-1');
  s.client.statuses.set('job-1', status('job-1', 'done'));
  await s.panel.resync();
  committing.resolve();
  assert.deepEqual(await running, { jobId: 'job-1', layerId: 'layer-1' });
  done(s, 'job-1');
  await settle();

  assert.equal(s.adapter.named('commitResult').length, 1);
  assert.deepEqual(s.adapter.steps(), ['ML Retouch: Beauty']);
  assert.deepEqual(s.adapter.named('discardDraft'), []);
  assert.equal(s.panel.state.phase, 'done');
});

test('a resync whose answer comes after the done event neither reopens the row nor places again', async () => {
  const s = setup();
  const { running } = await applying(s);
  const asking = hold(s.client, 'job');
  // The status was read before the job ended; its answer comes after the done event.
  s.client.statuses.set('job-1', status('job-1', 'running', { progress: 0.4 }));
  const resyncing = s.panel.resync();
  await settle();
  done(s, 'job-1');
  await running;
  asking.resolve();
  await resyncing;
  s.client.statuses.set('job-1', status('job-1', 'done'));
  await s.panel.resync();
  await settle();

  assert.deepEqual([s.panel.rows[0].state, s.panel.rows[0].progress], ['done', 1]);
  assert.deepEqual(s.client.named('job'), [['job-1']], 'the second resync asks nothing');
  assert.equal(s.adapter.named('commitResult').length, 1);
  assert.deepEqual(s.adapter.steps(), ['ML Retouch: Beauty']);
});

test('queued documents: a second done, a replayed history and a resync place nothing again', async () => {
  const s = setup({ docs: [doc(1), doc(2)] });
  await s.panel.queueDocuments('color');
  done(s, 'job-1');
  done(s, 'job-2');
  await settle();
  done(s, 'job-1');
  replayedHistory(s, 'job-2');
  s.client.statuses.set('job-1', status('job-1', 'done'));
  s.client.statuses.set('job-2', status('job-2', 'done'));
  await s.panel.resync();
  await settle();

  assert.deepEqual(s.adapter.named('commitResult').map(([docId]) => docId), ['doc-1', 'doc-2']);
  for (const id of ['doc-1', 'doc-2']) assert.deepEqual(s.adapter.steps(id), ['ML Retouch: Color'], id);
  assert.deepEqual(
    s.panel.rows.map((row) => [row.state, row.placement]),
    [
      ['done', 'placed'],
      ['done', 'placed'],
    ],
  );
  assert.deepEqual(s.client.named('job'), []);
  assert.equal(s.client.named('result').length, 2);
});

test('the panel follows a job through a real EventStream: draft frame to layer, done to final', async () => {
  const { EventStream } = require('../events.js');
  let socket = null;
  class FakeWebSocket {
    constructor() {
      socket = this;
    }
    send() {}
    close() {}
  }
  const stream = new EventStream({ WebSocket: FakeWebSocket, token: 't' }).connect();
  socket.onopen({});
  const adapter = fakeAdapter();
  const client = fakeClient();
  const panel = new Panel({ adapter, client, events: stream });
  const running = panel.apply('beauty');
  await settle();

  const draft = preview('job-1', 'draft');
  const header = new TextEncoder().encode(JSON.stringify(draft));
  const frame = new Uint8Array(4 + header.length + 3);
  new DataView(frame.buffer).setUint32(0, header.length, false);
  frame.set(header, 4);
  frame.set(jpeg(7), 4 + header.length);
  socket.onmessage({ data: frame.buffer });
  await settle();
  assert.deepEqual(adapter.steps(), ['ML Retouch: Beauty']);
  assert.deepEqual(adapter.layersOf()[0].pixels, draftPixels(draft.seq));

  socket.onmessage({ data: JSON.stringify(event('done', 'job-1', { cached: false, result_url: '/r' })) });
  assert.deepEqual(await running, { jobId: 'job-1', layerId: 'layer-2' });
  stream.close();

  assert.deepEqual(adapter.named('showThumbnail').map(([shown]) => [...(shown ?? [])]), [[], [...jpeg(7)]]);
  assert.deepEqual(client.named('preview'), [['job-1', draft.seq, { format: 'raw' }]]);
  assert.deepEqual(adapter.steps(), ['ML Retouch: Beauty']);
  assert.deepEqual(adapter.layersOf().map(({ id, pixels: held }) => [id, held]), [['layer-2', pixels(201)]]);
});

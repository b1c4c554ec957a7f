'use strict';
// Node's mock timers (node:test's mock.timers) for setTimeout and Date, so a test of
// retries, backoff and idle times runs in no time and the same way every time. The
// code under test schedules its next timer only after its promises run: advance()
// lets them run (setImmediate, which stays real) between the steps it moves the clock.
const assert = require('node:assert/strict');

/** Lets pending promise callbacks and I/O-free continuations run. */
async function flush(rounds = 10) {
  for (let i = 0; i < rounds; i += 1) await new Promise((resolve) => setImmediate(resolve));
}

/**
 * Mocks setTimeout, clearTimeout and Date for the test `t` (undone when it ends); the
 * clock starts at 0. Returns { now, advance(ms, stepMs), until(condition, what), settle(promise) }.
 */
function mockClock(t) {
  t.mock.timers.enable({ apis: ['setTimeout', 'Date'], now: 0 });
  const clock = {
    now: () => Date.now(),

    /** Moves the clock `ms` forward in steps of `stepMs`, letting promises run between. */
    async advance(ms, stepMs = ms) {
      await flush();
      for (let passed = 0; passed < ms; passed += stepMs) {
        t.mock.timers.tick(Math.min(stepMs, ms - passed));
        await flush();
      }
    },

    /** Moves the clock in steps of `stepMs` until `condition()` holds, at most `limitMs`. */
    async until(condition, what, { stepMs = 10, limitMs = 120000 } = {}) {
      await flush();
      for (let passed = 0; !condition(); passed += stepMs) {
        if (passed >= limitMs) assert.fail(`never happened within ${limitMs} ms: ${what}`);
        t.mock.timers.tick(stepMs);
        await flush();
      }
    },

    /** Moves the clock until `promise` settles; resolves or rejects as it does. */
    async settle(promise, what, options) {
      let settled = false;
      const watched = promise.finally(() => (settled = true));
      watched.catch(() => {}); // looked at below
      await clock.until(() => settled, what, options);
      return watched;
    },
  };
  return clock;
}

module.exports = { mockClock, flush };

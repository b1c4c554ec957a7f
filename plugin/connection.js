// Staying connected to the sidecar: the backoff every retry waits by, and the panel's
// connection (the token probe, retried until the sidecar answers, then its event stream).
// Plain JavaScript on the global setTimeout/clearTimeout, so tests drive it with node's
// mock timers.
'use strict';

// Waits that start at initialMs and grow by `factor` up to maxMs; reset() after a success.
class Backoff {
  constructor({ initialMs, maxMs, factor = 2 }) {
    this.initialMs = initialMs;
    this.maxMs = maxMs;
    this.factor = factor;
    this.delayMs = initialMs;
  }

  /** The wait before the next try; each call grows the one after. */
  next() {
    const delayMs = this.delayMs;
    this.delayMs = Math.min(this.delayMs * this.factor, this.maxMs);
    return delayMs;
  }

  reset() {
    this.delayMs = this.initialMs;
  }
}

// The token probe's retries while the sidecar is not running: 1 s doubling to 10 s.
const RETRY = Object.freeze({ initialMs: 1000, maxMs: 10000, factor: 2 });

/**
 * The panel's connection to the sidecar. `check()` probes it (client.js checkConnection:
 * resolves { state: 'connected' | 'unauthorized' | 'offline', version, message }); a
 * probe that rejects counts as offline. Offline is tried again with backoff; unauthorized
 * waits for retryNow() (a new token). Once connected, `openStream(onState)` opens the
 * event stream (an EventStream, events.js, or anything with close()) and its states say
 * when it drops and comes back.
 *
 * onChange(state, info) tells the panel's face each change:
 * - 'connecting' {}
 * - 'connected' { version } after a probe, { reconnected: true } when the stream is back
 * - 'unauthorized' { message }
 * - 'offline' { message, retryMs } when the probe failed, or { dropped: true, retryMs }
 *   when the event stream dropped and is reconnecting by itself
 * onConnected(version) runs after each successful probe, onReconnected() each time the
 * stream comes back after a drop (the moment to ask what became of the jobs).
 */
class Connection {
  constructor({
    check,
    openStream = () => null,
    onChange = () => {},
    onConnected = () => {},
    onReconnected = () => {},
    retry = RETRY,
    messageOf = (error) => error?.message ?? String(error),
  }) {
    this.check = check;
    this.openStreamWith = openStream;
    this.onChange = onChange;
    this.onConnected = onConnected;
    this.onReconnected = onReconnected;
    this.messageOf = messageOf;
    this.backoff = new Backoff({ ...RETRY, ...retry });
    this.state = 'connecting';
    this.stream = null;
    this.timer = null;
    this.stopped = false;
  }

  /** Says 'connecting' and probes; resolves once that probe is answered. */
  start() {
    this.show('connecting', {});
    return this.connect();
  }

  /** Probes again now, as if for the first time (a new token was saved). */
  retryNow() {
    this.clearTimer();
    this.backoff.reset();
    return this.connect();
  }

  /** No more probes or retries, and the event stream closed. */
  stop() {
    this.stopped = true;
    this.clearTimer();
    this.stream?.close();
  }

  async connect() {
    this.timer = null;
    if (this.stopped) return;
    let result;
    try {
      result = await this.check();
    } catch (error) {
      result = { state: 'offline', message: this.messageOf(error) };
    }
    if (this.stopped) return;
    if (result.state === 'connected') {
      this.backoff.reset();
      this.show('connected', { version: result.version });
      this.openStream();
      await this.onConnected(result.version);
      return;
    }
    if (result.state === 'unauthorized') {
      this.show('unauthorized', { message: result.message });
      return; // waits for a token
    }
    const retryMs = this.backoff.next();
    this.show('offline', { message: result.message, retryMs });
    this.timer = setTimeout(() => this.connect(), retryMs);
  }

  // A new event stream in place of the old one. It reconnects by itself; its drops and
  // returns are the panel's too.
  openStream() {
    this.stream?.close();
    let dropped = false;
    this.stream = this.openStreamWith((state, info = {}) => {
      if (state === 'open' && dropped) {
        dropped = false;
        this.show('connected', { reconnected: true });
        this.onReconnected();
      } else if (state === 'retrying' && !this.stopped) {
        dropped = true;
        this.show('offline', { dropped: true, retryMs: info.delayMs ?? 0 });
      }
    });
    this.stream?.connect?.();
  }

  show(state, info) {
    this.state = state;
    this.onChange(state, info);
  }

  clearTimer() {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
  }
}

module.exports = { Backoff, Connection, RETRY };

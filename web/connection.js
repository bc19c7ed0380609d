// connection.js: the page's one WebSocket, without a DOM. Connection
// connects, reconnects with backoff and watches the heartbeat; Outbox sends
// the user's messages over it and sends them again, with the same cid,
// until they are acknowledged. The WebSocket constructor and the clock are
// injected (web/test/ drives them by hand).

import { systemClock } from './clock.js';

export const BACKOFF_BASE_MS = 500;      // first reconnect waits up to this long
export const BACKOFF_CAP_MS = 15000;     // and never more than this
export const STABLE_MS = 10000;          // connected this long: reset the backoff
export const WELCOME_TIMEOUT_MS = 10000; // a new connection without a welcome this long is given up
export const SILENCE_FACTOR = 2;         // nothing heard for this many heartbeat_ms: the connection is dead
export const ACK_TIMEOUT_MS = 15000;     // a send without ack this long is shown as failed

// Close codes in words a user knows (docs/PROTOCOL.md, "Close codes").
export const CLOSE_REASONS = {
  1000: 'connection closed',
  1001: 'the server went away',
  1006: 'connection lost',
  1007: 'the page sent text the server could not read',
  1008: 'too many messages too fast',
  1009: 'a message was too big',
  1011: 'the server had a problem',
  1013: 'the connection was too slow to keep up',
};

// Closes for who the user is (pkg/protocol Close*): the page does not
// reconnect after them; the user is told and goes back to signing in.
export const IDENTITY_CLOSES = {
  4001: 'Could not sign in to the chat.',
  4002: 'Your session expired. Sign in again.',
  4003: 'You were signed out (in another tab or device). Sign in again.',
  4004: 'This account was closed.',
};

// identityClose is the words for an identity close code, or ''.
export function identityClose(code) {
  return Object.prototype.hasOwnProperty.call(IDENTITY_CLOSES, code) ? IDENTITY_CLOSES[code] : '';
}

// Closes the user is told about: the page itself did something wrong.
const WARN_CODES = new Set([1007, 1008, 1009, 1013]);

// heartbeatOf is a welcome frame's heartbeat_ms, or 0 when it has none.
export function heartbeatOf(f) {
  const hb = f && f.heartbeat_ms;
  return typeof hb === 'number' && isFinite(hb) && hb > 0 ? hb : 0;
}

const noop = () => {};

// Connection owns the WebSocket. Every callback runs on the page's one
// thread; none of them is called after the connection they belong to ended.
//
// Reconnect: full-jitter exponential backoff (a random wait below
// min(BACKOFF_CAP_MS, BACKOFF_BASE_MS * 2^attempt)), reset after STABLE_MS
// connected. Heartbeat (docs/PROTOCOL.md, "Heartbeat"): with the welcome's
// heartbeat_ms, a connection that brings no frame for SILENCE_FACTOR times
// that is dropped at once (no close handshake) and replaced; so is a new
// connection that brings no welcome within WELCOME_TIMEOUT_MS.
export class Connection {
  // opts: url() (the endpoint; may throw), WebSocket (constructor), clock,
  // random() (in [0, 1)), online() (false: the device has no network),
  // wanted() (false: no room needs a connection), and the callbacks
  // onFrame(f) (each parsed frame), onStatus(conn, text) (conn is
  // connecting | connected | reconnecting | offline, text is for the user),
  // onClose({code, tag, why, welcomed}) (a connection ended; tag is
  // 'silent' or 'no-welcome' when the page gave it up; welcomed: it had
  // brought its welcome) and onWarn(text). After an identity close
  // (IDENTITY_CLOSES) there is no reconnect.
  constructor(opts) {
    this.url = opts.url;
    this.WebSocket = opts.WebSocket;
    this.clock = opts.clock || systemClock;
    this.random = opts.random || Math.random;
    this.online = opts.online || (() => true);
    this.wanted = opts.wanted || (() => true);
    this.onFrame = opts.onFrame || noop;
    this.onStatus = opts.onStatus || noop;
    this.onClose = opts.onClose || noop;
    this.onWarn = opts.onWarn || noop;

    this.ws = null;          // the current socket (null: none)
    this.conn = 'offline';   // the last status reported
    this.welcomed = false;   // the current socket brought its welcome
    this.attempt = 0;        // consecutive failed connects, for the backoff
    this.retryAt = 0;        // when the scheduled reconnect runs (ms)
    this.retryTimer = 0;
    this.countdownTimer = 0;
    this.stableTimer = 0;
    this.userClosed = false; // the user left: no reconnect
    this.heartbeatMs = 0;    // from the welcome; 0: the server sends no heartbeats
    this.lastFrameAt = 0;    // when the current socket last brought a frame (ms)
    this.welcomeTimer = 0;   // the welcome timeout
    this.silenceTimer = 0;   // the silence check (an interval)
  }

  status(conn, text) {
    this.conn = conn;
    this.onStatus(conn, text);
  }

  // idle: no socket and no reconnect scheduled.
  idle() {
    return !this.ws && !this.retryTimer;
  }

  // connect opens a socket unless there is one.
  connect() {
    const c = this.clock;
    c.clearTimeout(this.retryTimer);
    c.clearInterval(this.countdownTimer);
    this.retryTimer = 0;
    if (this.ws) return;
    this.userClosed = false;
    let url;
    try {
      url = this.url();
    } catch (_) {
      this.status('offline', 'Offline: the chat address in this page is wrong');
      return;
    }
    this.status('connecting', this.attempt > 0 ? 'Reconnecting…' : 'Connecting…');
    let ws;
    try {
      ws = new this.WebSocket(url);
    } catch (_) {
      this.scheduleReconnect('cannot reach the server');
      return;
    }
    this.ws = ws;
    this.welcomed = false;
    this.lastFrameAt = c.now();
    ws.onmessage = (ev) => {
      if (this.ws !== ws) return;
      this.lastFrameAt = c.now();
      this.received(ws, ev.data);
    };
    ws.onclose = (ev) => { if (this.ws === ws) this.closed({ code: ev.code }); };
    ws.onerror = () => { /* onclose follows */ };
    // A server that froze (or a path that died) behind a proxy still
    // accepts the connection but never says welcome.
    this.clearWatch();
    this.welcomeTimer = c.setTimeout(() => {
      if (this.ws === ws && !this.welcomed) this.drop(ws, 'no-welcome', 'no answer from the server');
    }, WELCOME_TIMEOUT_MS);
  }

  received(ws, data) {
    let f;
    try { f = JSON.parse(data); } catch (_) { return; }
    if (!f || typeof f !== 'object') return;
    if (f.type !== 'welcome') {
      this.onFrame(f);
      return;
    }
    this.welcomed = true;
    this.clearWatch();
    this.heartbeatMs = heartbeatOf(f);
    if (this.heartbeatMs) this.watchSilence(ws, this.heartbeatMs);
    this.clock.clearTimeout(this.stableTimer);
    this.stableTimer = this.clock.setTimeout(() => { this.attempt = 0; }, STABLE_MS);
    this.onFrame(f); // the state learns the server before the status names it
    if (this.ws === ws) this.status('connected', 'Connected');
  }

  clearWatch() {
    this.clock.clearTimeout(this.welcomeTimer);
    this.clock.clearInterval(this.silenceTimer);
    this.welcomeTimer = 0;
    this.silenceTimer = 0;
  }

  // watchSilence checks, a few times per heartbeat period, that the socket
  // brought a frame within SILENCE_FACTOR heartbeat periods. Browsers answer
  // WebSocket pings without telling the page, so without this a frozen
  // server would look connected until TCP gives up, many minutes later.
  watchSilence(ws, hb) {
    const c = this.clock;
    const every = Math.max(100, Math.floor(hb / 4));
    let lastCheck = c.now();
    this.silenceTimer = c.setInterval(() => {
      const now = c.now();
      if (this.ws !== ws) { this.clearWatch(); return; }
      // The check itself came late (the tab was asleep or busy): frames
      // may be waiting behind it, so the server gets a fresh period.
      if (now - lastCheck > hb) this.lastFrameAt = Math.max(this.lastFrameAt, now - hb);
      lastCheck = now;
      if (now - this.lastFrameAt > SILENCE_FACTOR * hb) this.drop(ws, 'silent', 'the server stopped answering');
    }, every);
  }

  // drop gives up a socket at once (a close handshake with a peer that does
  // not answer would take a minute); tag goes to onClose, why to the user.
  drop(ws, tag, why) {
    if (this.ws !== ws) return;
    ws.onmessage = null;
    ws.onclose = null;
    try { ws.close(4000, 'gone quiet'); } catch (_) { /* already closing */ }
    this.closed({ code: 4000, tag: tag, why: why });
  }

  closed(ev) {
    ev.welcomed = this.welcomed;
    this.ws = null;
    this.welcomed = false;
    this.clearWatch();
    this.clock.clearTimeout(this.stableTimer);
    this.onClose(ev);
    if (identityClose(ev.code)) {
      this.userClosed = true;
      this.attempt = 0;
      this.status('offline', 'Offline');
      return;
    }
    if (this.userClosed || !this.wanted()) {
      this.status('offline', 'Offline');
      return;
    }
    const why = ev.why || CLOSE_REASONS[ev.code] || 'connection closed';
    if (WARN_CODES.has(ev.code)) this.onWarn('Disconnected: ' + why + '.');
    this.scheduleReconnect(why);
  }

  // scheduleReconnect waits a random time in [0, min(cap, base*2^attempt))
  // ("full jitter") and connects again; without a network it waits for
  // reconnectNow (the browser's "online" event).
  scheduleReconnect(why) {
    const c = this.clock;
    const ceiling = Math.min(BACKOFF_CAP_MS, BACKOFF_BASE_MS * Math.pow(2, this.attempt));
    const delay = Math.floor(this.random() * ceiling);
    this.attempt += 1;
    this.retryAt = c.now() + delay;
    c.clearTimeout(this.retryTimer);
    c.clearInterval(this.countdownTimer);
    this.retryTimer = 0;
    if (this.online() === false) {
      this.status('offline', 'Offline (no network)');
      return;
    }
    const tick = () => {
      const s = Math.max(0, Math.ceil((this.retryAt - c.now()) / 1000));
      this.status('reconnecting', 'Reconnecting in ' + s + ' s' + (why ? ' (' + why + ')' : ''));
    };
    tick();
    this.countdownTimer = c.setInterval(tick, 250);
    this.retryTimer = c.setTimeout(() => this.connect(), delay);
  }

  // reconnectNow connects at once when a room needs it and there is no socket.
  reconnectNow() {
    if (this.ws || !this.wanted()) return;
    this.connect();
  }

  // send writes a frame; false when there is no open socket.
  send(obj) {
    const ws = this.ws;
    if (!ws || ws.readyState !== this.WebSocket.OPEN) return false;
    ws.send(JSON.stringify(obj));
    return true;
  }

  // close ends the connection for good (the user left every room): no
  // reconnect until connect is called again.
  close() {
    const c = this.clock;
    this.userClosed = true;
    c.clearTimeout(this.retryTimer);
    c.clearInterval(this.countdownTimer);
    this.retryTimer = 0;
    this.clearWatch();
    c.clearTimeout(this.stableTimer);
    const ws = this.ws;
    this.ws = null;
    this.welcomed = false;
    this.attempt = 0;
    if (ws) {
      try { ws.close(1000, 'bye'); } catch (_) { /* already closing */ }
    }
    this.status('offline', 'Offline');
  }

  // networkLost closes the socket when the device says it went offline;
  // its close event then schedules the reconnect.
  networkLost() {
    if (this.ws) {
      try { this.ws.close(4000, 'offline'); } catch (_) { /* already closing */ }
    }
  }
}

// Outbox sends the user's messages (a room's pending entries) over a
// Connection. A send that is not acknowledged within ACK_TIMEOUT_MS on the
// same socket is marked failed (the user may retry, with the same cid);
// after a reconnect, resend sends every unacknowledged one again with its
// cid (and its files' ids), so the server can drop the copies it already has.
export class Outbox {
  // conn: {send(frame) -> bool, ws}; onChange(room, entry) is called when
  // an entry's status changes.
  constructor({ conn, clock, onChange }) {
    this.conn = conn;
    this.clock = clock || systemClock;
    this.onChange = onChange || noop;
    this.timers = new Map(); // entry -> its ack timeout
  }

  // transmit sends one pending entry: status 'sent', or 'queued' when there
  // is no connection.
  transmit(room, e) {
    this.cancel(e);
    const f = { type: 'send', room: room.name, text: e.text, cid: e.cid };
    if (e.files && e.files.length) f.files = e.files.map((x) => x.id); // every retry carries them
    if (this.conn.send(f)) {
      e.status = 'sent';
      e.why = '';
      this.onChange(room, e);
      const ws = this.conn.ws;
      this.timers.set(e, this.clock.setTimeout(() => {
        this.timers.delete(e);
        // Still unanswered on the same socket: let the user retry (same cid).
        if (room.pending.get(e.cid) === e && e.status === 'sent' && this.conn.ws === ws) {
          e.status = 'failed';
          e.why = 'no answer from the server';
          this.onChange(room, e);
        }
      }, ACK_TIMEOUT_MS));
    } else {
      e.status = 'queued';
      this.onChange(room, e);
    }
  }

  // resend sends again every pending entry of a joined room that is queued
  // or waits for its ack (not the failed ones: the user retries those).
  resend(room) {
    for (const e of room.pending.values()) {
      if (e.status === 'queued' || e.status === 'sent') this.transmit(room, e);
    }
  }

  // cancel stops waiting for an entry's ack (it came, or the send failed).
  cancel(e) {
    const t = this.timers.get(e);
    if (t !== undefined) {
      this.clock.clearTimeout(t);
      this.timers.delete(e);
    }
  }
}

// Tests of connection.js: connect, backoff, the heartbeat watch and the
// welcome timeout on a fake clock, and the Outbox. Run: node --test
// web/test/ (or go test ./web/).

import { test, beforeEach } from 'node:test';
import assert from 'node:assert/strict';
import { Connection, Outbox, heartbeatOf, WELCOME_TIMEOUT_MS, BACKOFF_BASE_MS, BACKOFF_CAP_MS, STABLE_MS, ACK_TIMEOUT_MS } from '../connection.js';
import { Room, msgEntry } from '../state.js';
import { FakeClock, FakeWebSocket } from './fakes.js';

beforeEach(() => FakeWebSocket.reset());

// setup is a Connection on a fake clock and fake sockets; random() gives
// the top of each backoff range.
function setup(opts = {}) {
  const clock = new FakeClock();
  const got = { frames: [], status: [], closes: [], warns: [] };
  const c = new Connection({
    url: opts.url || (() => 'ws://test/ws'),
    WebSocket: FakeWebSocket,
    clock: clock,
    random: opts.random || (() => 0.999999),
    online: opts.online || (() => true),
    wanted: opts.wanted || (() => true),
    onFrame: (f) => got.frames.push(f),
    onStatus: (conn, text) => got.status.push(conn + ': ' + text),
    onClose: (ev) => got.closes.push(ev.tag || String(ev.code)),
    onWarn: (text) => got.warns.push(text),
  });
  return { c, clock, got };
}

// welcomed connects and has the server say welcome.
function welcomed(c, hb) {
  c.connect();
  const ws = FakeWebSocket.last();
  ws.open();
  ws.frame({ type: 'welcome', server: 's1', heartbeat_ms: hb });
  return ws;
}

test('heartbeatOf takes only a positive number', () => {
  assert.equal(heartbeatOf({ heartbeat_ms: 300 }), 300);
  for (const hb of [undefined, 0, -5, '300', Infinity, NaN]) assert.equal(heartbeatOf({ heartbeat_ms: hb }), 0);
});

test('connect, welcome, frames: connected once the welcome came', () => {
  const { c, got } = setup();
  c.connect();
  assert.deepEqual(got.status, ['connecting: Connecting…']);
  const ws = FakeWebSocket.last();
  assert.equal(ws.url, 'ws://test/ws');
  assert.equal(c.send({ type: 'join' }), false); // not open yet
  ws.open();
  ws.frame({ type: 'welcome', server: 's1', heartbeat_ms: 300 });
  ws.frame({ type: 'heartbeat' });
  ws.onmessage({ data: 'not json' });
  assert.deepEqual(got.frames.map((f) => f.type), ['welcome', 'heartbeat']);
  assert.equal(got.status.at(-1), 'connected: Connected');
  assert.equal(c.heartbeatMs, 300);
  assert.equal(c.send({ type: 'join', room: 'r' }), true);
  assert.deepEqual(ws.sent, [{ type: 'join', room: 'r' }]);
  c.connect(); // one socket at a time
  assert.equal(FakeWebSocket.all.length, 1);
});

test('no welcome within 10 s: the connection is dropped and replaced', () => {
  const { c, clock, got } = setup();
  c.connect();
  const ws = FakeWebSocket.last();
  ws.open();
  clock.advance(WELCOME_TIMEOUT_MS - 1);
  assert.deepEqual(got.closes, []);
  clock.advance(1);
  assert.deepEqual(got.closes, ['no-welcome']);
  assert.deepEqual(ws.closedWith, { code: 4000, reason: 'gone quiet' });
  assert.equal(ws.onmessage, null);
  assert.match(got.status.at(-1), /^reconnecting: Reconnecting in 1 s \(no answer from the server\)$/);
  clock.advance(BACKOFF_BASE_MS);
  assert.equal(FakeWebSocket.all.length, 2);
  assert.equal(got.status.at(-1), 'connecting: Reconnecting…');
});

test('heartbeats every period keep the connection; 2 periods of silence drop it', () => {
  const { c, clock, got } = setup();
  const hb = 300;
  const ws = welcomed(c, hb);
  for (let i = 0; i < 50; i++) {
    clock.advance(hb);
    ws.frame({ type: 'heartbeat' });
  }
  assert.deepEqual(got.closes, []);
  const quietFrom = clock.now();
  while (got.closes.length === 0 && clock.now() - quietFrom < 10 * hb) clock.advance(10);
  assert.deepEqual(got.closes, ['silent']);
  const after = clock.now() - quietFrom;
  // Given up after more than 2 periods, at the next check (every hb/4,
  // at least every 100 ms).
  assert.ok(after > 2 * hb && after <= 2 * hb + Math.max(100, hb / 4) + 10, 'dropped after ' + after + ' ms');
  assert.deepEqual(ws.closedWith, { code: 4000, reason: 'gone quiet' });
  assert.match(got.status.at(-1), /the server stopped answering/);
});

test('without heartbeat_ms there is no silence watch', () => {
  const { c, clock, got } = setup();
  welcomed(c, undefined);
  clock.advance(60 * 60 * 1000);
  assert.deepEqual(got.closes, []);
  assert.equal(clock.timers.size, 0, 'a timer is still set');
});

test('a check that runs late (the tab slept) gives the server a fresh period', () => {
  const { c, clock, got } = setup();
  const hb = 1000;
  const ws = welcomed(c, hb);
  clock.jump(60 * 1000); // asleep: no timer ran
  clock.advance(250); // the first check after waking
  assert.deepEqual(got.closes, []);
  ws.frame({ type: 'heartbeat' });
  clock.advance(2 * hb);
  assert.deepEqual(got.closes, []);
  clock.advance(hb);
  assert.deepEqual(got.closes, ['silent']);
});

test('backoff: full jitter below a doubling ceiling, capped, reset after 10 s connected', () => {
  const { c, clock } = setup();
  const delays = [];
  c.connect();
  for (let i = 0; i < 8; i++) {
    const before = FakeWebSocket.all.length;
    FakeWebSocket.last().serverClose(1006);
    const t0 = clock.now();
    while (FakeWebSocket.all.length === before) clock.advance(1);
    delays.push(clock.now() - t0);
  }
  const want = [];
  for (let i = 0; i < 8; i++) want.push(Math.min(BACKOFF_CAP_MS, BACKOFF_BASE_MS * 2 ** i) - 1);
  assert.deepEqual(delays, want);
  const ws = FakeWebSocket.last();
  ws.open();
  ws.frame({ type: 'welcome', server: 's1' });
  clock.advance(STABLE_MS);
  assert.equal(c.attempt, 0);
});

test('the user is told about closes the page caused', () => {
  const { c, got } = setup();
  c.connect();
  FakeWebSocket.last().serverClose(1009);
  assert.deepEqual(got.warns, ['Disconnected: a message was too big.']);
  assert.deepEqual(got.closes, ['1009']);
});

test('no reconnect when no room needs it, after close, or without a network', () => {
  let wanted = false;
  let online = true;
  const { c, clock, got } = setup({ wanted: () => wanted, online: () => online });
  c.connect();
  FakeWebSocket.last().serverClose(1001);
  assert.equal(got.status.at(-1), 'offline: Offline');
  clock.advance(60000);
  assert.equal(FakeWebSocket.all.length, 1);

  wanted = true;
  welcomed(c, 300);
  c.close();
  assert.deepEqual(FakeWebSocket.last().closedWith, { code: 1000, reason: 'bye' });
  assert.equal(got.status.at(-1), 'offline: Offline');
  clock.advance(60000);
  assert.equal(FakeWebSocket.all.length, 2);
  assert.equal(clock.timers.size, 0, 'a timer is still set');

  online = false;
  c.connect();
  FakeWebSocket.last().serverClose(1006);
  assert.equal(got.status.at(-1), 'offline: Offline (no network)');
  clock.advance(60000);
  assert.equal(FakeWebSocket.all.length, 3);
  online = true;
  c.reconnectNow();
  assert.equal(FakeWebSocket.all.length, 4);
});

test('a wrong address or a constructor that throws', () => {
  const { c, got } = setup({ url: () => { throw new TypeError('bad'); } });
  c.connect();
  assert.equal(got.status.at(-1), 'offline: Offline: the chat address in this page is wrong');
  class Throws { constructor() { throw new Error('no'); } }
  const s = setup();
  s.c.WebSocket = Throws;
  s.c.connect();
  assert.match(s.got.status.at(-1), /cannot reach the server/);
});

test('a socket replaced is not heard from', () => {
  const { c, got } = setup();
  const ws = welcomed(c, 0);
  c.close();
  ws.frame({ type: 'message' });
  ws.serverClose(1006);
  assert.deepEqual(got.frames.map((f) => f.type), ['welcome']);
  assert.deepEqual(got.closes, []);
});

test('Outbox: sent, failed after the ack timeout on the same socket, queued without one', () => {
  const clock = new FakeClock();
  const changes = [];
  let open = true;
  const conn = { ws: {}, sent: [], send(f) { if (!open) return false; this.sent.push(f); return true; } };
  const out = new Outbox({ conn, clock, onChange: (r, e) => changes.push(e.status) });
  const r = new Room('general');
  const e = msgEntry({ from: 'alice', text: 'hi' });
  e.cid = 'c1';
  r.pending.set('c1', e);
  out.transmit(r, e);
  assert.deepEqual(conn.sent, [{ type: 'send', room: 'general', text: 'hi', cid: 'c1' }]);
  clock.advance(ACK_TIMEOUT_MS);
  assert.deepEqual(changes, ['sent', 'failed']);
  // A new socket: the timer of the old one does nothing.
  out.transmit(r, e);
  conn.ws = {};
  clock.advance(ACK_TIMEOUT_MS);
  assert.equal(e.status, 'sent');
  // resend skips failed ones, sends queued and sent ones with their cid.
  e.status = 'failed';
  out.resend(r);
  assert.equal(conn.sent.length, 2);
  e.status = 'queued';
  open = false;
  out.resend(r);
  assert.equal(e.status, 'queued');
  open = true;
  out.resend(r);
  assert.deepEqual(conn.sent.map((f) => f.cid), ['c1', 'c1', 'c1']);
  out.cancel(e);
  clock.advance(ACK_TIMEOUT_MS);
  assert.equal(e.status, 'sent');
});

// Tests of frames.js: what each server frame and user action does to the
// state, and what it reports to the view. Run: node --test web/test/
// (or go test ./web/).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ChatState, Room, Saver, memoryStorage, LS_NAME, LS_ROOMS } from '../state.js';
import { Chat } from '../frames.js';
import { ACK_TIMEOUT_MS } from '../connection.js';
import { FakeClock, recorder, fakeConn, shown } from './fakes.js';

// setup is a page named alice in #general (and the rooms given), connected.
function setup(opts = {}) {
  const clock = new FakeClock();
  const local = opts.local || memoryStorage();
  const session = opts.session || memoryStorage();
  const state = new ChatState();
  const saver = new Saver({ local: local, session: session, clock: clock });
  const view = recorder();
  const conn = fakeConn();
  let n = 0;
  const chat = new Chat({ state, saver, conn, view, clock, newCID: () => 'c' + (++n) });
  state.name = 'alice';
  state.conn = 'connected';
  for (const room of opts.rooms || ['general']) {
    state.rooms.set(room, new Room(room));
  }
  state.active = (opts.rooms || ['general'])[0];
  return { clock, local, session, state, saver, view, conn, chat, r: state.rooms.get(state.active) };
}

function joined(chat, room, extra = {}) {
  chat.onFrame({ type: 'joined', room: room, name: 'alice', members: ['alice', 'bob'], member_count: 2, ...extra });
}

function message(seq, text, more = {}) {
  return { type: 'message', room: 'general', id: 'm' + seq, from: 'bob', text: text || 'hi ' + seq, ts: 1000 + seq, seq: seq, server: 's1', ...more };
}

test('welcome: the server noted, every room joined with since', () => {
  const { chat, state, conn, r } = setup({ rooms: ['general', 'random'] });
  r.lastSeq = 4;
  chat.onFrame({ type: 'welcome', server: 's2', heartbeat_ms: 300, limits: { max_text: 100 } });
  assert.equal(state.serverID, 's2');
  assert.equal(state.heartbeatMs, 300);
  assert.equal(state.maxText(), 100);
  assert.deepEqual(conn.sent, [
    { type: 'join', room: 'general', name: 'alice', since: 4 },
    { type: 'join', room: 'random', name: 'alice' },
  ]);
  assert.equal(r.sinceSent, 4);
});

test('joined: members, "You joined" once, composer', () => {
  const { chat, view, r } = setup();
  joined(chat, 'general');
  assert.equal(r.joined, true);
  assert.deepEqual(r.members, ['alice', 'bob']);
  assert.deepEqual(shown(r), ['-:You joined #general as alice.']);
  assert.ok(view.named('members').length === 1 && view.named('composer').length === 1);
  r.joined = false;
  joined(chat, 'general');
  assert.equal(r.entries.length, 1);
});

test('messages out of order and twice: shown once each, in seq order, at the index the view is told', () => {
  const { chat, view, r } = setup();
  joined(chat, 'general');
  view.take();
  for (const seq of [1, 3, 2, 3, 1]) chat.onFrame(message(seq));
  assert.deepEqual(shown(r).slice(1), ['1:hi 1', '2:hi 2', '3:hi 3']);
  assert.deepEqual(view.named('inserted').map((c) => [c[2], c[3].seq, c[4]]), [[1, 1, 'live'], [2, 3, 'live'], [2, 2, 'live']]);
  // The duplicates only fill in (no second entry).
  assert.equal(view.named('updated').length, 2);
  assert.equal(r.lastSeq, 3);
});

test('a message in another room counts as unread', () => {
  const { chat, view, state } = setup({ rooms: ['general', 'random'] });
  joined(chat, 'random');
  chat.onFrame({ ...message(1), room: 'random' });
  assert.equal(state.rooms.get('random').unread, 1);
  assert.equal(view.named('tabs').length, 1);
});

test('a send: queued until joined, sent with its cid, confirmed by the ack', () => {
  const { chat, view, conn, r, clock } = setup();
  assert.equal(chat.sendText('   '), false);
  assert.equal(chat.sendText('hello'), true);
  const e = r.pending.get('c1');
  assert.equal(e.status, 'queued');
  assert.deepEqual(conn.sent, []);
  joined(chat, 'general');
  assert.deepEqual(conn.sent, [{ type: 'send', room: 'general', text: 'hello', cid: 'c1' }]);
  assert.equal(e.status, 'sent');
  view.take();
  chat.onFrame({ type: 'ack', room: 'general', cid: 'c1', id: 'x1', seq: 7, ts: 5000 });
  assert.equal(r.pending.size, 0);
  assert.deepEqual([e.id, e.seq, e.ts, e.status], ['x1', 7, 5000, '']);
  assert.deepEqual(view.named('updated').map((c) => c[2]), [e]);
  assert.equal(r.lastSeq, 0); // an ack does not raise the last seq
  // The copy of the message fills in the server, once.
  chat.onFrame({ ...message(7, 'hello'), id: 'x1', from: 'alice', cid: 'c1', server: 's3' });
  assert.equal(e.server, 's3');
  assert.equal(r.lastSeq, 7);
  assert.deepEqual(shown(r), ['7:hello', '-:You joined #general as alice.']);
  // No ack timeout after the ack.
  clock.advance(ACK_TIMEOUT_MS + 1);
  assert.equal(e.status, '');
});

test('the copy of an own message before its ack confirms it by cid', () => {
  const { chat, r } = setup();
  joined(chat, 'general');
  chat.sendText('hello');
  const e = r.pending.get('c1');
  chat.onFrame({ ...message(3, 'hello'), id: 'x1', from: 'alice', cid: 'c1' });
  assert.equal(r.pending.size, 0);
  assert.deepEqual([e.id, e.seq, e.status], ['x1', 3, '']);
  chat.onFrame({ type: 'ack', room: 'general', cid: 'c1', id: 'x1', seq: 3 });
  assert.equal(r.entries.filter((x) => x.kind === 'msg').length, 1);
});

test('an ack for a message shown already (from another tab) removes the pending copy', () => {
  const { chat, view, r } = setup();
  joined(chat, 'general');
  chat.sendText('hello');
  const e = r.pending.get('c1');
  chat.onFrame({ ...message(3, 'hello'), id: 'x1', from: 'alice' }); // no cid: not matched
  view.take();
  chat.onFrame({ type: 'ack', room: 'general', cid: 'c1', id: 'x1', seq: 3 });
  assert.deepEqual(view.named('removed').map((c) => c[2]), [e]);
  assert.deepEqual(shown(r).filter((s) => s.includes('hello')), ['3:hello']);
});

test('no ack in time: failed on that connection; retry sends the same cid', () => {
  const { chat, conn, r, clock } = setup();
  joined(chat, 'general');
  chat.sendText('hello');
  const e = r.pending.get('c1');
  clock.advance(ACK_TIMEOUT_MS - 1);
  assert.equal(e.status, 'sent');
  clock.advance(1);
  assert.equal(e.status, 'failed');
  assert.equal(e.why, 'no answer from the server');
  chat.retry('c1');
  assert.equal(e.status, 'sent');
  assert.deepEqual(conn.sent.map((f) => f.cid), ['c1', 'c1']);
  // On a new connection the old timeout does not fail it.
  conn.ws = {};
  clock.advance(ACK_TIMEOUT_MS);
  assert.equal(e.status, 'sent');
});

test('a reconnect sends unacknowledged messages again with their cid, not the failed ones', () => {
  const { chat, conn, r } = setup();
  joined(chat, 'general');
  chat.sendText('one');
  chat.sendText('two');
  chat.onFrame({ type: 'error', room: 'general', cid: 'c2', code: 'rate_limited', message: 'slow down' });
  assert.equal(r.pending.get('c2').status, 'failed');
  assert.equal(r.pending.get('c2').why, 'you are sending too fast');
  chat.connectionLost({ code: 1006 });
  assert.equal(r.joined, false);
  conn.sent = [];
  joined(chat, 'general');
  assert.deepEqual(conn.sent, [{ type: 'send', room: 'general', text: 'one', cid: 'c1' }]);
});

test('connectionLost notes why, keeps the last 10', () => {
  const { chat, state, r } = setup();
  r.typers.set('bob', Infinity);
  for (let i = 0; i < 12; i++) chat.connectionLost({ code: 1006 });
  chat.connectionLost({ code: 4000, tag: 'silent' });
  assert.equal(state.closes.length, 10);
  assert.equal(state.closes[9], 'silent');
  assert.equal(r.typers.size, 0);
});

test('a re-join: the replay is counted and said once it is in', () => {
  const { chat, conn, r } = setup();
  r.lastSeq = 2;
  chat.onFrame({ type: 'welcome', server: 's1' });
  joined(chat, 'general', { last_seq: 4 });
  assert.deepEqual(conn.sent.filter((f) => f.type === 'history'), []);
  chat.onFrame(message(3));
  chat.onFrame(message(4));
  assert.deepEqual(shown(r).slice(-3), ['3:hi 3', '4:hi 4', '-:2 messages came in while you were away.']);
});

test('a truncated re-join: what is lost is said, what is held is fetched page by page', () => {
  const { chat, conn, r } = setup();
  r.lastSeq = 10;
  r.everJoined = true;
  chat.onFrame({ type: 'welcome', server: 's1' });
  // The server holds 21..200 and replays from 151.
  joined(chat, 'general', { last_seq: 200, first_seq: 21, replay_from: 151, truncated: true });
  assert.deepEqual(shown(r), ['-:10 messages you missed are no longer available.', '-:Loading 130 more messages you missed…']);
  assert.deepEqual(r.hole, { low: 21, before: 151 });
  assert.deepEqual(conn.sent.at(-1), { type: 'history', room: 'general', before: 151, limit: 50 });
  // The replay comes, then the hole's pages, newest first.
  for (let s = 151; s <= 200; s++) chat.onFrame(message(s));
  const page = (from, to, more) => ({ type: 'history', room: 'general', more: more,
    messages: Array.from({ length: to - from + 1 }, (_, i) => ({ id: 'm' + (from + i), from: 'bob', text: 'hi ' + (from + i), ts: 1, seq: from + i })) });
  chat.onFrame(page(101, 150, true));
  assert.deepEqual(conn.sent.at(-1), { type: 'history', room: 'general', before: 101, limit: 50 });
  chat.onFrame(page(51, 100, true));
  chat.onFrame(page(21, 50, false));
  assert.equal(r.hole, null);
  const seqs = r.entries.filter((e) => e.kind === 'msg').map((e) => e.seq);
  assert.deepEqual(seqs, Array.from({ length: 180 }, (_, i) => 21 + i));
});

test('older pages when scrolled to the top are put before what is shown', () => {
  const { chat, conn, view, r } = setup();
  joined(chat, 'general', { last_seq: 60 });
  for (let s = 51; s <= 60; s++) chat.onFrame(message(s));
  view.take();
  chat.requestHistory(r, true);
  assert.deepEqual(conn.sent.at(-1), { type: 'history', room: 'general', before: 51, limit: 50 });
  chat.requestHistory(r, true); // one at a time
  assert.equal(conn.sent.filter((f) => f.type === 'history').length, 1);
  chat.onFrame({ type: 'history', room: 'general', more: false, messages: [
    { id: 'm49', from: 'bob', text: 'hi 49', ts: 1, seq: 49 },
    { id: 'm50', from: 'bob', text: 'hi 50', ts: 1, seq: 50 },
    { id: 'm51', from: 'bob', text: 'dup', ts: 1, seq: 51 },
  ] });
  const calls = view.take().map((c) => c[0]);
  assert.deepEqual(calls, ['olderStart', 'inserted', 'inserted', 'olderEnd']);
  // "You joined" was first; the older messages go after it, before 51.
  assert.deepEqual(shown(r).slice(0, 4), ['-:You joined #general as alice.', '49:hi 49', '50:hi 50', '51:hi 51']);
  assert.equal(r.moreHistory, false);
  chat.requestHistory(r, true);
  assert.equal(conn.sent.filter((f) => f.type === 'history').length, 1);
});

test('a reset history: seqs dropped, saved messages forgotten, said once', () => {
  const { chat, view, r } = setup();
  joined(chat, 'general', { last_seq: 2 });
  chat.onFrame(message(1));
  chat.onFrame(message(2));
  chat.connectionLost({ code: 1006 });
  chat.onFrame({ type: 'welcome', server: 's1' });
  view.take();
  joined(chat, 'general', { last_seq: 0, reset: true });
  assert.equal(r.lastSeq, 0);
  assert.deepEqual(r.log, []);
  assert.equal(view.named('updated').length, 2);
  assert.deepEqual(shown(r).slice(1), ['_:hi 1', '_:hi 2', '-:The older messages of #general are no longer available.']);
  chat.onFrame({ ...message(1, 'new'), id: 'n1' });
  assert.deepEqual(shown(r).at(-1), '1:new');
});

test('presence: notices for others, deltas applied, typing cleared', () => {
  const { chat, view, r } = setup();
  joined(chat, 'general');
  r.typers.set('bob', Infinity);
  chat.onFrame({ type: 'presence', room: 'general', joined: ['carol', 'alice'], left: ['bob'], member_count: 2 });
  assert.deepEqual(r.members, ['alice', 'carol']);
  assert.equal(r.typers.has('bob'), false);
  assert.deepEqual(shown(r).slice(1), ['-:carol joined.', '-:bob left.']);
  chat.onFrame({ type: 'presence', room: 'general', joined: ['dave'], member_count: 3 });
  assert.deepEqual(r.members, ['alice', 'carol', 'dave']);
  assert.ok(view.named('members').length >= 3);
});

test('typing: shown for a while, not for oneself', () => {
  const { chat, view, r, clock } = setup();
  chat.onFrame({ type: 'typing', room: 'general', name: 'alice' });
  assert.equal(r.typers.size, 0);
  chat.onFrame({ type: 'typing', room: 'general', name: 'bob' });
  assert.deepEqual(r.typingNames(clock.now()), ['bob']);
  view.take();
  clock.advance(3100);
  assert.deepEqual(r.typingNames(clock.now()), []);
  assert.equal(view.named('typing').length, 1);
});

test('typing is sent at most every 2 s', () => {
  const { chat, conn, clock } = setup();
  joined(chat, 'general');
  chat.typing();
  chat.typing();
  clock.advance(2000);
  chat.typing();
  assert.equal(conn.sent.filter((f) => f.type === 'typing').length, 2);
});

test('a refused join drops the room; the last one goes back to the join form', () => {
  const { chat, view, state, conn } = setup({ rooms: ['general', 'bad'] });
  chat.onFrame({ type: 'error', room: 'bad', code: 'invalid_room', message: 'bad room' });
  assert.deepEqual([...state.rooms.keys()], ['general']);
  assert.match(view.named('toast')[0][1], /^#bad: This room name cannot be used/);
  chat.onFrame({ type: 'error', room: 'general', code: 'invalid_name', message: 'bad name' });
  assert.equal(state.rooms.size, 0);
  assert.equal(conn.closed, 1);
  assert.match(view.named('backToJoin')[0][1].name, /This name cannot be used/);
});

test('errors: not_joined joins again, unavailable retries the join', () => {
  const { chat, conn, clock, r } = setup();
  chat.onFrame({ type: 'error', room: 'general', code: 'unavailable' });
  assert.equal(conn.sent.length, 0);
  clock.advance(2000);
  assert.deepEqual(conn.sent.map((f) => f.type), ['join']);
  joined(chat, 'general');
  chat.onFrame({ type: 'error', room: 'general', code: 'not_joined' });
  assert.deepEqual(conn.sent.map((f) => f.type), ['join', 'join']);
  assert.equal(r.joined, false);
});

test('leaving the last room closes the connection', () => {
  const { chat, conn, state, view, local } = setup();
  chat.leaveRoom('general');
  assert.deepEqual(conn.sent, [{ type: 'leave', room: 'general' }]);
  assert.equal(state.rooms.size, 0);
  assert.equal(conn.closed, 1);
  assert.equal(view.named('backToJoin').length, 1);
  assert.equal(JSON.parse(local.getItem(LS_ROOMS)).rooms.length, 0);
});

test('a reload: rooms, messages, last seq and unsent messages come back; joins say since', () => {
  const local = memoryStorage();
  const session = memoryStorage();
  {
    const { chat, saver, state } = setup({ local, session, rooms: ['general', 'random'] });
    local.setItem(LS_NAME, 'alice');
    chat.setActive('random');
    joined(chat, 'general', { last_seq: 0 });
    joined(chat, 'random', { last_seq: 0 });
    chat.onFrame(message(1));
    chat.onFrame(message(2));
    chat.onFrame({ ...message(5), room: 'random' });
    state.rooms.get('random').joined = false;
    chat.sendText('later'); // unsent, in #random
    saver.flush();
  }
  const { chat, state, conn, view } = setup({ local, session, rooms: [] });
  state.name = '';
  assert.equal(chat.restore(), 'random');
  assert.equal(state.name, 'alice');
  const g = state.rooms.get('general');
  const rnd = state.rooms.get('random');
  assert.deepEqual(shown(g), ['1:hi 1', '2:hi 2']);
  assert.equal(g.lastSeq, 2);
  assert.deepEqual(shown(rnd), ['5:hi 5', '_:later']);
  assert.equal(rnd.pending.get('c1').status, 'queued');
  assert.ok(view.named('inserted').every((c) => c[4] === 'restore'));
  chat.onFrame({ type: 'welcome', server: 's1' });
  assert.deepEqual(conn.sent, [
    { type: 'join', room: 'general', name: 'alice', since: 2 },
    { type: 'join', room: 'random', name: 'alice', since: 5 },
  ]);
  // No "You joined" again; the replay's duplicates are dropped; the unsent
  // message goes out with its cid.
  joined(chat, 'general', { last_seq: 3 });
  chat.onFrame(message(2));
  chat.onFrame(message(3));
  assert.deepEqual(shown(g), ['1:hi 1', '2:hi 2', '3:hi 3', '-:1 message came in while you were away.']);
  joined(chat, 'random', { last_seq: 5 });
  assert.deepEqual(conn.sent.at(-1), { type: 'send', room: 'random', text: 'later', cid: 'c1' });
});

test('nothing saved, or an invalid name: no restore', () => {
  const local = memoryStorage();
  const { chat } = setup({ local, rooms: [] });
  assert.equal(chat.restore(), '');
  local.setItem(LS_ROOMS, '{"v":1,"rooms":["general"]}');
  local.setItem(LS_NAME, ' bad');
  assert.equal(chat.restore(), '');
});

test('a room keeps at most MAX_MESSAGES entries; the oldest go', () => {
  const { chat, view, r } = setup();
  joined(chat, 'general');
  for (let s = 1; s <= 505; s++) chat.onFrame(message(s));
  assert.equal(r.entries.length, 500);
  assert.equal(r.entries[0].seq, 6);
  assert.equal(view.named('trimmed').reduce((n, c) => n + c[2].length, 0), 6);
});

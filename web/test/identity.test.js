// Tests of who the user is in frames.js and connection.js: the welcome's
// user, joins without a name when signed in, guest marks, "removed", a
// refused room, and the identity close codes. Run: node --test web/test/.

import { test, beforeEach } from 'node:test';
import assert from 'node:assert/strict';
import { ChatState, Room, Saver, memoryStorage, LS_SAVED, LS_ROOMS } from '../state.js';
import { Chat } from '../frames.js';
import { Connection, IDENTITY_CLOSES, identityClose } from '../connection.js';
import { FakeClock, FakeWebSocket, recorder, fakeConn, shown } from './fakes.js';

beforeEach(() => FakeWebSocket.reset());

function setup(opts = {}) {
  const clock = new FakeClock();
  const local = memoryStorage();
  const state = new ChatState();
  const saver = new Saver({ local: local, session: memoryStorage(), clock: clock });
  const view = recorder();
  const conn = fakeConn();
  const checks = [];
  const chat = new Chat({ state, saver, conn, view, clock, newCID: () => 'c1', checkSession: () => checks.push(1) });
  state.name = opts.name || 'alice';
  state.user = opts.user === undefined ? { id: 'u1', name: 'alice', guest: false } : opts.user;
  state.conn = 'connected';
  for (const room of opts.rooms || ['general']) state.rooms.set(room, new Room(room));
  state.active = (opts.rooms || ['general'])[0];
  return { clock, local, state, saver, view, conn, chat, checks };
}

test('welcome: the user the server names; a signed-in join names no one, a guest join does', () => {
  const { chat, state, conn, view } = setup({ user: null, name: '' });
  chat.onFrame({ type: 'welcome', server: 's1', user: { id: 'u9', name: 'Alice' } });
  assert.deepEqual(state.user, { id: 'u9', name: 'Alice', guest: false });
  assert.equal(state.name, 'Alice');
  assert.equal(state.signedIn(), true);
  assert.deepEqual(conn.sent, [{ type: 'join', room: 'general' }]);
  assert.equal(view.named('sidebar').length, 1);

  const g = setup({ user: null, name: 'zed' });
  g.chat.onFrame({ type: 'welcome', server: 's1', user: { id: 'g_1', guest: true } });
  assert.deepEqual(g.state.user, { id: 'g_1', name: '', guest: true });
  assert.equal(g.state.signedIn(), false);
  assert.deepEqual(g.conn.sent, [{ type: 'join', room: 'general', name: 'zed' }]);

  // A server without accounts says nothing of the user: the page names itself.
  const old = setup({ user: null, name: 'bob' });
  old.chat.onFrame({ type: 'welcome', server: 's1' });
  assert.deepEqual(old.conn.sent, [{ type: 'join', room: 'general', name: 'bob' }]);
});

test('a welcome for another account than the one of the page: its rooms are forgotten, back to signing in', () => {
  const { chat, state, conn, view } = setup({ rooms: ['_pTEAM'] });
  chat.onFrame({ type: 'welcome', server: 's1', user: { id: 'u2', name: 'bob' } });
  assert.equal(state.rooms.size, 0);
  assert.equal(state.user, null);
  assert.deepEqual(conn.sent, []);
  assert.deepEqual(view.named('signedOut'), [['signedOut', 'Someone else signed in on this browser (in another tab). Sign in again.']]);
});

test('welcome asking for credentials the page lacks: back to signing in', () => {
  const { chat, state, conn, view } = setup({ user: null, name: 'zed' });
  chat.onFrame({ type: 'welcome', server: 's1', auth_required: true, auth_timeout_ms: 5000 });
  assert.equal(state.rooms.size, 0);
  assert.equal(conn.closed, 1);
  assert.deepEqual(view.named('signedOut'), [['signedOut', 'Sign in to chat.']]);
  assert.deepEqual(conn.sent, []);
});

test('guest messages are marked, remembered and brought back marked', () => {
  const { chat, state, saver, r = state.rooms.get('general'), clock } = setup();
  chat.onFrame({ type: 'joined', room: 'general', name: 'alice', members: ['alice', 'bob', 'zed'], member_count: 3 });
  chat.onFrame({ type: 'message', room: 'general', id: 'm1', seq: 1, from: 'zed', user: 'g_1', guest: true, text: 'hi', ts: 1 });
  chat.onFrame({ type: 'message', room: 'general', id: 'm2', seq: 2, from: 'bob', user: 'u2', text: 'yo', ts: 2 });
  const [m1, m2] = r.entries.filter((e) => e.kind === 'msg');
  assert.equal(m1.guest, true);
  assert.equal(m2.guest, false);
  assert.equal(m1.user, 'g_1');
  assert.deepEqual(Array.from(r.guests), ['zed']);
  clock.advance(1000);
  const d = saver.readRoom('general');
  assert.deepEqual(d.messages.map((m) => [m.from, m.guest === true]), [['zed', true], ['bob', false]]);
  // A reload shows the mark again.
  saver.saveRoomList(state);
  const again = setup();
  again.state.rooms.clear();
  again.saver.local = saver.local;
  again.saver.session = saver.session;
  assert.equal(again.chat.restore(), 'general');
  assert.deepEqual(again.state.rooms.get('general').entries.map((e) => e.guest), [true, false]);
});

test('removed from a room: it leaves the page and the sidebar, in words with its title', () => {
  const { chat, state, view, local } = setup({ rooms: ['general', '_pTEAM'] });
  state.sidebar.setConversations([{ room: { id: '_pTEAM', kind: 'private', name: 'Team' }, role: 'member' }]);
  local.setItem(LS_SAVED + '_pTEAM', '{}');
  chat.onFrame({ type: 'left', room: '_pTEAM' }); // an answer to our own leave: nothing
  assert.ok(state.rooms.has('_pTEAM'));
  chat.onFrame({ type: 'left', room: '_pTEAM', reason: 'removed' });
  assert.equal(state.rooms.has('_pTEAM'), false);
  assert.equal(state.sidebar.get('_pTEAM'), null);
  assert.equal(local.getItem(LS_SAVED + '_pTEAM'), null);
  assert.deepEqual(view.named('toast'), [['toast', 'You were removed from Team.', 'error']]);
  assert.equal(view.named('sidebar').length, 1);
  // The last room: the page says it where the user lands.
  chat.onFrame({ type: 'left', room: 'general', reason: 'removed' });
  assert.deepEqual(view.named('backToJoin'), [['backToJoin', { form: 'You were removed from #general.' }]]);
});

test('a room the user may not enter: not_found in words, gone from the page and the sidebar', () => {
  const { chat, state, view } = setup({ rooms: ['general', '_pGONE'] });
  state.sidebar.setConversations([{ room: { id: '_pGONE', kind: 'private', name: 'Gone' }, role: 'member' }]);
  chat.onFrame({ type: 'error', room: '_pGONE', code: 'not_found', message: 'no such room' });
  assert.equal(state.rooms.has('_pGONE'), false);
  assert.equal(state.sidebar.get('_pGONE'), null);
  assert.deepEqual(view.named('toast'), [['toast', 'This conversation does not exist or you do not have access to it.', 'error']]);
  chat.onFrame({ type: 'error', room: 'general', code: 'not_found', message: 'no such room' });
  assert.deepEqual(view.named('backToJoin'), [['backToJoin', { form: 'This conversation does not exist or you do not have access to it.' }]]);
});

test('a guest name an account holds: back to the join form, said at the name', () => {
  const { chat, view } = setup({ user: { id: 'g_1', name: '', guest: true }, name: 'alice' });
  chat.onFrame({ type: 'error', room: 'general', code: 'name_taken', message: 'taken' });
  assert.deepEqual(view.named('backToJoin'), [['backToJoin', { name: 'That name belongs to an account: sign in, or pick another name.' }]]);
});

test('the joined notice of a private room or direct chat names its title', () => {
  const { chat, state } = setup({ rooms: ['_dBOB'] });
  state.sidebar.setConversations([{ room: { id: '_dBOB', kind: 'direct' }, role: 'member', peer: { id: 'u2', name: 'bob' } }]);
  chat.onFrame({ type: 'joined', room: '_dBOB', name: 'alice', members: ['alice', 'bob'] });
  assert.deepEqual(shown(state.rooms.get('_dBOB')), ['-:Direct chat with bob.']);
});

test('identity close codes: every room forgotten, no reconnect, back to signing in with the reason', () => {
  for (const [code, text] of [[4001, 'Could not sign in to the chat.'], [4002, 'Your session expired. Sign in again.'],
    [4003, 'You were signed out (in another tab or device). Sign in again.'], [4004, 'This account was closed.']]) {
    assert.equal(identityClose(code), text);
    const { chat, state, view, conn, local } = setup({ rooms: ['general', '_pTEAM'] });
    local.setItem(LS_SAVED + '_pTEAM', '{"v":1}');
    state.sidebar.setConversations([{ room: { id: '_pTEAM', kind: 'private', name: 'Team' }, role: 'member' }]);
    chat.connectionLost({ code: code, welcomed: true });
    assert.equal(state.rooms.size, 0, String(code));
    assert.equal(state.user, null);
    assert.equal(state.sidebar.get('_pTEAM'), null);
    assert.equal(local.getItem(LS_SAVED + '_pTEAM'), null);
    assert.deepEqual(JSON.parse(local.getItem(LS_ROOMS)).rooms, []);
    assert.equal(conn.closed, 1);
    assert.deepEqual(view.named('signedOut'), [['signedOut', text]]);
  }
  assert.deepEqual(Object.keys(IDENTITY_CLOSES), ['4001', '4002', '4003', '4004']);
  assert.equal(identityClose(1006), '');
  assert.equal(identityClose(4000), '');
});

test('a signed-in page that cannot connect checks its session; a guest or a welcomed connection does not', () => {
  const { chat, checks, state } = setup();
  chat.connectionLost({ code: 1006, welcomed: false });
  assert.equal(checks.length, 1);
  chat.connectionLost({ code: 1006, welcomed: true });
  chat.connectionLost({ code: 4000, tag: 'no-welcome', welcomed: false });
  assert.equal(checks.length, 1);
  state.user = { id: 'g_1', name: 'zed', guest: true };
  chat.connectionLost({ code: 1006, welcomed: false });
  assert.equal(checks.length, 1);
});

test('Connection: after an identity close it does not reconnect; onClose says whether the welcome came', () => {
  const clock = new FakeClock();
  const closes = [];
  const status = [];
  const c = new Connection({
    url: () => 'ws://test/ws', WebSocket: FakeWebSocket, clock: clock, random: () => 0.5,
    onClose: (ev) => closes.push([ev.code, ev.welcomed]), onStatus: (s, t) => status.push(s + ': ' + t),
  });
  c.connect();
  const ws = FakeWebSocket.last();
  ws.open();
  ws.frame({ type: 'welcome', server: 's1' });
  ws.serverClose(4003);
  assert.deepEqual(closes, [[4003, true]]);
  assert.equal(status.at(-1), 'offline: Offline');
  clock.advance(60000);
  assert.equal(FakeWebSocket.all.length, 1);
  assert.equal(c.idle(), true);
  // A later connect (signed in again) works as before; a 1006 before the welcome reconnects.
  c.connect();
  FakeWebSocket.last().serverClose(1006);
  assert.deepEqual(closes.at(-1), [1006, false]);
  clock.advance(1000);
  assert.equal(FakeWebSocket.all.length, 3);
});

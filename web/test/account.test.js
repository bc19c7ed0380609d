// Tests of account.js over a fake fetch: what the page does on load
// (signed in, signed out, a guest coming back, an older server), signing
// in, up and out, the rooms list, private rooms, invitations and direct
// chats, each failure in words. Run: node --test web/test/.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ChatState, Room, Saver, memoryStorage, LS_NAME, LS_ROOMS, SAVE_VERSION } from '../state.js';
import { Chat } from '../frames.js';
import { Api } from '../api.js';
import { Account, DEFAULT_ROOM, CHECK_SESSION_MS } from '../account.js';
import { FakeClock, recorder, fakeConn, fakeFetch, apiErr } from './fakes.js';

const ALICE = { id: 'u1', name: 'alice' };
const CONVS = {
  status: 200,
  body: {
    conversations: [
      { room: { id: '_dBOB', name: '', kind: 'direct', last_active: 3 }, role: 'member', peer: { id: 'u2', name: 'bob' } },
      { room: { id: '_pTEAM', name: 'Team', kind: 'private', last_active: 2 }, role: 'owner' },
      { room: { id: '_pINV', name: 'Party', kind: 'private', last_active: 1 }, role: 'invited' },
    ],
  },
};
const ROOMS = { status: 200, body: { rooms: [{ id: 'general', name: 'general', kind: 'public', last_active: 1 }] } };

function setup(routes = {}, opts = {}) {
  const clock = new FakeClock();
  const local = opts.local || memoryStorage();
  const state = new ChatState();
  const saver = new Saver({ local: local, session: memoryStorage(), clock: clock });
  const view = recorder();
  const conn = fakeConn();
  conn.open = false; // not connected: joins wait for the welcome
  conn.ws = null;
  const chat = new Chat({ state, saver, conn, view, clock, newCID: () => 'c1' });
  const fetch = fakeFetch({ 'GET /api/rooms': ROOMS, 'GET /api/conversations': CONVS, ...routes });
  const api = new Api({ fetch });
  let hash = opts.hash || '';
  const account = new Account({ api, state, chat, view, clock, hash: () => hash });
  return { clock, local, state, saver, view, conn, chat, fetch, account, setHash: (h) => { hash = h; } };
}

// settle lets the refresh started by an action finish.
const settle = () => new Promise((resolve) => setTimeout(resolve, 0));

test('load, signed in: no name asked, the default room, the rooms list', async () => {
  const { account, state, view, fetch } = setup({ 'GET /api/account/me': { body: { user: ALICE, guests: true } } });
  assert.equal(await account.start(), 'chat');
  await settle();
  assert.deepEqual(state.user, { id: 'u1', name: 'alice', guest: false });
  assert.equal(state.name, 'alice');
  assert.deepEqual(Array.from(state.rooms.keys()), [DEFAULT_ROOM]);
  assert.deepEqual(view.named('enterChat'), [['enterChat', DEFAULT_ROOM]]);
  assert.deepEqual(fetch.calls.map((c) => c.url), ['/api/account/me', '/api/rooms', '/api/conversations']);
  assert.deepEqual(state.sidebar.conversations().map((c) => c.title), ['bob', 'Team']);
  assert.deepEqual(state.sidebar.invitations().map((c) => c.title), ['Party']);
  assert.deepEqual(state.sidebar.publicRooms.map((p) => p.id), ['general']);
  assert.ok(view.named('sidebar').length >= 1);
});

test('load, signed in, with #room=ID and saved rooms of this account: both, the hash one shown', async () => {
  const local = memoryStorage();
  local.setItem(LS_ROOMS, JSON.stringify({ v: SAVE_VERSION, rooms: ['random'], active: 'random', user: 'u1' }));
  const { account, state, view } = setup({ 'GET /api/account/me': { body: { user: ALICE, guests: false } } }, { local, hash: '#room=_pTEAM' });
  await account.start();
  assert.deepEqual(Array.from(state.rooms.keys()), ['random', '_pTEAM']);
  assert.deepEqual(view.named('enterChat'), [['enterChat', '_pTEAM']]);
  assert.equal(state.guests, false);
});

test('saved rooms of another account are not brought back', async () => {
  const local = memoryStorage();
  local.setItem(LS_ROOMS, JSON.stringify({ v: SAVE_VERSION, rooms: ['_pSECRET'], active: '_pSECRET', user: 'u7' }));
  const { account, state } = setup({ 'GET /api/account/me': { body: { user: ALICE, guests: true } } }, { local });
  await account.start();
  assert.deepEqual(Array.from(state.rooms.keys()), [DEFAULT_ROOM]);
});

test('load, signed out: signing in, with or without guests; a guest coming back gets its rooms', async () => {
  let t = setup({ 'GET /api/account/me': { body: { user: null, guests: true } } });
  assert.equal(await t.account.start(), 'signin');
  assert.deepEqual(t.view.named('signedOut'), [['signedOut', '']]);
  assert.equal(t.state.guests, true);

  t = setup({ 'GET /api/account/me': { body: { user: null, guests: false } } });
  await t.account.start();
  assert.equal(t.state.guests, false);

  const local = memoryStorage();
  local.setItem(LS_ROOMS, JSON.stringify({ v: SAVE_VERSION, rooms: ['general'], active: 'general' }));
  local.setItem(LS_NAME, 'zed');
  t = setup({ 'GET /api/account/me': { body: { user: null, guests: true } } }, { local });
  assert.equal(await t.account.start(), 'chat');
  assert.equal(t.state.name, 'zed');
  assert.deepEqual(t.view.named('enterChat'), [['enterChat', 'general']]);
  // Without guests the same saved rooms do not open.
  t = setup({ 'GET /api/account/me': { body: { user: null, guests: false } } }, { local });
  assert.equal(await t.account.start(), 'signin');
});

test('load: an older server without accounts is guests only; an unreachable one is said', async () => {
  let t = setup({});
  assert.equal(await t.account.start(), 'signin');
  assert.equal(t.state.accounts, false);
  assert.equal(t.state.guests, true);
  t = setup({ 'GET /api/account/me': 'network' });
  await t.account.start();
  assert.deepEqual(t.view.named('signedOut'), [['signedOut', 'Cannot reach the chat. Check your connection and try again.']]);
});

test('sign in and sign up: each failure in words, success opens the chat', async () => {
  const { account, state, fetch } = setup({
    'POST /api/account/signin': (c) => (c.body.password === 'right one'
      ? { body: { user: ALICE } }
      : c.body.name === 'slow' ? apiErr(429, 'throttled', 'too many', { 'Retry-After': '42' }) : apiErr(401, 'bad_credentials', 'wrong name or password')),
    'POST /api/account/signup': (c) => (c.body.name === 'taken' ? apiErr(409, 'name_taken')
      : apiErr(400, 'invalid_password', 'a password needs at least 8 characters')),
  });
  assert.equal(await account.signIn('', 'x'), 'Enter your name.');
  assert.equal(await account.signIn('alice', ''), 'Enter your password.');
  assert.equal(fetch.calls.length, 0);
  assert.equal(await account.signIn('alice', 'wrong'), 'Wrong name or password.');
  assert.equal(await account.signIn('slow', 'wrong'), 'Too many attempts. Try again in 42 seconds.');
  assert.equal(await account.signIn('taken', 'long enough', true), 'That name is taken. Pick another one.');
  assert.equal(await account.signIn('new', 'short', true), 'A password needs at least 8 characters.');
  assert.match(await account.signIn('bad<name>', 'long enough', true), /Name may only use/);
  assert.equal(state.user, null);
  assert.equal(await account.signIn(' alice ', 'right one'), '');
  assert.deepEqual(fetch.calls.find((c) => c.body && c.body.password === 'right one').body, { name: 'alice', password: 'right one' });
  assert.equal(state.signedIn(), true);
  assert.ok(state.rooms.has(DEFAULT_ROOM));
});

test('a guest page that signs in leaves its guest rooms first', async () => {
  const { account, state, conn } = setup({ 'POST /api/account/signin': { body: { user: ALICE } } });
  state.name = 'zed';
  state.user = { id: 'g_1', name: 'zed', guest: true };
  state.rooms.set('lobby', new Room('lobby'));
  conn.ws = {};
  assert.equal(await account.signIn('alice', 'pw'), '');
  assert.equal(conn.closed, 1);
  assert.deepEqual(Array.from(state.rooms.keys()), [DEFAULT_ROOM]);
  assert.equal(state.name, 'alice');
});

test('sign out: the socket closes first, then the session ends on the server and in the page', async () => {
  let closedBeforePost = false;
  const t = setup({
    'GET /api/account/me': { body: { user: ALICE, guests: true } },
    'POST /api/account/signout': () => { closedBeforePost = t.conn.closed === 1; return { status: 204 }; },
  });
  await t.account.start();
  await settle();
  assert.equal(await t.account.signOut(), '');
  assert.equal(closedBeforePost, true);
  assert.equal(t.state.user, null);
  assert.equal(t.state.rooms.size, 0);
  assert.deepEqual(t.view.named('signedOut'), [['signedOut', 'You signed out.']]);
});

test('sign out refused (another site): said, and the page stays', async () => {
  const t = setup({
    'GET /api/account/me': { body: { user: ALICE, guests: true } },
    'POST /api/account/signout': apiErr(403, 'cross_origin', 'cross-origin request'),
  });
  await t.account.start();
  const connects = t.conn.connects;
  assert.match(await t.account.signOut(), /another address/);
  assert.equal(t.state.signedIn(), true);
  assert.equal(t.conn.connects, connects + 1); // connected again
});

test('a private room: made with its title, listed as owned, opened', async () => {
  const t = setup({
    'GET /api/account/me': { body: { user: ALICE, guests: true } },
    'POST /api/rooms': (c) => ({ status: 201, body: { room: { id: '_pNEW', name: c.body.name, kind: 'private', last_active: 9 } } }),
  });
  await t.account.start();
  await settle();
  assert.equal(await t.account.createPrivate('   '), 'Give the room a name.');
  assert.match(await t.account.createPrivate('x'.repeat(65)), /at most 64/);
  assert.equal(await t.account.createPrivate(' Book club '), '');
  assert.deepEqual(t.fetch.calls.at(-1).body, { name: 'Book club', kind: 'private' });
  const e = t.state.sidebar.get('_pNEW');
  assert.deepEqual([e.title, e.role], ['Book club', 'owner']);
  assert.equal(t.state.sidebar.canInvite('_pNEW'), true);
  assert.equal(t.state.sidebar.conversations()[0].id, '_pNEW');
  assert.deepEqual(t.view.named('openRoom'), [['openRoom', '_pNEW']]);
});

test('invite: each refusal in words', async () => {
  const answers = {
    nobody: apiErr(404, 'no_user', 'no such user'),
    bob: apiErr(409, 'exists', 'already a member'),
    carol: { status: 201, body: {} },
    dave: apiErr(403, 'forbidden', 'owner only'),
    eve: apiErr(403, 'cross_origin', 'cross-origin request'),
  };
  const t = setup({ 'POST /api/rooms/_pTEAM/members': (c) => answers[c.body.name] });
  t.state.user = { id: 'u1', name: 'alice', guest: false };
  assert.equal(await t.account.invite('_pTEAM', ''), 'Enter the name of who to invite.');
  assert.equal(await t.account.invite('_pTEAM', 'nobody'), 'No user with that name.');
  assert.equal(await t.account.invite('_pTEAM', 'bob'), 'bob is already in this room or invited.');
  assert.equal(await t.account.invite('_pTEAM', 'carol'), '');
  assert.equal(await t.account.invite('_pTEAM', 'dave'), 'Only the owner of this room can do that.');
  assert.match(await t.account.invite('_pTEAM', 'eve'), /another address/);
  assert.equal(await t.account.invite('_pOTHER', 'bob'), 'This conversation does not exist or you do not have access to it.');
});

test('invitations: accept opens the room, decline removes it; a withdrawn one disappears', async () => {
  const t = setup({
    'GET /api/account/me': { body: { user: ALICE, guests: true } },
    'POST /api/rooms/_pINV/accept': { status: 204 },
    'DELETE /api/rooms/_pINV/members/u1': { status: 204 },
  });
  await t.account.start();
  await settle();
  assert.equal(await t.account.accept('_pINV'), '');
  assert.equal(t.state.sidebar.get('_pINV').role, 'member');
  assert.deepEqual(t.view.named('openRoom'), [['openRoom', '_pINV']]);
  assert.equal(await t.account.decline('_pINV'), '');
  assert.equal(t.state.sidebar.get('_pINV'), null);
  t.state.sidebar.upsert({ room: { id: '_pWITHDRAWN', name: 'W' }, role: 'invited' });
  assert.equal(await t.account.accept('_pWITHDRAWN'), 'This conversation does not exist or you do not have access to it.');
  assert.equal(t.state.sidebar.get('_pWITHDRAWN'), null);
});

test('direct chats: titled by the peer, not offered for guests, yourself or names seen as guests', async () => {
  const t = setup({
    'GET /api/account/me': { body: { user: ALICE, guests: true } },
    'POST /api/direct': (c) => (c.body.name === 'carol'
      ? { status: 201, body: { room: { id: '_dCAROL', name: '', kind: 'direct' }, peer: { id: 'u3', name: 'carol' } } }
      : apiErr(404, 'no_user', 'no such user')),
  });
  await t.account.start();
  await settle();
  const r = t.state.rooms.get(DEFAULT_ROOM);
  r.guests.add('zed');
  assert.equal(t.account.canDirect('carol', DEFAULT_ROOM), true);
  assert.equal(t.account.canDirect('alice', DEFAULT_ROOM), false);
  assert.equal(t.account.canDirect('zed', DEFAULT_ROOM), false);
  assert.equal(await t.account.direct('alice'), 'You cannot start a direct chat with yourself.');
  assert.equal(await t.account.direct('ghost'), 'No user with that name.');
  assert.equal(await t.account.direct('carol'), '');
  assert.deepEqual(t.fetch.calls.at(-1).body, { name: 'carol' });
  assert.equal(t.state.title('_dCAROL'), 'carol');
  assert.deepEqual(t.view.named('openRoom'), [['openRoom', '_dCAROL']]);
  // A guest is offered none.
  t.state.user = { id: 'g_1', name: 'zed', guest: true };
  assert.equal(t.account.canDirect('carol', DEFAULT_ROOM), false);
  assert.equal(await t.account.direct('carol'), 'Sign in to start a direct chat.');
});

test('a session that ended on the server: the rooms list or a check sends the page to signing in', async () => {
  let t = setup({ 'GET /api/account/me': { body: { user: ALICE, guests: true } }, 'GET /api/conversations': apiErr(401, 'signed_out', 'sign in') });
  await t.account.start();
  await settle();
  assert.equal(t.state.user, null);
  assert.deepEqual(t.view.named('signedOut'), [['signedOut', 'Your session expired. Sign in again.']]);

  let me = { body: { user: ALICE, guests: true } };
  t = setup({ 'GET /api/account/me': () => me });
  await t.account.start();
  await settle();
  await t.account.checkSession(); // still signed in
  assert.equal(t.state.signedIn(), true);
  me = { body: { user: null, guests: true } };
  await t.account.checkSession(); // too soon after the last check
  assert.equal(t.state.signedIn(), true);
  t.clock.advance(CHECK_SESSION_MS);
  await t.account.checkSession();
  assert.equal(t.state.signedIn(), false);
  assert.deepEqual(t.view.named('signedOut'), [['signedOut', 'Your session expired. Sign in again.']]);

  // /me refusing the cookie outright is the same; a server that is away is not.
  me = { body: { user: ALICE, guests: true } };
  t = setup({ 'GET /api/account/me': () => me });
  await t.account.start();
  me = 'network';
  t.clock.advance(CHECK_SESSION_MS);
  await t.account.checkSession();
  assert.equal(t.state.signedIn(), true);
  me = apiErr(401, 'signed_out', 'sign in');
  t.clock.advance(CHECK_SESSION_MS);
  await t.account.checkSession();
  assert.equal(t.state.signedIn(), false);
});

test('load with a cookie the server refuses: signed out, no error shown', async () => {
  const t = setup({ 'GET /api/account/me': apiErr(401, 'signed_out', 'sign in') });
  assert.equal(await t.account.start(), 'signin');
  assert.deepEqual(t.view.named('signedOut'), [['signedOut', '']]);
});

test('the rooms list keeps a failure in words; a guest asks only for public rooms', async () => {
  const t = setup({ 'GET /api/rooms': apiErr(503, 'unavailable', 'down') });
  t.state.user = { id: 'g_1', name: 'zed', guest: true };
  await t.account.refresh();
  assert.equal(t.state.sidebar.error, 'The chat is having trouble right now. Try again in a moment.');
  assert.deepEqual(t.fetch.calls.map((c) => c.url), ['/api/rooms']);
});

test('the URL hash opens its room', () => {
  const t = setup();
  t.setHash('#room=_pTEAM');
  t.account.openHash();
  t.state.active = '_pTEAM';
  t.account.openHash(); // shown already
  t.setHash('#nothing');
  t.account.openHash();
  assert.deepEqual(t.view.named('openRoom'), [['openRoom', '_pTEAM']]);
});

test('a link opened while signed out leads to its room after signing in (the sign-in screen clears the hash)', async () => {
  const { account, state, setHash, view } = setup({
    'GET /api/account/me': { body: { user: null, guests: false } },
    'POST /api/account/signin': { body: { user: ALICE } },
  }, { hash: '#room=_pTEAM' });
  assert.equal(await account.start(), 'signin');
  setHash(''); // what showing the sign-in screen does to the URL
  assert.equal(await account.signIn('alice', 'right one'), '');
  assert.ok(state.rooms.has('_pTEAM'), 'the linked room was not opened');
  assert.ok(!state.rooms.has(DEFAULT_ROOM));
  assert.deepEqual(view.named('enterChat').at(-1), ['enterChat', '_pTEAM']);
  // Only once: signing in again later does not go back to it.
  assert.equal(account.wanted, '');
});

// Tests of the rooms list in state.js: titles (never a server-made id),
// the conversations and invitations from GET /api/conversations, the URL
// hash, and saved rooms kept per account. Run: node --test web/test/.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ChatState, Saver, Sidebar, convEntry, roomKind, roomTitle, hashRoom, roomHash, memoryStorage } from '../state.js';
import { FakeClock } from './fakes.js';

const room = (id, kind, name, at) => ({ id: id, name: name || '', kind: kind, last_active: at || 0 });

test('kinds and titles: #public, a direct chat by its peer, a private room by its title', () => {
  assert.equal(roomKind('general'), 'public');
  assert.equal(roomKind('_pabc'), 'private');
  assert.equal(roomKind('_dabc'), 'direct');
  assert.equal(roomKind('_x'), 'private');
  assert.equal(roomTitle('general'), '#general');
  assert.equal(roomTitle('_dabc', { kind: 'direct', peer: { name: 'bob' } }), 'bob');
  assert.equal(roomTitle('_pabc', { kind: 'private', name: 'Team' }), 'Team');
  // Without what the server said, never the raw id.
  assert.equal(roomTitle('_pabcdefghijklmnopqrst'), 'Private room');
  assert.equal(roomTitle('_dabcdefghijklmnopqrst'), 'Direct chat');
  assert.equal(roomTitle('_dabc', { kind: 'direct', peer: { name: '' } }), 'Direct chat');
  assert.equal(new ChatState().title('_pzzz'), 'Private room');
});

test('conversations: invitations apart, the server order kept, titles, bad items ignored', () => {
  const sb = new Sidebar();
  sb.setConversations([
    { room: room('_dAAA', 'direct', '', 30), role: 'member', peer: { id: 'u2', name: 'bob' } },
    { room: room('_pBBB', 'private', 'Team <b>', 20), role: 'owner' },
    { room: room('_pCCC', 'private', 'Secret', 10), role: 'invited' },
    { room: room('general', 'public', 'general'), role: 'member' }, // not a conversation
    { room: { id: 'bad id!' }, role: 'member' },
    { role: 'member' },
    null,
    { room: room('_pBBB', 'private', 'again'), role: 'member' }, // listed once
  ]);
  assert.equal(sb.loaded, true);
  assert.deepEqual(sb.conversations().map((c) => [c.id, c.kind, c.title, c.role]), [
    ['_dAAA', 'direct', 'bob', 'member'],
    ['_pBBB', 'private', 'Team <b>', 'owner'],
  ]);
  assert.deepEqual(sb.invitations().map((c) => [c.id, c.title]), [['_pCCC', 'Secret']]);
  assert.equal(sb.title('_dAAA'), 'bob');
  assert.equal(sb.get('_dAAA').peer.id, 'u2');
  assert.equal(sb.canInvite('_pBBB'), true);
  assert.equal(sb.canInvite('_pCCC'), false);
  assert.equal(sb.canInvite('_dAAA'), false);
  assert.equal(sb.remove('_pCCC'), true);
  assert.equal(sb.remove('_pCCC'), false);
  assert.deepEqual(sb.invitations(), []);
});

test('an accepted invitation, an upsert (first, keeping what was known), a kind from the id', () => {
  const sb = new Sidebar();
  sb.setConversations([
    { room: room('_pOLD', 'private', 'Old'), role: 'member' },
    { room: room('_pINV', 'private', 'Invited'), role: 'invited' },
    { room: room('_dBOB', 'direct'), role: 'member', peer: { id: 'u2', name: 'bob' } },
  ]);
  sb.setRole('_pINV', 'member');
  assert.deepEqual(sb.invitations(), []);
  const e = sb.upsert({ room: { id: '_dBOB' }, role: 'member' });
  assert.equal(e.kind, 'direct');
  assert.equal(e.title, 'bob'); // the peer known before
  assert.deepEqual(sb.conversations().map((c) => c.id), ['_dBOB', '_pOLD', '_pINV']);
  assert.equal(sb.upsert({ room: room('general', 'public') }), null);
  assert.equal(convEntry({ room: { id: '_pX', kind: 'weird' }, role: 'boss' }).kind, 'private');
  assert.equal(convEntry({ room: { id: '_pX' }, role: 'boss' }).role, 'member');
});

test('public rooms: valid public ids once, server-made ids left out', () => {
  const sb = new Sidebar();
  sb.setPublic([room('general', 'public'), room('_pX', 'private'), room('random', 'public'), room('general', 'public'), { id: 'no way' }, null]);
  assert.deepEqual(sb.publicRooms, [{ id: 'general', title: '#general' }, { id: 'random', title: '#random' }]);
  sb.setPublic(undefined);
  assert.deepEqual(sb.publicRooms, []);
});

test('the URL hash names a room', () => {
  assert.equal(hashRoom('#room=general'), 'general');
  assert.equal(hashRoom(roomHash('_pABC-_x')), '_pABC-_x');
  assert.equal(hashRoom('room=random'), 'random');
  for (const h of ['', '#', '#room=', '#room=a b', '#room=%E0%A4%A', '#other=x', undefined]) assert.equal(hashRoom(h), '', String(h));
});

test('saved rooms belong to whoever saved them: another account (or a guest) does not get them', () => {
  const clock = new FakeClock();
  const saver = new Saver({ local: memoryStorage(), session: memoryStorage(), clock });
  const s = new ChatState();
  s.user = { id: 'u1', name: 'alice', guest: false };
  s.rooms.set('_pTEAM', null);
  s.active = '_pTEAM';
  saver.saveRoomList(s);
  assert.deepEqual(saver.readRoomList('u1'), { rooms: ['_pTEAM'], active: '_pTEAM' });
  assert.equal(saver.readRoomList('u2'), null);
  assert.equal(saver.readRoomList(), null);
  // A guest's list has no owner.
  s.user = { id: 'g_1', name: 'zed', guest: true };
  saver.saveRoomList(s);
  assert.deepEqual(saver.readRoomList(''), { rooms: ['_pTEAM'], active: '_pTEAM' });
  assert.equal(saver.readRoomList('u1'), null);
});

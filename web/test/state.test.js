// Tests of state.js: the order of a room's entries, what is saved for a
// reload, members. Run: node --test web/test/ (or go test ./web/).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Room, ChatState, Saver, memoryStorage, msgEntry, validName, validRoom, LS_SAVED, LS_ROOMS, KEEP_MESSAGES } from '../state.js';
import { FakeClock, shown } from './fakes.js';

function msg(seq, text, id) {
  return msgEntry({ id: id || 'id' + seq, from: 'bob', text: text || 'm' + seq, ts: 1000 + seq, seq: seq });
}

test('messages are kept in seq order whatever order they come in', () => {
  const r = new Room('general');
  const got = [];
  for (const seq of [5, 2, 9, 7, 1, 8]) got.push(r.addMessage(msg(seq)));
  assert.deepEqual(got, [0, 0, 2, 2, 0, 4]); // the index each went to
  assert.deepEqual(shown(r), ['1:m1', '2:m2', '5:m5', '7:m7', '8:m8', '9:m9']);
});

test('duplicates by id are dropped', () => {
  const r = new Room('general');
  assert.equal(r.addMessage(msg(1)), 0);
  assert.equal(r.addMessage(msg(2)), 1);
  assert.equal(r.addMessage(msg(1)), -1);
  assert.equal(r.addMessage(msg(2, 'again')), -1);
  assert.deepEqual(shown(r), ['1:m1', '2:m2']);
});

test('messages without a seq and notices keep their arrival place', () => {
  const r = new Room('general');
  r.addMessage(msg(3));
  r.place({ kind: 'notice', text: 'hi' });
  r.addMessage(msgEntry({ id: 'x', from: 'carol', text: 'no seq' }));
  r.addMessage(msg(4));
  r.addMessage(msg(1)); // an older one from history goes first
  r.addMessage(msg(2));
  assert.deepEqual(shown(r), ['1:m1', '2:m2', '3:m3', '-:hi', '_:no seq', '4:m4']);
  // A seq between goes before the first entry with a higher seq, after
  // what arrived after the lower one.
  r.addMessage(msg(3.5, 'm3.5', 'y'));
  assert.deepEqual(shown(r), ['1:m1', '2:m2', '3:m3', '-:hi', '_:no seq', '3.5:m3.5', '4:m4']);
});

test('a seq learnt later takes the key only where it keeps the order', () => {
  const r = new Room('general');
  r.addMessage(msg(1));
  const own = msgEntry({ from: 'alice', text: 'mine' });
  r.place(own);
  r.setSeq(own, 2);
  assert.equal(own.key, 2);
  r.addMessage(msg(3));
  // Another own message overtaken by a later one: its seq is shown, its
  // place stays, and the entries stay sorted for the next insert.
  const late = msgEntry({ from: 'alice', text: 'late' });
  r.place(late);
  r.addMessage(msg(5));
  r.setSeq(late, 6);
  assert.equal(late.seq, 6);
  assert.equal(late.key, 3);
  r.addMessage(msg(4));
  assert.deepEqual(shown(r), ['1:m1', '2:mine', '3:m3', '6:late', '4:m4', '5:m5']);
  for (let i = 1; i < r.entries.length; i++) assert.ok(r.entries[i - 1].key <= r.entries[i].key);
});

test('remove, trim and byId', () => {
  const r = new Room('general');
  for (let s = 1; s <= 6; s++) r.addMessage(msg(s));
  const e3 = r.byId.get('id3');
  assert.equal(r.remove(e3), 2);
  assert.equal(r.byId.has('id3'), false);
  assert.equal(r.remove(e3), -1);
  const gone = r.trim(3);
  assert.deepEqual(gone.map((e) => e.seq), [1, 2]);
  assert.deepEqual(shown(r), ['4:m4', '5:m5', '6:m6']);
  assert.equal(r.byId.has('id1'), false);
  assert.equal(r.seen.has('id1'), true); // still a duplicate if it comes again
  assert.equal(r.oldestSeq(), 4);
});

test('a reset history: the shown messages lose their seqs, new ones go after them', () => {
  const r = new Room('general');
  for (const s of [10, 11, 12]) r.addMessage(msg(s));
  const changed = r.forgetOrder(true);
  assert.equal(changed.length, 3);
  assert.equal(r.oldestSeq(), 0);
  r.addMessage(msg(1, 'new 1', 'n1'));
  r.addMessage(msgEntry({ id: 'n0', from: 'bob', text: 'new 0', seq: 0 }));
  assert.deepEqual(shown(r), ['_:m10', '_:m11', '_:m12', '1:new 1', '_:new 0']);
});

test('noteSeq: the last seq, and a restarted history', () => {
  const r = new Room('general');
  assert.equal(r.noteSeq(1, 'a', true), true);
  assert.equal(r.noteSeq(2, 'b', true), true);
  assert.equal(r.noteSeq(2, 'b', true), false); // a duplicate
  assert.equal(r.noteSeq(5, 'e', false), false); // an ack does not raise it
  assert.equal(r.lastSeq, 2);
  r.remember({ id: 'a', text: 'x', seq: 1 });
  r.addMessage(msg(1, 'x', 'a'));
  assert.equal(r.noteSeq(1, 'other', true), true); // seq 1 under another id: restarted
  assert.equal(r.lastSeq, 1);
  assert.deepEqual(r.log, []);
  assert.equal(r.entries[0].key, 0); // the old messages stay first
});

test('remember keeps the latest messages by seq, once each', () => {
  const r = new Room('general');
  assert.equal(r.remember({ id: 'b', text: 'b', seq: 2 }), true);
  assert.equal(r.remember({ id: 'a', text: 'a', seq: 1 }), true);
  assert.equal(r.remember({ id: 'a', text: 'a', seq: 1 }), false);
  assert.deepEqual(r.log.map((m) => m.id), ['a', 'b']);
  for (let s = 3; s < 3 + KEEP_MESSAGES; s++) r.remember({ id: 'm' + s, text: 't', seq: s });
  assert.equal(r.log.length, KEEP_MESSAGES);
  assert.equal(r.log[0].id, 'm3');
});

test('presence: full lists and deltas, and the member count', () => {
  const r = new Room('general');
  r.setMembers(['carol', 'alice', 'bob'], 3);
  assert.deepEqual(r.members, ['alice', 'bob', 'carol']);
  r.applyPresence({ joined: ['dave'], left: ['bob'], member_count: 3 });
  assert.deepEqual(r.members, ['alice', 'carol', 'dave']);
  r.applyPresence({ joined: [], member_count: 250 }); // names omitted: the count only
  assert.deepEqual(r.members, ['alice', 'carol', 'dave']);
  assert.equal(r.memberCount, 250);
  r.applyPresence({ members: ['zed', 'amy'], member_count: 1 }); // a count below the list: the list's length
  assert.deepEqual(r.members, ['amy', 'zed']);
  assert.equal(r.memberCount, 2);
});

test('typingNames drops expired names', () => {
  const r = new Room('general');
  r.typers.set('bob', 2000);
  r.typers.set('carol', 1000);
  assert.deepEqual(r.typingNames(1500), ['bob']);
  assert.equal(r.typers.has('carol'), false);
});

test('names and rooms are checked as the server does', () => {
  assert.equal(validRoom('general_2-x'), '');
  assert.notEqual(validRoom('no room'), '');
  assert.notEqual(validRoom('a'.repeat(65)), '');
  assert.equal(validName('Zoë O\'Neil'), '');
  assert.notEqual(validName(''), '');
  assert.notEqual(validName(' bob'), '');
  assert.notEqual(validName('a'.repeat(33)), '');
  assert.match(validName('bob<'), /"<"/);
});

test('Saver: a room saved and read back; saves are batched', () => {
  const clock = new FakeClock();
  const local = memoryStorage();
  const saver = new Saver({ local: local, session: memoryStorage(), clock: clock });
  const r = new Room('general');
  r.lastSeq = 7;
  r.remember({ id: 'a', from: 'bob', text: 'hello', ts: 5, seq: 7, server: 's1' });
  const p = msgEntry({ from: 'alice', text: 'unsent', ts: 9 });
  p.cid = 'c-1';
  r.pending.set('c-1', p);
  saver.schedule(r);
  saver.schedule(r);
  assert.equal(local.getItem(LS_SAVED + 'general'), null);
  clock.advance(500);
  const d = saver.readRoom('general');
  assert.deepEqual(d, {
    seq: 7,
    messages: [{ id: 'a', from: 'bob', text: 'hello', ts: 5, seq: 7, server: 's1' }],
    unsent: [{ cid: 'c-1', text: 'unsent', ts: 9 }],
  });
  // A dropped room is not saved again.
  r.dropped = true;
  local.removeItem(LS_SAVED + 'general');
  saver.schedule(r);
  saver.flush();
  assert.equal(local.getItem(LS_SAVED + 'general'), null);
});

test('Saver: unreadable data is ignored', () => {
  const local = memoryStorage();
  const session = memoryStorage();
  const saver = new Saver({ local: local, session: session });
  local.setItem(LS_SAVED + 'general', '{"v":1,"seq":"x","messages":[null,5,{"id":7},{"id":"x","from":"mallory","text":3}]}');
  assert.deepEqual(saver.readRoom('general'), { seq: 0, messages: [], unsent: [] });
  local.setItem(LS_SAVED + 'general', 'not json');
  assert.equal(saver.readRoom('general'), null);
  local.setItem(LS_SAVED + 'general', '{"v":2,"seq":3}');
  assert.equal(saver.readRoom('general'), null);
  session.setItem(LS_ROOMS, '{"v":1,"rooms":["general","no room!",42,"general",null],"active":"general"}');
  assert.deepEqual(saver.readRoomList(), { rooms: ['general'], active: 'general' });
  // The tab's list first, else the last one saved by any tab.
  session.removeItem(LS_ROOMS);
  local.setItem(LS_ROOMS, '{"v":1,"rooms":["random"]}');
  assert.deepEqual(saver.readRoomList(), { rooms: ['random'], active: '' });
});

test('Saver: storage that throws only means less is saved', () => {
  const broken = { getItem() { throw new Error('denied'); }, setItem() { throw new Error('full'); }, removeItem() { throw new Error('denied'); } };
  const saver = new Saver({ local: broken, session: broken });
  const s = new ChatState();
  s.rooms.set('general', new Room('general'));
  saver.saveRoomList(s);
  saver.saveRoom(s.rooms.get('general'));
  assert.equal(saver.readRoomList(), null);
  assert.equal(saver.readRoom('general'), null);
  saver.forget('x');
});

// Tests of files.js (uploads with a fake XMLHttpRequest, the checks and
// words for files) and of files in sends, messages and saved rooms.
// Run: node --test web/test/ (or go test ./web/).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Uploads, fitBox, formatSize, validFileID, fileList, fileKind, uploadErrorText, MAX_FILES } from '../files.js';
import { Api, ApiError } from '../api.js';
import { ChatState, Room, Saver, memoryStorage, msgEntry } from '../state.js';
import { Chat } from '../frames.js';
import { FakeClock, recorder, fakeConn, fakeFetch, apiErr } from './fakes.js';

// FakeXHR records each request; the test answers it by hand.
class FakeXHR {
  constructor() {
    this.upload = {};
    this.headers = {};
    this.aborted = false;
    this.status = 0;
    this.responseText = '';
    this.respHeaders = {};
    FakeXHR.all.push(this);
  }
  static last() { return FakeXHR.all[FakeXHR.all.length - 1]; }
  open(method, url) { this.method = method; this.url = url; }
  setRequestHeader(k, v) { this.headers[k] = v; }
  send(body) { this.body = body; }
  abort() { this.aborted = true; if (this.onabort) this.onabort(); }
  getResponseHeader(k) { return Object.prototype.hasOwnProperty.call(this.respHeaders, k) ? this.respHeaders[k] : null; }
  progress(loaded, total) { this.upload.onprogress({ lengthComputable: true, loaded: loaded, total: total }); }
  answer(status, body, headers) {
    this.status = status;
    this.responseText = body === undefined ? '' : JSON.stringify(body);
    this.respHeaders = headers || {};
    this.onload();
  }
}
FakeXHR.all = [];

function setupUploads(routes = {}) {
  FakeXHR.all = [];
  const fetch = fakeFetch({
    'GET /api/files': { status: 200, body: { max_bytes: 10485760, quota_bytes: 1e9, used_bytes: 0, types: [], any: false } },
    ...routes,
  });
  const changes = [];
  const ups = new Uploads({ XHR: FakeXHR, api: new Api({ fetch }), onChange: (room) => changes.push(room) });
  return { fetch, ups, changes };
}

function file(name, size) { return { name: name, size: size }; }
const picture = { id: 'f_1', type: 'image/png', size: 2048, name: 'cat.png', width: 640, height: 480 };

test('upload: POST with room and name escaped, the file as the body, progress, then the id', async () => {
  const { ups, changes } = setupUploads();
  const f = file('my cat&dog.png', 2048);
  ups.add('general', [f]);
  const x = FakeXHR.last();
  assert.equal(x.method, 'POST');
  assert.equal(x.url, '/api/files?room=general&name=my%20cat%26dog.png');
  assert.equal(x.body, f);
  assert.equal(ups.busy('general'), true);
  assert.equal(ups.busy('random'), false);
  x.progress(1024, 2048);
  assert.equal(ups.list('general')[0].loaded, 1024);
  assert.ok(changes.length >= 2);
  x.answer(201, { file: picture });
  const u = ups.list('general')[0];
  assert.equal(u.state, 'done');
  assert.equal(ups.busy('general'), false);
  assert.deepEqual(ups.ready('general'), [picture]);
  // Sent with a message: the chips go.
  assert.deepEqual(ups.take('general'), [picture]);
  assert.deepEqual(ups.list('general'), []);
});

test('upload: an answer without a usable id is an error, not a file', () => {
  const { ups } = setupUploads();
  ups.add('general', [file('a.png', 10)]);
  FakeXHR.last().answer(201, { file: { id: '../etc', type: 'image/png' } });
  assert.equal(ups.list('general')[0].state, 'error');
  assert.deepEqual(ups.ready('general'), []);
});

test('cancel while uploading aborts the request; a late answer changes nothing', () => {
  const { ups, fetch } = setupUploads();
  ups.add('general', [file('big.pdf', 5000)]);
  const x = FakeXHR.last();
  const key = ups.list('general')[0].key;
  ups.cancel(key);
  assert.equal(x.aborted, true);
  assert.deepEqual(ups.list('general'), []);
  x.answer(201, { file: picture });
  assert.deepEqual(ups.list('general'), []);
  assert.equal(fetch.calls.length, 0); // nothing to withdraw
});

test('cancel after the upload finished withdraws it: DELETE /api/files/{id}', async () => {
  const { ups, fetch } = setupUploads({ 'DELETE /api/files/f_1': { status: 204 } });
  ups.add('general', [file('cat.png', 2048)]);
  FakeXHR.last().answer(201, { file: picture });
  ups.cancel(ups.list('general')[0].key);
  assert.deepEqual(ups.list('general'), []);
  assert.deepEqual(fetch.calls.map((c) => c.method + ' ' + c.url), ['DELETE /api/files/f_1']);
});

test('the size is checked before uploading, with the server limit in words', async () => {
  const { ups, fetch } = setupUploads();
  await ups.loadLimits();
  await ups.loadLimits(); // asked once
  assert.equal(fetch.calls.length, 1);
  assert.equal(ups.maxBytes, 10485760);
  ups.add('general', [file('huge.mov', 10485761), file('ok.txt', 10485760)]);
  assert.equal(FakeXHR.all.length, 1); // only the one within the limit
  const [big, ok] = ups.list('general');
  assert.equal(big.state, 'error');
  assert.equal(big.error, 'Too big: the limit is 10 MB.');
  assert.equal(ok.state, 'uploading');
});

test('limits that cannot be read skip the check (the server still says too_large)', async () => {
  const { ups } = setupUploads({ 'GET /api/files': 'network' });
  await ups.loadLimits();
  assert.equal(ups.maxBytes, 0);
  ups.add('general', [file('huge.mov', 1e12)]);
  FakeXHR.last().answer(413, { error: { code: 'too_large', message: 'too large' } });
  assert.equal(ups.list('general')[0].error, 'Too big: the file is over the limit.');
});

test('upload errors in words; the failed chip stays until removed', () => {
  const cases = [
    [415, 'type_refused', 'This type of file is not accepted.'],
    [422, 'bad_image', 'This picture could not be read.'],
    [429, 'quota_exceeded', 'You have used all your storage for files.'],
    [429, 'too_many_uploads', 'Too many uploads at once: wait for some to finish.'],
    [401, 'signed_out', 'You are signed out. Sign in again.'],
    [404, 'not_found', 'You cannot send files to this conversation.'],
    [408, 'timeout', 'The upload was too slow. Try again.'],
    [418, 'teapot_mode', 'The server is a teapot.'],
  ];
  for (const [status, code, words] of cases) {
    const { ups } = setupUploads();
    ups.add('general', [file('x.bin', 5)]);
    FakeXHR.last().answer(status, { error: { code: code, message: code === 'teapot_mode' ? 'the server is a teapot' : code } });
    const u = ups.list('general')[0];
    assert.equal(u.state, 'error', code);
    assert.equal(u.error, words, code);
    ups.cancel(u.key);
    assert.deepEqual(ups.list('general'), []);
  }
  const { ups } = setupUploads();
  ups.add('general', [file('a', 1), file('b', 1)]);
  FakeXHR.all[0].onerror();
  FakeXHR.all[1].ontimeout();
  assert.deepEqual(ups.list('general').map((u) => u.error),
    ['Cannot reach the chat. Check your connection and try again.', 'The upload was too slow. Try again.']);
  assert.equal(uploadErrorText(new ApiError('too_large', '', 413, 0), 2.5 * 1024 * 1024), 'Too big: the limit is 2.5 MB.');
});

test('at most MAX_FILES per message: more are refused at once', () => {
  const { ups } = setupUploads();
  const many = [];
  for (let i = 0; i < MAX_FILES + 2; i++) many.push(file('f' + i, 1));
  ups.add('general', many);
  assert.equal(FakeXHR.all.length, MAX_FILES);
  assert.equal(ups.list('general').filter((u) => u.state === 'error').length, 2);
});

test('drop: the room left aborts its uploads and withdraws the finished ones', () => {
  const { ups, fetch } = setupUploads({ 'DELETE /api/files/f_1': { status: 204 } });
  ups.add('general', [file('a.png', 1), file('b.png', 1)]);
  FakeXHR.all[0].answer(201, { file: picture });
  ups.add('random', [file('c.png', 1)]);
  ups.drop('general');
  assert.equal(FakeXHR.all[1].aborted, true);
  assert.equal(FakeXHR.all[2].aborted, false);
  assert.deepEqual(fetch.calls.map((c) => c.method + ' ' + c.url), ['DELETE /api/files/f_1']);
  assert.equal(ups.list('random').length, 1);
});

test('fitBox: fits 320x320 keeping the shape, never enlarges', () => {
  assert.deepEqual(fitBox(640, 480), { width: 320, height: 240 });
  assert.deepEqual(fitBox(480, 640), { width: 240, height: 320 });
  assert.deepEqual(fitBox(100, 50), { width: 100, height: 50 });
  assert.deepEqual(fitBox(4000, 10), { width: 320, height: 1 });
  assert.equal(fitBox(0, 100), null);
  assert.equal(fitBox(undefined, 100), null);
});

test('formatSize: bytes in words', () => {
  assert.equal(formatSize(1), '1 byte');
  assert.equal(formatSize(900), '900 bytes');
  assert.equal(formatSize(2500), '2.4 KB');
  assert.equal(formatSize(2.4 * 1024 * 1024), '2.4 MB');
  assert.equal(formatSize(10485760), '10 MB');
  assert.equal(formatSize(-1), '');
});

test('file ids: only safe ids; names and types are kept as text only', () => {
  for (const id of ['abc', 'A-b_9', 'x'.repeat(128)]) assert.equal(validFileID(id), true, id);
  for (const id of ['', 'a/b', '../x', 'a b', 'x'.repeat(129), 'é', 5, null, 'a?b', 'a#b']) assert.equal(validFileID(id), false, String(id));
  const list = fileList([
    picture,
    { id: '../../api/account/signout', type: 'image/png', name: 'evil' },
    { ...picture }, // twice
    { id: 'f_2', type: 'application/pdf', size: -5, name: '<img src=x onerror=alert(1)>.pdf' },
    null,
  ]);
  assert.deepEqual(list.map((f) => f.id), ['f_1', 'f_2']);
  assert.equal(list[1].name, '<img src=x onerror=alert(1)>.pdf');
  assert.equal(list[1].size, 0);
  assert.equal(fileKind('image/png'), 'image');
  assert.equal(fileKind('image/svg+xml'), 'other'); // not shown inline
  assert.equal(fileKind('application/pdf'), 'pdf');
  assert.equal(fileKind('text/plain'), 'text');
  assert.equal(fileKind(42), 'other');
});

// ---- files in the chat (frames.js, state.js, connection.js) ----------

function setupChat(opts = {}) {
  const clock = new FakeClock();
  const local = opts.local || memoryStorage();
  const state = new ChatState();
  const saver = new Saver({ local: local, session: memoryStorage(), clock: clock });
  const view = recorder();
  const conn = fakeConn();
  let n = 0;
  const chat = new Chat({ state, saver, conn, view, clock, newCID: () => 'c' + (++n) });
  state.name = 'alice';
  state.conn = 'connected';
  state.rooms.set('general', new Room('general'));
  state.active = 'general';
  return { clock, local, state, saver, view, conn, chat, r: state.rooms.get('general') };
}

test('a send carries its files (text may be empty); nothing at all is refused', () => {
  const { chat, conn, r } = setupChat();
  chat.onFrame({ type: 'joined', room: 'general', members: ['alice'] });
  assert.equal(chat.sendText('   ', []), false);
  assert.equal(chat.sendText('', [picture]), true);
  assert.deepEqual(conn.sent.filter((f) => f.type === 'send'), [{ type: 'send', room: 'general', text: '', cid: 'c1', files: ['f_1'] }]);
  const e = r.pending.get('c1');
  assert.deepEqual(e.files, [picture]); // the own bubble shows them at once
  chat.sendText('no files');
  assert.equal(conn.sent.filter((f) => f.type === 'send')[1].files, undefined);
});

test('retries keep the files: after a reconnect and after a failure', () => {
  const { chat, conn, r, clock } = setupChat();
  chat.onFrame({ type: 'joined', room: 'general', members: ['alice'] });
  chat.sendText('look', [picture]);
  // The connection drops; the re-join sends it again with the same cid and files.
  r.joined = false;
  conn.sent = [];
  chat.onFrame({ type: 'joined', room: 'general', members: ['alice'] });
  assert.deepEqual(conn.sent.filter((f) => f.type === 'send'), [{ type: 'send', room: 'general', text: 'look', cid: 'c1', files: ['f_1'] }]);
  clock.advance(20000); // no ack: failed
  assert.equal(r.pending.get('c1').status, 'failed');
  conn.sent = [];
  chat.retry('c1');
  assert.deepEqual(conn.sent[0].files, ['f_1']);
});

test('invalid_files refuses the send in plain words', () => {
  const { chat, r, view } = setupChat();
  chat.onFrame({ type: 'joined', room: 'general', members: ['alice'] });
  chat.sendText('', [picture]);
  chat.onFrame({ type: 'error', room: 'general', cid: 'c1', code: 'invalid_files', message: 'invalid files' });
  const e = r.pending.get('c1');
  assert.equal(e.status, 'failed');
  assert.equal(e.why, 'a file could not be attached: upload it again');
  assert.ok(view.named('updated').length > 0);
});

test('a message with files: checked files in the entry, the echo fills the own send, saved and restored', () => {
  const local = memoryStorage();
  const { chat, r, saver } = setupChat({ local });
  chat.onFrame({ type: 'joined', room: 'general', members: ['alice', 'bob'] });
  const pdf = { id: 'f_2', type: 'application/pdf', size: 2516582, name: 'report.pdf' };
  chat.onFrame({ type: 'message', room: 'general', id: 'm1', from: 'bob', text: '', ts: 5, seq: 1,
    files: [picture, pdf, { id: 'bad/id', name: 'x' }] });
  const e = r.byId.get('m1');
  assert.deepEqual(e.files.map((f) => f.id), ['f_1', 'f_2']);
  assert.equal(e.text, '');
  // History brings the same.
  const h = setupChat();
  h.chat.onFrame({ type: 'joined', room: 'general', members: ['alice'] });
  h.chat.onFrame({ type: 'history', room: 'general', messages: [{ id: 'h1', from: 'bob', text: '', ts: 1, seq: 1, files: [pdf] }], more: false });
  assert.deepEqual(h.r.byId.get('h1').files, [{ ...pdf, width: 0, height: 0 }]);
  assert.deepEqual(msgEntry({ id: 'x' }).files, []);
  // An own send without files yet confirmed by its echo takes the server's files.
  chat.sendText('', [picture]);
  chat.onFrame({ type: 'message', room: 'general', id: 'm2', from: 'alice', cid: 'c1', text: '', ts: 6, seq: 2, files: [picture] });
  assert.deepEqual(r.byId.get('m2').files, [picture]);
  saver.flush();
  // A reload shows the files again.
  const again = setupChat({ local });
  again.chat.restoreRoom(again.r);
  assert.deepEqual(again.r.byId.get('m1').files.map((f) => f.id), ['f_1', 'f_2']);
});

test('an unsent message with files only comes back after a reload and goes out with them', () => {
  const local = memoryStorage();
  const { chat, saver, state } = setupChat({ local });
  state.conn = 'offline';
  chat.sendText('', [picture]);
  saver.flush();
  const again = setupChat({ local });
  again.chat.restoreRoom(again.r);
  const e = again.r.pending.get('c1');
  assert.ok(e);
  assert.deepEqual(e.files, [picture]);
  again.chat.onFrame({ type: 'joined', room: 'general', members: ['alice'] });
  assert.deepEqual(again.conn.sent.filter((f) => f.type === 'send')[0].files, ['f_1']);
});

test('api: file limits and withdraw paths', async () => {
  const fetch = fakeFetch({ 'DELETE /api/files/f_1': { status: 204 }, 'GET /api/files': apiErr(401, 'signed_out') });
  const api = new Api({ fetch });
  assert.deepEqual(await api.deleteFile('f_1'), {});
  await assert.rejects(api.fileLimits(), (e) => e.code === 'signed_out');
});

test("a guest's uploads carry the welcome's upload token; a signed-in user's carry none", async () => {
  FakeXHR.all = [];
  let token = 'tok-guest';
  const fetch = fakeFetch({ 'GET /api/files': { status: 200, body: { max_bytes: 100 } }, 'DELETE /api/files/f_1': { status: 204 } });
  const ups = new Uploads({ XHR: FakeXHR, api: new Api({ fetch }), token: () => token });
  await ups.loadLimits();
  assert.equal(fetch.calls[0].init.headers.Authorization, 'Bearer tok-guest');
  ups.add('general', [file('cat.png', 10)]);
  assert.equal(FakeXHR.last().headers.Authorization, 'Bearer tok-guest');
  FakeXHR.last().answer(201, { file: picture });
  ups.cancel(ups.list('general')[0].key);
  assert.equal(fetch.calls[1].init.headers.Authorization, 'Bearer tok-guest');
  token = '';
  ups.add('general', [file('dog.png', 10)]);
  assert.equal(FakeXHR.last().headers.Authorization, undefined);
});

test('a guest may attach files only when its welcome carried an upload token', () => {
  const { chat, state } = setupChat();
  chat.onFrame({ type: 'welcome', server: '1000', user: { id: 'g_1', guest: true } });
  assert.equal(state.canUpload(), false);
  chat.onFrame({ type: 'welcome', server: '1000', user: { id: 'g_2', guest: true }, upload_token: 'tok' });
  assert.equal(state.uploadToken, 'tok');
  assert.equal(state.canUpload(), true);
  chat.onFrame({ type: 'welcome', server: '2000', user: { id: 'g_3', guest: true } });
  assert.equal(state.canUpload(), false, 'a new connection without a token');
});

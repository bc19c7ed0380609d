// Tests of api.js: requests (JSON, the page's cookies, no cache), errors
// as {code, message, status, retryAfter}, and errors in the page's words.
// Run: node --test web/test/ (or go test ./web/).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Api, ApiError, apiError, errorText, retrySeconds } from '../api.js';
import { fakeFetch, apiErr } from './fakes.js';

test('a request: JSON body, same-origin cookies, never cached; 204 is {}', async () => {
  const fetch = fakeFetch({
    'POST /api/account/signin': { status: 200, body: { user: { id: 'u1', name: 'alice' } } },
    'POST /api/account/signout': { status: 204 },
  });
  const api = new Api({ fetch });
  assert.deepEqual(await api.signIn('alice', 'pw pw pw'), { user: { id: 'u1', name: 'alice' } });
  const c = fetch.calls[0];
  assert.equal(c.method, 'POST');
  assert.deepEqual(c.body, { name: 'alice', password: 'pw pw pw' });
  assert.equal(c.init.credentials, 'same-origin');
  assert.equal(c.init.cache, 'no-store');
  assert.equal(c.init.headers['Content-Type'], 'application/json');
  assert.deepEqual(await api.signOut(), {});
});

test('paths: ids are escaped, every call of the contract', async () => {
  const fetch = fakeFetch();
  const api = new Api({ fetch });
  const calls = [
    () => api.me(), () => api.signUp('a', 'b'), () => api.publicRooms(), () => api.conversations(),
    () => api.createRoom('Team', 'private'), () => api.members('_pX'), () => api.invite('_pX', 'bob'),
    () => api.removeMember('_pX', 'u/1'), () => api.accept('_pX'), () => api.direct('bob'),
  ];
  for (const c of calls) await c().catch(() => {});
  assert.deepEqual(fetch.calls.map((c) => c.method + ' ' + c.url), [
    'GET /api/account/me', 'POST /api/account/signup', 'GET /api/rooms', 'GET /api/conversations',
    'POST /api/rooms', 'GET /api/rooms/_pX/members', 'POST /api/rooms/_pX/members',
    'DELETE /api/rooms/_pX/members/u%2F1', 'POST /api/rooms/_pX/accept', 'POST /api/direct',
  ]);
  assert.deepEqual(fetch.calls[4].body, { name: 'Team', kind: 'private' });
  assert.equal(fetch.calls[0].init.body, undefined);
});

test('errors: the server code and message, Retry-After, or a code from the status', async () => {
  const fetch = fakeFetch({
    'POST /api/account/signin': apiErr(429, 'throttled', 'slow down', { 'Retry-After': '7' }),
    'GET /api/rooms': { status: 502, body: undefined },
    'GET /api/conversations': { status: 401, body: 'nope' },
    'GET /api/account/me': 'network',
  });
  const api = new Api({ fetch });
  await assert.rejects(api.signIn('a', 'b'), (e) => e instanceof ApiError && e.code === 'throttled' &&
    e.message === 'slow down' && e.status === 429 && e.retryAfter === 7);
  await assert.rejects(api.publicRooms(), (e) => e.code === 'unavailable' && e.status === 502);
  await assert.rejects(api.conversations(), (e) => e.code === 'signed_out');
  await assert.rejects(api.me(), (e) => e.code === 'network' && e.status === 0);
  for (const [status, code] of [[400, 'bad_request'], [403, 'forbidden'], [404, 'not_found'], [409, 'exists'], [418, 'bad_request']]) {
    assert.equal(apiError(status, null, null, 0).code, code);
  }
  // A code that is not a code is not trusted.
  assert.equal(apiError(400, { error: { code: '<b>x</b>' } }, null, 0).code, 'bad_request');
});

test('Retry-After: seconds or a date; anything else is none', () => {
  assert.equal(retrySeconds('12', 0), 12);
  assert.equal(retrySeconds(' 3 ', 0), 3);
  const now = Date.parse('2026-01-01T00:00:00Z');
  assert.equal(retrySeconds('Thu, 01 Jan 2026 00:00:30 GMT', now), 30);
  assert.equal(retrySeconds('Wed, 31 Dec 2025 00:00:00 GMT', now), 0);
  for (const h of [null, undefined, '', 'soon', '-5']) assert.equal(retrySeconds(h, now), 0);
});

test('errorText says every failure in plain words', () => {
  const e = (code, message, retryAfter) => new ApiError(code, message, 400, retryAfter);
  assert.equal(errorText(e('bad_credentials', 'wrong name or password')), 'Wrong name or password.');
  assert.equal(errorText(e('name_taken')), 'That name is taken. Pick another one.');
  assert.equal(errorText(e('invalid_password', 'a password has at least 8 characters')), 'A password has at least 8 characters.');
  assert.equal(errorText(e('invalid_password', '')), 'That password cannot be used.');
  assert.equal(errorText(e('invalid_name', 'Names use letters.')), 'Names use letters.');
  assert.equal(errorText(e('invalid_room', 'a room title is 1-64 characters without control characters')),
    'A room title is 1-64 characters without control characters.');
  assert.equal(errorText(e('throttled', '', 9)), 'Too many attempts. Try again in 9 seconds.');
  assert.equal(errorText(e('throttled', '', 1)), 'Too many attempts. Try again in 1 second.');
  assert.equal(errorText(e('throttled', '', 0)), 'Too many attempts. Try again in a moment.');
  assert.match(errorText(e('cross_origin')), /another address/);
  assert.equal(errorText(e('no_user')), 'No user with that name.');
  assert.equal(errorText(e('not_found')), 'This conversation does not exist or you do not have access to it.');
  assert.equal(errorText(e('signed_out')), 'You are signed out. Sign in again.');
  assert.equal(errorText(e('account_closed')), 'This account was closed.');
  assert.match(errorText(e('network')), /Cannot reach the chat/);
  assert.equal(errorText(e('what_is_this')), 'Something went wrong. Try again.');
  assert.equal(errorText(null), 'Something went wrong. Try again.');
  assert.equal(errorText(e('exists'), { exists: 'bob is already in this room.' }), 'bob is already in this room.');
});

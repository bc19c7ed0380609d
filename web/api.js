// api.js: the chat's HTTP API (the server's pkg/account under
// /api/account/, pkg/rooms under /api/rooms, /api/conversations and
// /api/direct, pkg/files under /api/files), without a DOM. fetch is injected, so
// node's tests bring a fake one. Requests send JSON with the page's own
// cookies (credentials: same-origin) and are never cached; a failure is an
// ApiError {code, message, status, retryAfter}, and errorText says it in
// the page's own words.

// ApiError is a failed request: code is the server's error code (or one
// made from the HTTP status, or 'network' when the server could not be
// reached), message the server's own text (for developers, except where
// errorText shows it), retryAfter the seconds of a Retry-After header (0:
// none).
export class ApiError extends Error {
  constructor(code, message, status, retryAfter) {
    super(code + (message ? ': ' + message : ''));
    this.code = code;
    this.message = message || '';
    this.status = status || 0;
    this.retryAfter = retryAfter || 0;
  }
}

// codeOfStatus is the error code of an answer without a JSON error body.
function codeOfStatus(status) {
  if (status === 400) return 'bad_request';
  if (status === 401) return 'signed_out';
  if (status === 403) return 'forbidden';
  if (status === 404) return 'not_found';
  if (status === 409) return 'exists';
  if (status === 429) return 'throttled';
  if (status >= 500) return 'unavailable';
  return 'bad_request';
}

// retrySeconds reads a Retry-After header: seconds, or an HTTP date
// (now: the current time in ms); 0 when absent or unreadable.
export function retrySeconds(header, now) {
  if (typeof header !== 'string' || header.trim() === '') return 0;
  const h = header.trim();
  if (/^\d+$/.test(h)) return Math.min(Number(h), 86400);
  const at = Date.parse(h);
  if (isNaN(at)) return 0;
  return Math.max(0, Math.min(86400, Math.ceil((at - now) / 1000)));
}

// apiError makes the ApiError of a failed answer from its status, its
// parsed body ({"error": {"code", "message"}} or anything else) and its
// Retry-After header.
export function apiError(status, body, retryAfter, now) {
  const e = body && typeof body === 'object' && body.error && typeof body.error === 'object' ? body.error : {};
  const code = typeof e.code === 'string' && /^[a-z_]{1,40}$/.test(e.code) ? e.code : codeOfStatus(status);
  const message = typeof e.message === 'string' ? e.message.slice(0, 300) : '';
  return new ApiError(code, message, status, retrySeconds(retryAfter, now === undefined ? Date.now() : now));
}

// sentence makes a server's short message a sentence: capital first
// letter, a full stop at the end.
export function sentence(msg) {
  const t = (msg || '').trim();
  if (!t) return '';
  const s = t.charAt(0).toUpperCase() + t.slice(1);
  return /[.!?]$/.test(s) ? s : s + '.';
}

// errorText says what a failed request means, in the page's words. words
// may give a text of its own per code (e.g. {exists: 'That room exists.'}).
export function errorText(err, words) {
  const code = err && err.code ? err.code : '';
  if (words && typeof words[code] === 'string') return words[code];
  switch (code) {
    case 'bad_credentials': return 'Wrong name or password.';
    case 'name_taken': return 'That name is taken. Pick another one.';
    case 'invalid_password': return sentence(err.message) || 'That password cannot be used.';
    case 'invalid_name': return sentence(err.message) || 'That name cannot be used.';
    case 'invalid_room': return sentence(err.message) || 'That room name cannot be used.';
    case 'invalid_token': return 'Could not sign in to the chat.';
    case 'throttled': {
      const n = err.retryAfter;
      if (!n) return 'Too many attempts. Try again in a moment.';
      return 'Too many attempts. Try again in ' + n + (n === 1 ? ' second.' : ' seconds.');
    }
    case 'cross_origin': return 'The chat refused this because the page came from another address. Open the chat from its own address.';
    case 'no_user': return 'No user with that name.';
    case 'not_found': return 'This conversation does not exist or you do not have access to it.';
    case 'signed_out': return 'You are signed out. Sign in again.';
    case 'account_closed': return 'This account was closed.';
    case 'forbidden': return 'Only the owner of this room can do that.';
    case 'exists': return 'That already exists.';
    case 'bad_request': return 'The chat could not do that.';
    case 'too_large': return 'Too big for the chat.';
    case 'type_refused': return 'This type of file is not accepted.';
    case 'bad_image': return 'This picture could not be read.';
    case 'bad_name': return 'This file name cannot be used: rename the file.';
    case 'quota_exceeded': return 'You have used all your storage for files.';
    case 'too_many_uploads': return 'Too many uploads at once: wait for some to finish.';
    case 'timeout': return 'The upload was too slow. Try again.';
    case 'invalid_files': return 'A file could not be attached: upload it again.';
    case 'network': return 'Cannot reach the chat. Check your connection and try again.';
    case 'unavailable': return 'The chat is having trouble right now. Try again in a moment.';
    default: return 'Something went wrong. Try again.';
  }
}

// Api calls the chat's HTTP API. Every method returns a promise of the
// answer's JSON (an empty object for 204) or rejects with an ApiError.
export class Api {
  // fetch: the fetch function (window.fetch bound to window); base: the
  // API's origin and path prefix ('' for the page's own); now(): the time
  // in ms (for Retry-After dates).
  constructor({ fetch, base, now }) {
    this.fetch = fetch;
    this.base = base || '';
    this.now = now || (() => Date.now());
  }

  async request(method, path, body, token) {
    const init = {
      method: method,
      credentials: 'same-origin',
      cache: 'no-store',
      headers: { Accept: 'application/json' },
    };
    if (token) init.headers.Authorization = 'Bearer ' + token; // a guest's upload token
    if (body !== undefined) {
      init.headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    let res;
    try {
      res = await this.fetch(this.base + path, init);
    } catch (_) {
      throw new ApiError('network', '', 0, 0);
    }
    let data = null;
    if (res.status !== 204) {
      try { data = await res.json(); } catch (_) { data = null; }
    }
    if (res.ok) return data && typeof data === 'object' ? data : {};
    const ra = res.headers && typeof res.headers.get === 'function' ? res.headers.get('Retry-After') : null;
    throw apiError(res.status, data, ra, this.now());
  }

  // Account (pkg/account).
  me() { return this.request('GET', '/api/account/me'); }
  signIn(name, password) { return this.request('POST', '/api/account/signin', { name: name, password: password }); }
  signUp(name, password) { return this.request('POST', '/api/account/signup', { name: name, password: password }); }
  signOut() { return this.request('POST', '/api/account/signout', {}); }

  // Rooms (pkg/rooms).
  publicRooms() { return this.request('GET', '/api/rooms'); }
  conversations() { return this.request('GET', '/api/conversations'); }
  createRoom(name, kind) { return this.request('POST', '/api/rooms', { name: name, kind: kind }); }
  members(id) { return this.request('GET', '/api/rooms/' + encodeURIComponent(id) + '/members'); }
  invite(id, name) { return this.request('POST', '/api/rooms/' + encodeURIComponent(id) + '/members', { name: name }); }
  removeMember(id, userID) {
    return this.request('DELETE', '/api/rooms/' + encodeURIComponent(id) + '/members/' + encodeURIComponent(userID));
  }
  accept(id) { return this.request('POST', '/api/rooms/' + encodeURIComponent(id) + '/accept', {}); }
  direct(name) { return this.request('POST', '/api/direct', { name: name }); }

  // Files (pkg/files). The upload itself goes through XMLHttpRequest for
  // its progress events (files.js).
  // fileLimits and deleteFile take a guest's upload token (none for a
  // signed-in user: the cookie says who).
  fileLimits(token) { return this.request('GET', '/api/files', undefined, token); }
  deleteFile(id, token) { return this.request('DELETE', '/api/files/' + encodeURIComponent(id), undefined, token); }
}

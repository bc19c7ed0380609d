// fakes.js: a clock, a WebSocket and a view for the tests, so that the
// client's modules run in node without a DOM and without waiting.

import { Room } from '../state.js';
import { viewMethods } from '../frames.js';

// FakeClock runs timers when advance moves its time past them.
export class FakeClock {
  constructor(now = 1_000_000) {
    this.t = now;
    this.timers = new Map(); // id -> {at, fn, every}
    this.nextID = 1;
  }

  now() { return this.t; }

  setTimeout(fn, ms) { return this.add(fn, ms, 0); }
  setInterval(fn, ms) { return this.add(fn, ms, Math.max(1, ms)); }
  clearTimeout(id) { this.timers.delete(id); }
  clearInterval(id) { this.timers.delete(id); }

  add(fn, ms, every) {
    const id = this.nextID++;
    this.timers.set(id, { at: this.t + Math.max(0, ms || 0), fn: fn, every: every });
    return id;
  }

  // advance moves the time forward by ms, running the timers due in order.
  advance(ms) {
    const end = this.t + ms;
    for (;;) {
      let id = 0;
      let next = null;
      for (const [k, tm] of this.timers) if (tm.at <= end && (!next || tm.at < next.at)) { id = k; next = tm; }
      if (!next) break;
      // A timer that was due while the time jumped runs late, once (as a
      // browser runs an interval after the tab slept).
      this.t = Math.max(this.t, next.at);
      if (next.every) next.at = this.t + next.every; else this.timers.delete(id);
      next.fn();
    }
    this.t = end;
  }

  // jump moves the time without running anything (a sleeping tab).
  jump(ms) { this.t += ms; }
}

// FakeWebSocket records what the page sends; the test opens, speaks and
// closes it by hand. FakeWebSocket.all lists every socket made.
export class FakeWebSocket {
  constructor(url) {
    this.url = url;
    this.readyState = 0;
    this.sent = [];
    this.closedWith = null;
    FakeWebSocket.all.push(this);
  }

  static reset() { FakeWebSocket.all = []; }
  static last() { return FakeWebSocket.all[FakeWebSocket.all.length - 1]; }

  send(data) { this.sent.push(JSON.parse(data)); }
  close(code, reason) { this.closedWith = { code, reason }; this.readyState = 3; }

  open() { this.readyState = 1; }
  frame(f) { if (this.onmessage) this.onmessage({ data: JSON.stringify(f) }); }
  serverClose(code) { this.readyState = 3; if (this.onclose) this.onclose({ code: code }); }
}
FakeWebSocket.OPEN = 1;
FakeWebSocket.all = [];

// recorder is a view that records every call as [method, ...args].
export function recorder() {
  const calls = [];
  const view = { calls: calls };
  for (const m of viewMethods) view[m] = (...args) => { calls.push([m, ...args]); };
  view.take = () => calls.splice(0, calls.length);
  view.named = (m) => calls.filter((c) => c[0] === m);
  return view;
}

// fakeConn is a connection that records the frames sent; open says whether
// sends go out.
export function fakeConn() {
  return {
    sent: [],
    open: true,
    ws: {},
    connects: 0,
    closed: 0,
    send(f) { if (!this.open) return false; this.sent.push(f); return true; },
    idle() { return !this.open; },
    connect() { this.connects += 1; },
    close() { this.closed += 1; this.ws = null; },
  };
}

// shown lists a room's message entries as "seq:text" (notices as "-:text").
export function shown(r) {
  return r.entries.map((e) => (e.kind === 'msg' ? (e.seq || '_') + ':' + e.text : '-:' + e.text));
}

export { Room };

// fakeFetch is a fetch that answers from routes: 'METHOD /path' -> an
// answer {status, body, headers} (body undefined: no JSON), a function
// (call) -> answer, or 'network' (the request fails as offline). A route
// not listed answers 404 not_found. fetch.calls lists every request as
// {method, url, body (parsed), init}.
export function fakeFetch(routes = {}) {
  const calls = [];
  const f = async (url, init = {}) => {
    const call = { method: init.method || 'GET', url: url, body: init.body ? JSON.parse(init.body) : undefined, init: init };
    calls.push(call);
    let r = routes[call.method + ' ' + url];
    if (typeof r === 'function') r = r(call);
    if (r === 'network') throw new TypeError('Failed to fetch');
    if (r === undefined) r = { status: 404, body: { error: { code: 'not_found', message: 'not found' } } };
    const status = r.status || 200;
    const headers = r.headers || {};
    return {
      status: status,
      ok: status >= 200 && status < 300,
      headers: { get: (k) => (Object.prototype.hasOwnProperty.call(headers, k) ? headers[k] : null) },
      json: async () => {
        if (r.body === undefined) throw new SyntaxError('Unexpected end of JSON input');
        return JSON.parse(JSON.stringify(r.body));
      },
    };
  };
  f.calls = calls;
  f.routes = routes;
  return f;
}

// apiErr is an answer with the API's error shape.
export function apiErr(status, code, message, headers) {
  return { status: status, body: { error: { code: code, message: message || code } }, headers: headers };
}

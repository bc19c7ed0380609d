// livechat browser client: plain JavaScript modules, no build step, no
// dependencies. This entry point wires them together:
//
//   clock.js       the time and timers, injected everywhere (tests bring their own)
//   state.js       rooms, members, messages ordered by seq, pending sends, saving for a reload
//   connection.js  the WebSocket: connect, reconnect with backoff, heartbeat watch, the send queue
//   frames.js      Chat: server frames and user actions -> state changes, reported to the view
//   api.js         the HTTP API: fetch with JSON and the page's cookies, errors in words
//   account.js     Account: signing in and out, the rooms list (public, private, direct, invitations)
//   files.js       Uploads: attached files sent with XHR (progress, cancel); checks of a message's files
//   view.js        the DOM: rendering, grouped bubbles, tooltips, inputs, sign-in, sidebar
//
// Only view.js and this file touch the DOM; the others load in node
// (web/test/). One WebSocket per page; the page can be in several rooms
// (tabs), each with its own messages, members, typing state, pending sends
// and last seq.

import { systemClock } from './clock.js';
import { ChatState, Saver, memoryStorage, validName, validRoom } from './state.js';
import { Connection } from './connection.js';
import { Chat } from './frames.js';
import { Api } from './api.js';
import { Account } from './account.js';
import { Uploads } from './files.js';
import { createView } from './view.js';

// wsURL picks the WebSocket endpoint: ?ws=, then <meta name="livechat-ws">,
// then /ws on this page's own origin. Relative values resolve against the page.
function wsURL() {
  let raw = '';
  try { raw = new URLSearchParams(location.search).get('ws') || ''; } catch (_) { raw = ''; }
  if (!raw) {
    const meta = document.querySelector('meta[name="livechat-ws"]');
    raw = (meta && meta.content.trim()) || '';
  }
  if (!raw) raw = '/ws';
  const u = new URL(raw, location.href);
  if (u.protocol === 'http:') u.protocol = 'ws:';
  if (u.protocol === 'https:') u.protocol = 'wss:';
  return u.href;
}

// A send's cid: unique for this page load, so a resend after a reconnect
// (or a reload) can be recognised by the server.
const cidPrefix = Math.random().toString(36).slice(2, 8) + Date.now().toString(36).slice(-4);
let cidCounter = 0;
function newCID() { cidCounter += 1; return cidPrefix + '-' + cidCounter; }

// storage is window[name], or an in-memory one where the browser refuses it.
function storage(name) {
  try { return window[name] || memoryStorage(); } catch (_) { return memoryStorage(); }
}

function init() {
  const state = new ChatState();
  const saver = new Saver({ local: storage('localStorage'), session: storage('sessionStorage'), clock: systemClock });
  const view = createView(state, saver);
  const conn = new Connection({
    url: wsURL,
    WebSocket: window.WebSocket,
    clock: systemClock,
    online: () => navigator.onLine !== false,
    wanted: () => state.rooms.size > 0,
    onFrame: (f) => chat.onFrame(f),
    onStatus: (c, text) => { state.conn = c; view.setConn(c, text); },
    onClose: (ev) => chat.connectionLost(ev),
    onWarn: (text) => view.toast(text, 'warn'),
  });
  const chat = new Chat({
    state: state,
    saver: saver,
    conn: conn,
    view: view,
    clock: systemClock,
    newCID: newCID,
    log: (...args) => { if (window.console) console.warn(...args); },
    checkSession: () => account.checkSession(),
  });
  const api = new Api({ fetch: (url, init) => window.fetch(url, init) });
  const account = new Account({ api: api, state: state, chat: chat, view: view, clock: systemClock, hash: () => location.hash });
  const uploads = new Uploads({
    XHR: window.XMLHttpRequest,
    api: api,
    onChange: (room) => view.uploadsChanged(room),
    log: (...args) => { if (window.console) console.warn(...args); },
    token: () => (state.signedIn() ? '' : state.uploadToken),
  });
  // Exposed for debugging and automated tests; not an API.
  window.livechat = { state: state, validName: validName, validRoom: validRoom, wsURL: wsURL, account: account, uploads: uploads };
  view.start(chat, conn, account, uploads);
}

if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', init);
else init();

// livechat browser client: plain JavaScript, no build step, no dependencies.
//
// One WebSocket per page. The page can be in several rooms (tabs); each room
// keeps its own message list, members, typing state, pending sends and last
// seq. User text is only ever put into the page with textContent.
'use strict';

(function () {
  // ---- constants --------------------------------------------------------

  const BACKOFF_BASE_MS = 500;     // first reconnect waits up to this long
  const BACKOFF_CAP_MS = 15000;    // and never more than this
  const STABLE_MS = 10000;         // connected this long: reset the backoff
  const WELCOME_TIMEOUT_MS = 10000; // a new connection without a welcome this long is given up
  const SILENCE_FACTOR = 2;        // nothing heard for this many heartbeat_ms: the connection is dead
  const TYPING_SEND_MS = 2000;     // send "typing" at most this often
  const TYPING_SHOW_MS = 3000;     // show "x is typing" this long after the last frame
  const MAX_MESSAGES = 500;        // DOM messages kept per room
  const ACK_TIMEOUT_MS = 15000;    // a send without ack this long is shown as failed
  const HISTORY_PAGE = 50;         // messages asked per history request (server cap: 100)
  const SCROLL_LOAD_PX = 60;       // scrolled this close to the top: load older messages
  const GROUP_GAP_MS = 5 * 60 * 1000; // a sender's messages this close in time share one header
  const ROOM_RE = /^[A-Za-z0-9_-]{1,64}$/;
  const NAME_CHAR_RE = /^[\p{L}\p{Nd} _.'-]$/u;
  const LS_NAME = 'livechat.name';
  const LS_ROOM = 'livechat.room';
  // What a reload brings back (see "saving for a reload" below).
  const LS_ROOMS = 'livechat.rooms';       // {v, rooms, active}: the rooms the page is in
  const LS_SAVED = 'livechat.saved.';      // + room: {v, seq, messages, unsent}
  const SAVE_VERSION = 1;
  const KEEP_MESSAGES = 100;               // messages kept per room for a reload
  const KEEP_CHARS = 100000;               // and at most this much JSON per room (~200 KB)
  const KEEP_UNSENT = 50;                  // unsent messages kept per room
  const MAX_SAVED_ROOMS = 20;              // rooms brought back (the server's default max_rooms)
  const SAVE_DELAY_MS = 500;               // saves are batched this long

  // Close codes in words a user knows (docs/PROTOCOL.md, "Close codes").
  const CLOSE_REASONS = {
    1000: 'connection closed',
    1001: 'the server is restarting',
    1006: 'connection lost',
    1007: 'the page sent text the server could not read',
    1008: 'too many messages too fast',
    1009: 'a message was too big',
    1011: 'the server had a problem',
    1013: 'the connection was too slow to keep up',
  };

  // ---- small helpers ----------------------------------------------------

  const $ = (id) => document.getElementById(id);

  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }

  function clear(node) {
    while (node.firstChild) node.removeChild(node.firstChild);
  }

  function store(key, value) {
    try { localStorage.setItem(key, value); } catch (_) { /* private mode */ }
  }

  function load(key) {
    try { return localStorage.getItem(key); } catch (_) { return null; }
  }

  function forget(key) {
    try { localStorage.removeItem(key); } catch (_) { /* private mode */ }
  }

  // The tab's own copy of its room list: two tabs in different rooms each
  // get their own rooms back on a reload; a new tab takes the last saved.
  function storeTab(key, value) {
    try { sessionStorage.setItem(key, value); } catch (_) { /* private mode */ }
  }

  function loadTab(key) {
    try { return sessionStorage.getItem(key); } catch (_) { return null; }
  }

  const utf8 = new TextEncoder();
  function byteLen(s) { return utf8.encode(s).length; }

  // validRoom mirrors protocol.ValidRoom.
  function validRoom(room) {
    return ROOM_RE.test(room) ? '' : 'Room must be 1-64 characters: letters, digits, - and _.';
  }

  // validName mirrors protocol.ValidName: 1-32 characters (code points) of
  // letters, digits, space and - _ . ', no leading or trailing space.
  function validName(name) {
    const chars = Array.from(name);
    if (chars.length === 0) return 'Enter a name.';
    if (chars.length > 32) return 'Name must be at most 32 characters.';
    if (name.trim() !== name) return 'Name must not start or end with a space.';
    for (const c of chars) {
      if (!NAME_CHAR_RE.test(c)) return 'Name may only use letters, digits, spaces and - _ . \' (not "' + c + '").';
    }
    return '';
  }

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

  const cidPrefix = Math.random().toString(36).slice(2, 8) + Date.now().toString(36).slice(-4);
  let cidCounter = 0;
  function newCID() { cidCounter += 1; return cidPrefix + '-' + cidCounter; }

  const timeFmt = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit' });
  const fullFmt = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'medium' });

  // ---- state ------------------------------------------------------------

  const state = {
    name: '',
    rooms: new Map(),  // room -> Room
    active: '',        // room shown
    ws: null,
    serverID: '',
    limits: null,
    conn: 'offline',   // offline | connecting | connected | reconnecting
    attempt: 0,        // consecutive failed connects, for the backoff
    retryAt: 0,
    retryTimer: 0,
    countdownTimer: 0,
    stableTimer: 0,
    userClosed: false,
    lastTypingSent: 0,
    // The heartbeat (docs/PROTOCOL.md, "Heartbeat"): the server sends a frame
    // at least every heartbeatMs; a connection that brings nothing for
    // SILENCE_FACTOR times that is closed and replaced.
    heartbeatMs: 0,    // from the welcome; 0: the server sends no heartbeats
    lastFrameAt: 0,    // when the current connection last brought a frame (ms)
    watchTimer: 0,     // the silence check (an interval) or the welcome timeout
    closes: [],        // why the last connections ended (close code, 'silent', 'no-welcome')
  };

  function newRoom(name) {
    const list = el('ol', 'messages');
    return {
      name: name,
      joined: false,     // the server confirmed our membership on this connection
      members: [],
      seen: new Set(),   // message ids already shown
      seqIDs: new Map(), // seq -> message id (history feature)
      everJoined: false,
      log: [],           // the latest messages shown (message frames), saved for a reload
      lastSeq: 0,        // highest seq seen: sent as "since" on re-join
      sinceSent: null,   // the since of the join in flight (null: none sent)
      recovering: null,  // {upTo, count}: replay after a re-join being counted
      hole: null,        // {low, before}: missed seqs still held, fetched by history requests
      historyBusy: false, // a history request is in flight
      moreHistory: true, // the server may hold older messages than the oldest shown
      pending: new Map(), // cid -> {text, li, status: queued|sent|failed}
      typers: new Map(), // name -> expiry (ms)
      unread: 0,
      list: list,        // this room's <ol>; the visible one is #messages
      tab: null,
      scrollTop: null,
    };
  }

  // ---- DOM references ---------------------------------------------------

  const ui = {};
  function bindUI() {
    for (const id of ['join-screen', 'join-form', 'name', 'room', 'join', 'name-error', 'room-error',
      'join-error', 'chat-screen', 'room-name', 'state', 'members-toggle', 'member-count', 'member-count-2',
      'leave', 'tabs', 'add-room-form', 'add-room', 'sidebar', 'members', 'messages', 'jump', 'typing',
      'send-form', 'text', 'send', 'composer-note', 'toasts']) {
      ui[id.replace(/-(.)/g, (_, c) => c.toUpperCase())] = $(id);
    }
  }

  // ---- toasts -----------------------------------------------------------

  function toast(text, kind) {
    const t = el('div', 'toast' + (kind ? ' ' + kind : ''), text);
    ui.toasts.appendChild(t);
    while (ui.toasts.children.length > 4) ui.toasts.removeChild(ui.toasts.firstChild);
    setTimeout(() => { if (t.parentNode) t.parentNode.removeChild(t); }, 6000);
  }

  // ---- connection -------------------------------------------------------

  function setConn(conn, text) {
    state.conn = conn;
    ui.state.dataset.state = conn;
    ui.state.textContent = text;
    ui.state.title = conn === 'connected' ? 'Connected to server ' + state.serverID : 'Connection';
    document.body.dataset.conn = conn;
    updateComposer();
  }

  function connect() {
    clearTimeout(state.retryTimer);
    clearInterval(state.countdownTimer);
    state.retryTimer = 0;
    if (state.ws) return;
    state.userClosed = false;
    let url;
    try {
      url = wsURL();
    } catch (e) {
      setConn('offline', 'Offline: the chat address in this page is wrong');
      return;
    }
    setConn('connecting', state.attempt > 0 ? 'Reconnecting…' : 'Connecting…');
    let ws;
    try {
      ws = new WebSocket(url);
    } catch (e) {
      scheduleReconnect('cannot reach the server');
      return;
    }
    state.ws = ws;
    state.lastFrameAt = Date.now();
    ws.onmessage = (ev) => {
      if (state.ws !== ws) return;
      state.lastFrameAt = Date.now();
      onFrame(ev.data);
    };
    ws.onclose = (ev) => { if (state.ws === ws) onClose(ev); };
    ws.onerror = () => { /* onclose follows */ };
    // A server that froze (or a path that died) behind a proxy still
    // accepts the connection but never says welcome.
    clearWatch();
    state.watchTimer = setTimeout(() => {
      if (state.ws === ws && state.conn !== 'connected') dropSocket(ws, 'no-welcome', 'no answer from the server');
    }, WELCOME_TIMEOUT_MS);
  }

  function clearWatch() {
    clearTimeout(state.watchTimer);
    clearInterval(state.watchTimer);
    state.watchTimer = 0;
  }

  // watchSilence checks, a few times per heartbeat period, that the
  // connection brought a frame within SILENCE_FACTOR heartbeat periods.
  // Browsers answer WebSocket pings without telling the page, so without
  // this a frozen server would look connected until TCP gives up, many
  // minutes later.
  function watchSilence(ws, hb) {
    clearWatch();
    const every = Math.max(100, Math.floor(hb / 4));
    let lastCheck = Date.now();
    state.watchTimer = setInterval(() => {
      const now = Date.now();
      if (state.ws !== ws) { clearWatch(); return; }
      // The check itself came late (the tab was asleep or busy): frames
      // may be waiting behind it, so the server gets a fresh period.
      if (now - lastCheck > hb) state.lastFrameAt = Math.max(state.lastFrameAt, now - hb);
      lastCheck = now;
      if (now - state.lastFrameAt > SILENCE_FACTOR * hb) dropSocket(ws, 'silent', 'the server stopped answering');
    }, every);
  }

  // dropSocket gives up a connection at once (a close handshake with a
  // peer that does not answer would take a minute); tag goes to
  // state.closes, why to the user.
  function dropSocket(ws, tag, why) {
    if (state.ws !== ws) return;
    ws.onmessage = null;
    ws.onclose = null;
    try { ws.close(4000, 'gone quiet'); } catch (_) { /* already closing */ }
    onClose({ code: 4000, tag: tag, why: why });
  }

  function sendFrame(obj) {
    const ws = state.ws;
    if (!ws || ws.readyState !== WebSocket.OPEN) return false;
    ws.send(JSON.stringify(obj));
    return true;
  }

  function onWelcome(f) {
    state.serverID = String(f.server || '?');
    state.limits = f.limits || null;
    setConn('connected', 'Connected');
    clearWatch();
    const hb = f.heartbeat_ms;
    state.heartbeatMs = typeof hb === 'number' && isFinite(hb) && hb > 0 ? hb : 0;
    if (state.heartbeatMs) watchSilence(state.ws, state.heartbeatMs);
    clearTimeout(state.stableTimer);
    state.stableTimer = setTimeout(() => { state.attempt = 0; }, STABLE_MS);
    for (const r of state.rooms.values()) joinFrame(r);
  }

  function joinFrame(r) {
    r.joined = false;
    const f = { type: 'join', room: r.name, name: state.name };
    if (r.lastSeq > 0) f.since = r.lastSeq;
    r.sinceSent = r.lastSeq > 0 ? r.lastSeq : null;
    r.historyBusy = false;
    sendFrame(f);
  }

  function onClose(ev) {
    state.ws = null;
    clearWatch();
    state.closes.push(ev.tag || String(ev.code));
    if (state.closes.length > 10) state.closes.shift();
    clearTimeout(state.stableTimer);
    for (const r of state.rooms.values()) {
      r.joined = false;
      r.typers.clear();
    }
    renderTyping();
    if (state.userClosed || state.rooms.size === 0) {
      setConn('offline', 'Offline');
      return;
    }
    const why = ev.why || CLOSE_REASONS[ev.code] || 'connection closed';
    if (ev.code === 1008 || ev.code === 1009 || ev.code === 1007 || ev.code === 1013) {
      toast('Disconnected: ' + why + '.', 'warn');
    }
    scheduleReconnect(why);
  }

  // scheduleReconnect waits a random time in [0, min(cap, base*2^attempt))
  // ("full jitter") and connects again.
  function scheduleReconnect(why) {
    const ceiling = Math.min(BACKOFF_CAP_MS, BACKOFF_BASE_MS * Math.pow(2, state.attempt));
    const delay = Math.floor(Math.random() * ceiling);
    state.attempt += 1;
    state.retryAt = Date.now() + delay;
    clearTimeout(state.retryTimer);
    clearInterval(state.countdownTimer);
    if (navigator.onLine === false) {
      setConn('offline', 'Offline (no network)');
      return; // the "online" event reconnects
    }
    const tick = () => {
      const s = Math.max(0, Math.ceil((state.retryAt - Date.now()) / 1000));
      setConn('reconnecting', 'Reconnecting in ' + s + ' s' + (why ? ' (' + why + ')' : ''));
    };
    tick();
    state.countdownTimer = setInterval(tick, 250);
    state.retryTimer = setTimeout(connect, delay);
  }

  function reconnectNow() {
    if (state.ws || state.rooms.size === 0) return;
    connect();
  }

  // ---- frames from the server --------------------------------------------

  function onFrame(data) {
    let f;
    try { f = JSON.parse(data); } catch (_) { return; }
    if (!f || typeof f !== 'object') return;
    switch (f.type) {
      case 'welcome': onWelcome(f); break;
      case 'joined': onJoined(f); break;
      case 'left': break;
      case 'message': onMessage(f); break;
      case 'ack': onAck(f); break;
      case 'presence': onPresence(f); break;
      case 'typing': onTyping(f); break;
      case 'history': onHistory(f); break;
      case 'error': onError(f); break;
      case 'heartbeat': break; // it only keeps the connection from going quiet
      default: break; // later protocol versions may add frames
    }
  }

  function onJoined(f) {
    const r = state.rooms.get(f.room);
    if (!r) return;
    const first = !r.everJoined;
    r.joined = true;
    r.everJoined = true;
    if (typeof f.name === 'string' && f.name) state.name = f.name;
    setMembers(r, Array.isArray(f.members) ? f.members : [], f.member_count);
    if (first) addNotice(r, 'You joined #' + r.name + ' as ' + state.name + '.');
    onJoinedHistory(r, f);
    // Sends typed while disconnected, and sends that were never acknowledged,
    // go out again with their original cid.
    for (const [cid, p] of r.pending) {
      if (p.status === 'queued' || p.status === 'sent') transmit(r, cid, p);
    }
    updateComposer();
  }

  // onJoinedHistory reads the history fields of a joined frame: what the
  // replay that follows covers, and what could not be recovered.
  function onJoinedHistory(r, f) {
    const since = r.sinceSent;
    r.sinceSent = null;
    r.recovering = null;
    r.hole = null;
    if (typeof f.last_seq !== 'number') return; // the server keeps no history
    if (f.reset) {
      r.seqIDs.clear();
      r.lastSeq = 0;
      // The messages shown are of the old history: their seqs mean nothing
      // now, and they are not brought back on a reload.
      r.log = [];
      for (const li of r.list.querySelectorAll('li.msg[data-seq]')) delete li.dataset.seq;
      scheduleSave(r);
      addNotice(r, 'The older messages of #' + r.name + ' are no longer available.');
    } else if (since !== null && f.truncated) {
      const first = f.first_seq || 0;
      const replayFrom = f.replay_from || (f.last_seq + 1);
      const lostTo = Math.min(first > 0 ? first - 1 : f.last_seq, replayFrom - 1);
      const lost = Math.max(0, lostTo - since);
      if (lost > 0) addNotice(r, lost + (lost === 1 ? ' message you missed is' : ' messages you missed are') + ' no longer available.');
      const low = Math.max(since + 1, first);
      if (low < replayFrom) {
        r.hole = { low: low, before: replayFrom };
        addNotice(r, 'Loading ' + (replayFrom - low) + ' more messages you missed…');
      }
    }
    if (since !== null && !f.reset && f.last_seq > since) {
      r.recovering = { upTo: f.last_seq, count: 0 };
    }
    requestHistory(r);
  }

  // requestHistory asks for the next page of the missed-messages hole, or,
  // when the user scrolled to the top, for older messages.
  function requestHistory(r, scrolled) {
    if (r.historyBusy || !r.joined) return;
    let before = 0;
    if (r.hole) {
      before = r.hole.before;
    } else if (scrolled && r.moreHistory) {
      before = oldestSeq(r);
      if (before <= 1) { r.moreHistory = false; return; }
    } else {
      return;
    }
    if (sendFrame({ type: 'history', room: r.name, before: before, limit: HISTORY_PAGE })) r.historyBusy = true;
  }

  function onHistory(f) {
    const r = state.rooms.get(f.room);
    if (!r) return;
    r.historyBusy = false;
    const msgs = Array.isArray(f.messages) ? f.messages : [];
    const list = r.list;
    const visible = r.name === state.active;
    const oldHeight = visible ? ui.messages.scrollHeight : 0;
    const oldTop = visible ? ui.messages.scrollTop : 0;
    const wasHole = r.hole !== null;
    let oldest = 0;
    for (const m of msgs) {
      if (!m || typeof m.id !== 'string' || typeof m.seq !== 'number') continue;
      if (!oldest || m.seq < oldest) oldest = m.seq;
      remember(r, m);
      if (r.seen.has(m.id)) continue;
      r.seen.add(m.id);
      insertBySeq(list, renderMessage(m), m.seq);
    }
    if (wasHole) {
      if (!oldest || oldest <= r.hole.low || !f.more) r.hole = null;
      else r.hole.before = oldest;
    } else if (!f.more || msgs.length === 0) {
      r.moreHistory = false;
    }
    // Keep what the user looks at in place when older messages come in above.
    if (visible && !wasHole) ui.messages.scrollTop = oldTop + (ui.messages.scrollHeight - oldHeight);
    if (r.hole) requestHistory(r);
  }

  // oldestSeq is the seq of the first message shown in the room (0: none).
  function oldestSeq(r) {
    const li = r.list.querySelector('li.msg[data-seq]');
    return li ? Number(li.dataset.seq) : 0;
  }

  // insertBySeq puts a message before the first shown message with a
  // higher seq (history pages and hole fills arrive after newer messages).
  function insertBySeq(list, li, seq) {
    for (const other of list.querySelectorAll('li.msg[data-seq]')) {
      if (Number(other.dataset.seq) > seq) {
        list.insertBefore(li, other);
        regroup(li);
        regroup(other);
        return;
      }
    }
    list.appendChild(li);
    regroup(li);
  }

  function onPresence(f) {
    const r = state.rooms.get(f.room);
    if (!r) return;
    const joined = (Array.isArray(f.joined) ? f.joined : []).filter((n) => n !== state.name);
    const left = (Array.isArray(f.left) ? f.left : []).filter((n) => n !== state.name);
    if (joined.length) addNotice(r, joined.join(', ') + (joined.length > 1 ? ' joined.' : ' joined.'));
    if (left.length) addNotice(r, left.join(', ') + ' left.');
    for (const n of left) r.typers.delete(n);
    // Big rooms: only the changes; after a burst of joins (names_omitted)
    // only the count, and the names we have stay; after a burst with leaves,
    // the first names of the list, which replace ours.
    if (Array.isArray(f.members)) setMembers(r, f.members, f.member_count);
    else applyPresenceDelta(r, f);
    renderTyping();
  }

  function onTyping(f) {
    const r = state.rooms.get(f.room);
    if (!r || typeof f.name !== 'string' || f.name === state.name) return;
    r.typers.set(f.name, Date.now() + TYPING_SHOW_MS);
    renderTyping();
    setTimeout(renderTyping, TYPING_SHOW_MS + 50);
  }

  function onMessage(f) {
    const r = state.rooms.get(f.room);
    if (!r || typeof f.id !== 'string') return;
    if (typeof f.seq === 'number' && f.seq > 0) {
      // A seq already shown under the same id is a duplicate: the r.seen
      // check below drops it (after filling in what an ack lacked).
      noteSeq(r, f.seq, f.id, true);
      const rec = r.recovering;
      if (rec) {
        if (f.seq <= rec.upTo && !r.seen.has(f.id)) rec.count += 1;
        if (f.seq >= rec.upTo) {
          r.recovering = null;
          // After this message is shown.
          if (rec.count > 0) setTimeout(() => addNotice(r, rec.count + (rec.count === 1 ? ' message' : ' messages') + ' came in while you were away.'), 0);
        }
      }
    }
    r.typers.delete(f.from);
    renderTyping();
    remember(r, f);
    if (r.seen.has(f.id)) {
      // Already shown (e.g. after the ack): fill in what the ack lacked.
      const li = r.list.querySelector('li.msg[data-id="' + cssEscape(f.id) + '"]');
      if (li) fillMessage(li, f);
      return;
    }
    r.seen.add(f.id);
    const p = f.cid ? r.pending.get(f.cid) : undefined;
    if (p && f.from === state.name) {
      clearTimeout(p.timer);
      r.pending.delete(f.cid);
      scheduleSave(r);
      p.li.dataset.id = f.id;
      fillMessage(p.li, f);
      setStatus(p.li, 'done');
      return;
    }
    const li = renderMessage(f);
    appendToRoom(r, li);
  }

  // noteSeq tracks the room's last seq for "since" on re-join. Duplicates are
  // dropped by id (a replayed message keeps its id); a seq seen before under a
  // different id means the server's history restarted, so the count restarts.
  // Only message frames raise the last seq (raise): they come in seq order
  // with no gap, while an ack can overtake another sender's earlier message.
  function noteSeq(r, seq, id, raise) {
    const prev = r.seqIDs.get(seq);
    if (prev !== undefined && prev !== id) {
      r.seqIDs.clear();
      r.lastSeq = 0;
      r.log = [];
    }
    r.seqIDs.set(seq, id);
    if (r.seqIDs.size > 2 * MAX_MESSAGES) r.seqIDs.delete(r.seqIDs.keys().next().value);
    if (raise && seq > r.lastSeq) {
      r.lastSeq = seq;
      scheduleSave(r);
    }
  }

  function onAck(f) {
    const r = state.rooms.get(f.room) || findRoomByCID(f.cid);
    if (!r) return;
    const p = r.pending.get(f.cid);
    if (!p) return;
    clearTimeout(p.timer);
    r.pending.delete(f.cid);
    scheduleSave(r);
    if (typeof f.seq === 'number' && f.seq > 0) noteSeq(r, f.seq, f.id, false);
    if (r.seen.has(f.id)) { // the message itself was already shown separately
      removeMessage(p.li);
      return;
    }
    r.seen.add(f.id);
    p.li.dataset.id = f.id;
    if (typeof f.ts === 'number') setTime(p.li, f.ts);
    if (typeof f.seq === 'number' && f.seq > 0) p.li.dataset.seq = String(f.seq);
    setStatus(p.li, 'done');
  }

  // sendErrors says in a few words why a message was not sent, by error code.
  const sendErrors = {
    rate_limited: 'you are sending too fast',
    invalid_text: 'it is empty or too long',
    unavailable: 'the chat is having trouble, try again',
    not_joined: 'you are not in this room',
  };

  // plainError says what an error frame means for the user. The server's
  // own message is written for developers and only goes to the console.
  function plainError(f) {
    switch (f.code) {
      case 'rate_limited': return 'You are sending too fast: wait a moment.';
      case 'invalid_text': return 'This message cannot be sent: it is empty or too long.';
      case 'invalid_name': return 'This name cannot be used: use letters, digits, spaces and - _ . \' (up to 32).';
      case 'invalid_room': return 'This room name cannot be used: use letters, digits, - and _ (up to 64).';
      case 'too_many_rooms': return 'You are in too many rooms: leave one first.';
      case 'unavailable': return 'The chat is having trouble right now. Try again in a moment.';
      default: return 'Something went wrong. Reloading the page may help.';
    }
  }

  function onError(f) {
    const msg = plainError(f);
    if (window.console && f.message) console.warn('livechat: server error', f.code, f.message);
    if (f.cid) {
      const r = state.rooms.get(f.room) || findRoomByCID(f.cid);
      const p = r && r.pending.get(f.cid);
      if (p) {
        clearTimeout(p.timer);
        p.status = 'failed';
        setStatus(p.li, 'failed', sendErrors[f.code] || 'something went wrong');
        return;
      }
    }
    if (f.room && state.rooms.has(f.room)) {
      const r = state.rooms.get(f.room);
      if (!r.joined && (f.code === 'invalid_name' || f.code === 'invalid_room' || f.code === 'too_many_rooms')) {
        // The join was refused.
        dropRoom(f.room);
        if (state.rooms.size === 0) {
          backToJoin(f.code === 'invalid_name' ? { name: msg } : f.code === 'invalid_room' ? { room: msg } : { form: msg });
        } else {
          toast('#' + f.room + ': ' + msg, 'error');
        }
        return;
      }
      if (!r.joined && f.code === 'unavailable') {
        // The server could not subscribe us (its broker is down): try again shortly.
        setTimeout(() => { if (state.conn === 'connected' && state.rooms.get(r.name) === r && !r.joined) joinFrame(r); }, 2000);
      }
      if (f.code === 'not_joined' && state.conn === 'connected') {
        joinFrame(r); // the server forgot us (e.g. it restarted the room): join again
      }
    }
    toast((f.room ? '#' + f.room + ': ' : '') + msg, 'error');
  }

  function findRoomByCID(cid) {
    for (const r of state.rooms.values()) if (r.pending.has(cid)) return r;
    return null;
  }

  function cssEscape(s) {
    return (window.CSS && CSS.escape) ? CSS.escape(s) : s.replace(/["\\]/g, '\\$&');
  }

  // ---- rendering ----------------------------------------------------------

  // renderMessage builds a message element: li.msg[data-id][data-from] with
  // a .meta header (.from and .time, hidden on a group's later messages),
  // .text and .status. The full time and the server that took the message
  // are in the bubble's tooltip. Text goes in with textContent only.
  function renderMessage(f) {
    const li = el('li', 'msg');
    if (f.id) li.dataset.id = f.id;
    if (typeof f.seq === 'number' && f.seq > 0) li.dataset.seq = String(f.seq);
    li.dataset.from = typeof f.from === 'string' ? f.from : '';
    const own = !f.system && f.from === state.name;
    if (own) li.classList.add('own');
    if (f.system) li.classList.add('system');
    const meta = el('div', 'meta');
    const from = el('span', 'from', f.system ? (f.from ? 'Announcement · ' + f.from : 'Announcement') : f.from);
    const time = el('time', 'time');
    meta.append(from, time);
    const text = el('div', 'text', f.text);
    const status = el('div', 'status');
    li.append(meta, text, status);
    fillMessage(li, f);
    return li;
  }

  function fillMessage(li, f) {
    if (typeof f.seq === 'number' && f.seq > 0) li.dataset.seq = String(f.seq);
    if (typeof f.server === 'string' && f.server) li.dataset.server = f.server;
    if (typeof f.ts === 'number') setTime(li, f.ts);
    else setTitle(li);
  }

  function setTime(li, ts) {
    li.dataset.ts = String(ts);
    const t = li.querySelector('.time');
    if (t) {
      const d = new Date(ts);
      t.dateTime = d.toISOString();
      t.textContent = timeFmt.format(d);
    }
    setTitle(li);
    if (li.parentNode) {
      regroup(li);
      regroup(li.nextElementSibling);
    }
  }

  // setTitle writes the bubble's tooltip: the full date and time, and the
  // server that took the message (for whoever runs the chat).
  function setTitle(li) {
    const parts = [];
    const ts = Number(li.dataset.ts);
    if (ts) parts.push(fullFmt.format(new Date(ts)));
    const server = li.dataset.server;
    if (server && server !== 'cli') parts.push('server ' + server);
    li.title = parts.join(' · ');
  }

  // regroup marks a message as the continuation of the one above it (same
  // sender, less than GROUP_GAP_MS later: its name and time are hidden) or
  // as the head of a new group. Notices and announcements break groups.
  function regroup(li) {
    if (!li || !li.classList.contains('msg')) return;
    const prev = li.previousElementSibling;
    const cont = !!prev && prev.classList.contains('msg') &&
      !li.classList.contains('system') && !prev.classList.contains('system') &&
      prev.dataset.from === li.dataset.from &&
      Math.abs(Number(li.dataset.ts || 0) - Number(prev.dataset.ts || 0)) < GROUP_GAP_MS;
    li.classList.toggle('cont', cont);
  }

  // removeMessage takes a message out of its list; the one below it may
  // now start a group.
  function removeMessage(li) {
    const next = li.nextElementSibling;
    li.remove();
    regroup(next);
  }

  function setStatus(li, status, why) {
    li.classList.remove('pending', 'failed');
    const s = li.querySelector('.status');
    clear(s);
    if (status === 'pending' || status === 'queued') {
      li.classList.add('pending');
      s.textContent = status === 'queued' ? 'Waiting for the connection…' : 'Sending…';
    } else if (status === 'failed') {
      li.classList.add('failed');
      s.appendChild(el('span', 'why', 'Not sent: ' + (why || 'something went wrong')));
      const b = el('button', 'retry', 'Retry');
      b.type = 'button';
      b.addEventListener('click', () => retry(li));
      s.appendChild(b);
    }
  }

  function addNotice(r, text) {
    const li = el('li', 'notice', text);
    appendToRoom(r, li);
  }

  function appendToRoom(r, li) {
    const visible = r.name === state.active;
    const list = r.list;
    const stick = !visible || nearBottom();
    list.appendChild(li);
    regroup(li);
    if (list.children.length > MAX_MESSAGES) {
      while (list.children.length > MAX_MESSAGES) list.removeChild(list.firstChild);
      regroup(list.firstElementChild);
    }
    if (visible) {
      if (stick) scrollToBottom();
      else if (li.classList.contains('msg')) ui.jump.hidden = false;
    } else if (li.classList.contains('msg')) {
      r.unread += 1;
      renderTabs();
    }
  }

  function nearBottom() {
    const m = ui.messages;
    return m.scrollHeight - m.scrollTop - m.clientHeight < 80;
  }

  function scrollToBottom() {
    ui.messages.scrollTop = ui.messages.scrollHeight;
    ui.jump.hidden = true;
  }

  // applyPresenceDelta updates r.members with a presence frame's joined and
  // left names (the server leaves out the full list in big rooms). In a room
  // whose joined frame was truncated the list holds only some of the names;
  // member_count is the room's real size.
  function applyPresenceDelta(r, f) {
    const set = new Set(r.members || []);
    for (const n of Array.isArray(f.left) ? f.left : []) set.delete(n);
    for (const n of Array.isArray(f.joined) ? f.joined : []) set.add(n);
    setMembers(r, Array.from(set), f.member_count);
  }

  // setMembers stores the names we know and the room's member count (from
  // member_count; servers older than it send none, then it is the list's
  // length).
  function setMembers(r, members, count) {
    r.members = members.slice().sort((a, b) => a.localeCompare(b));
    r.memberCount = typeof count === 'number' && count >= r.members.length ? count : r.members.length;
    if (r.name === state.active) renderMembers();
  }

  function renderMembers() {
    const r = state.rooms.get(state.active);
    clear(ui.members);
    const members = r ? r.members : [];
    for (const n of members) {
      const li = el('li', n === state.name ? 'me' : '', n);
      if (n === state.name) li.title = 'you';
      ui.members.appendChild(li);
    }
    // A big room's joined frame carries only the first names: say how many
    // more there are.
    const count = r ? r.memberCount : 0;
    if (count > members.length) ui.members.appendChild(el('li', 'more', '… and ' + (count - members.length) + ' more'));
    ui.memberCount.textContent = String(count);
    ui.memberCount2.textContent = String(count);
  }

  function renderTyping() {
    const r = state.rooms.get(state.active);
    const now = Date.now();
    const names = [];
    if (r) {
      for (const [n, exp] of r.typers) {
        if (exp > now) names.push(n); else r.typers.delete(n);
      }
    }
    let text = '';
    if (names.length === 1) text = names[0] + ' is typing…';
    else if (names.length === 2) text = names[0] + ' and ' + names[1] + ' are typing…';
    else if (names.length > 2) text = 'Several people are typing…';
    ui.typing.textContent = text;
  }

  function renderTabs() {
    clear(ui.tabs);
    for (const r of state.rooms.values()) {
      const li = el('li', 'tab' + (r.name === state.active ? ' active' : ''));
      const b = el('button', 'tab-btn');
      b.type = 'button';
      b.appendChild(el('span', 'tab-name', '#' + r.name));
      if (r.unread > 0) b.appendChild(el('span', 'badge', r.unread > 99 ? '99+' : String(r.unread)));
      if (r.name === state.active) b.setAttribute('aria-current', 'page');
      b.addEventListener('click', () => showRoom(r.name));
      li.appendChild(b);
      ui.tabs.appendChild(li);
    }
    document.body.classList.toggle('multi-room', state.rooms.size > 1);
    const active = ui.tabs.querySelector('.tab.active');
    if (active && active.scrollIntoView) active.scrollIntoView({ block: 'nearest', inline: 'nearest' });
  }

  // showRoom swaps the room's own <ol> into the #messages slot.
  function showRoom(name) {
    const r = state.rooms.get(name);
    if (!r) return;
    const prev = state.rooms.get(state.active);
    if (prev && prev !== r) prev.scrollTop = ui.messages.scrollTop;
    state.active = name;
    r.unread = 0;
    if (ui.messages !== r.list) {
      r.list.id = 'messages';
      r.list.setAttribute('aria-live', 'polite');
      r.list.setAttribute('aria-relevant', 'additions');
      if (ui.messages.parentNode) ui.messages.parentNode.replaceChild(r.list, ui.messages);
      if (prev && prev.list !== r.list) prev.list.removeAttribute('id');
      ui.messages = r.list;
      ui.messages.addEventListener('scroll', onScroll);
    }
    if (r.scrollTop === null) scrollToBottom(); else ui.messages.scrollTop = r.scrollTop;
    ui.roomName.textContent = name;
    document.title = '#' + name + ' · livechat';
    store(LS_ROOM, name);
    saveRoomList();
    renderTabs();
    renderMembers();
    renderTyping();
    updateComposer();
  }

  function onScroll() {
    if (nearBottom()) ui.jump.hidden = true;
    if (ui.messages.scrollTop < SCROLL_LOAD_PX) {
      const r = state.rooms.get(state.active);
      if (r) requestHistory(r, true);
    }
  }

  function updateComposer() {
    if (!ui.text) return;
    const r = state.rooms.get(state.active);
    let note = '';
    if (r && state.conn !== 'connected') note = 'Not connected: your messages will be sent when the connection is back.';
    else if (r && !r.joined) note = 'Joining…';
    const len = byteLen(ui.text.value);
    const max = maxText();
    if (len > max) note = 'Too long: ' + len + ' of ' + max + ' allowed (some symbols count more than one).';
    else if (len > max * 0.8) note = len + ' of ' + max;
    ui.composerNote.textContent = note;
    ui.send.disabled = !r || ui.text.value.trim() === '' || len > max;
  }

  function maxText() {
    return (state.limits && state.limits.max_text) || 4000;
  }

  // ---- actions ------------------------------------------------------------

  function sendText() {
    const r = state.rooms.get(state.active);
    const text = ui.text.value;
    if (!r || text.trim() === '') return;
    if (byteLen(text) > maxText()) { updateComposer(); return; }
    const cid = newCID();
    const li = renderMessage({ from: state.name, text: text, ts: Date.now() });
    li.dataset.cid = cid;
    const p = { text: text, li: li, status: 'queued', ts: Date.now() };
    r.pending.set(cid, p);
    scheduleSave(r);
    setStatus(li, 'queued');
    appendToRoom(r, li);
    scrollToBottom();
    ui.text.value = '';
    autosize();
    state.lastTypingSent = 0;
    if (r.joined) transmit(r, cid, p);
    updateComposer();
  }

  function transmit(r, cid, p) {
    clearTimeout(p.timer);
    if (sendFrame({ type: 'send', room: r.name, text: p.text, cid: cid })) {
      p.status = 'sent';
      setStatus(p.li, 'pending');
      const ws = state.ws;
      p.timer = setTimeout(() => {
        // Still unanswered on the same connection: let the user retry (same cid).
        if (r.pending.get(cid) === p && p.status === 'sent' && state.ws === ws) {
          p.status = 'failed';
          setStatus(p.li, 'failed', 'no answer from the server');
        }
      }, ACK_TIMEOUT_MS);
    } else {
      p.status = 'queued';
      setStatus(p.li, 'queued');
    }
  }

  function retry(li) {
    const cid = li.dataset.cid;
    const r = findRoomByCID(cid);
    if (!r) return;
    const p = r.pending.get(cid);
    p.status = 'queued';
    setStatus(li, 'queued');
    if (r.joined) transmit(r, cid, p);
  }

  function onInput() {
    autosize();
    updateComposer();
    const r = state.rooms.get(state.active);
    if (!r || !r.joined || ui.text.value.trim() === '') return;
    const now = Date.now();
    if (now - state.lastTypingSent >= TYPING_SEND_MS) {
      state.lastTypingSent = now;
      sendFrame({ type: 'typing', room: r.name });
    }
  }

  function autosize() {
    const t = ui.text;
    t.style.height = 'auto';
    t.style.height = Math.min(t.scrollHeight, 160) + 'px';
  }

  function addRoom(name) {
    if (state.rooms.has(name)) { showRoom(name); return; }
    const r = newRoom(name);
    state.rooms.set(name, r);
    showRoom(name);
    if (state.conn === 'connected') joinFrame(r);
    else if (!state.ws && !state.retryTimer) connect();
  }

  function dropRoom(name) {
    const r = state.rooms.get(name);
    if (r) r.dropped = true;
    state.rooms.delete(name);
    forget(LS_SAVED + name);
    saveRoomList();
    if (state.active === name) {
      const next = state.rooms.keys().next();
      state.active = '';
      if (!next.done) showRoom(next.value);
    }
    renderTabs();
  }

  function leaveRoom(name) {
    sendFrame({ type: 'leave', room: name });
    dropRoom(name);
    if (state.rooms.size === 0) {
      state.userClosed = true;
      clearTimeout(state.retryTimer);
      clearInterval(state.countdownTimer);
      state.retryTimer = 0;
      if (state.ws) state.ws.close(1000, 'bye');
      state.ws = null;
      state.attempt = 0;
      setConn('offline', 'Offline');
      backToJoin({});
    }
  }

  function backToJoin(errors) {
    ui.chatScreen.hidden = true;
    ui.joinScreen.hidden = false;
    ui.nameError.textContent = errors.name || '';
    ui.roomError.textContent = errors.room || '';
    ui.joinError.textContent = errors.form || '';
    if (state.rooms.size === 0 && state.ws) {
      state.userClosed = true;
      state.ws.close(1000, 'bye');
      state.ws = null;
      setConn('offline', 'Offline');
    }
    document.title = 'livechat';
    ui.name.focus();
  }

  function onJoinSubmit(ev) {
    ev.preventDefault();
    const name = ui.name.value.trim().replace(/\s+/g, ' ');
    const room = ui.room.value.trim().replace(/^#/, '');
    ui.name.value = name;
    ui.room.value = room;
    const ne = validName(name);
    const re = validRoom(room);
    ui.nameError.textContent = ne;
    ui.roomError.textContent = re;
    ui.joinError.textContent = '';
    ui.name.setAttribute('aria-invalid', ne ? 'true' : 'false');
    ui.room.setAttribute('aria-invalid', re ? 'true' : 'false');
    if (ne) { ui.name.focus(); return; }
    if (re) { ui.room.focus(); return; }
    store(LS_NAME, name);
    store(LS_ROOM, room);
    state.name = name;
    ui.joinScreen.hidden = true;
    ui.chatScreen.hidden = false;
    addRoom(room);
    ui.text.focus();
  }

  function onAddRoom(ev) {
    ev.preventDefault();
    const form = ui.addRoomForm;
    if (!form.classList.contains('open')) { // first click on "+" shows the input
      form.classList.add('open');
      ui.addRoom.focus();
      return;
    }
    const room = ui.addRoom.value.trim().replace(/^#/, '');
    if (room === '') { form.classList.remove('open'); return; }
    const err = validRoom(room);
    if (err) { toast(err, 'error'); ui.addRoom.focus(); return; }
    const max = state.limits && state.limits.max_rooms;
    if (max && state.rooms.size >= max && !state.rooms.has(room)) {
      toast('You can be in at most ' + max + ' rooms.', 'error');
      return;
    }
    ui.addRoom.value = '';
    form.classList.remove('open');
    addRoom(room);
    ui.text.focus();
  }

  function toggleMembers() {
    const open = !document.body.classList.contains('members-open');
    document.body.classList.toggle('members-open', open);
    ui.membersToggle.setAttribute('aria-expanded', open ? 'true' : 'false');
  }

  // ---- saving for a reload ---------------------------------------------------
  //
  // A reload (or reopening the tab) brings back the rooms the page was in:
  // LS_ROOMS lists them (in sessionStorage for this tab, and in localStorage
  // for a new tab), and LS_SAVED + room holds the room's last seq, its latest
  // messages and the messages not sent yet. The page shows the saved
  // messages at once and joins with since = the last seq, so the server sends
  // only what came after: nothing missed, nothing twice. Anything unreadable
  // (corrupt, another version, another program's data) is ignored.

  const saveQueue = new Set(); // rooms with changes not saved yet
  let saveTimer = 0;

  // remember adds a message frame to the room's saved messages (in seq
  // order, the latest KEEP_MESSAGES).
  function remember(r, f) {
    if (!f || typeof f.id !== 'string' || typeof f.text !== 'string') return;
    const log = r.log;
    for (let i = log.length - 1; i >= 0 && i >= log.length - KEEP_MESSAGES; i--) {
      if (log[i].id === f.id) return;
    }
    const m = { id: f.id, from: typeof f.from === 'string' ? f.from : '', text: f.text, ts: typeof f.ts === 'number' ? f.ts : 0 };
    if (typeof f.seq === 'number' && f.seq > 0) m.seq = f.seq;
    if (typeof f.server === 'string' && f.server) m.server = f.server;
    if (f.system) m.system = true;
    let at = log.length;
    if (m.seq) while (at > 0 && log[at - 1].seq > m.seq) at--;
    log.splice(at, 0, m);
    if (log.length > KEEP_MESSAGES) log.splice(0, log.length - KEEP_MESSAGES);
    scheduleSave(r);
  }

  function scheduleSave(r) {
    saveQueue.add(r);
    if (!saveTimer) saveTimer = setTimeout(flushSaves, SAVE_DELAY_MS);
  }

  function flushSaves() {
    clearTimeout(saveTimer);
    saveTimer = 0;
    for (const r of saveQueue) if (!r.dropped) saveRoom(r);
    saveQueue.clear();
  }

  // saveRoom writes the room's last seq, latest messages and unsent
  // messages, dropping the oldest messages until it fits KEEP_CHARS (and the
  // browser's quota).
  function saveRoom(r) {
    const unsent = [];
    for (const [cid, p] of r.pending) unsent.push({ cid: cid, text: p.text, ts: p.ts || Date.now() });
    let messages = r.log;
    for (;;) {
      const json = JSON.stringify({ v: SAVE_VERSION, seq: r.lastSeq, messages: messages, unsent: unsent.slice(-KEEP_UNSENT) });
      if (json.length <= KEEP_CHARS || messages.length === 0) {
        try {
          localStorage.setItem(LS_SAVED + r.name, json);
          return;
        } catch (_) {
          if (messages.length === 0) return; // no room at all: the reload shows less
        }
      }
      messages = messages.slice(Math.ceil(messages.length / 2));
    }
  }

  function saveRoomList() {
    const json = JSON.stringify({ v: SAVE_VERSION, rooms: Array.from(state.rooms.keys()), active: state.active });
    storeTab(LS_ROOMS, json);
    store(LS_ROOMS, json);
  }

  // readRoomList returns the saved room list ({rooms, active}) or null.
  function readRoomList() {
    for (const raw of [loadTab(LS_ROOMS), load(LS_ROOMS)]) {
      let d;
      try { d = JSON.parse(raw); } catch (_) { continue; }
      if (!d || typeof d !== 'object' || d.v !== SAVE_VERSION || !Array.isArray(d.rooms)) continue;
      const rooms = [];
      for (const room of d.rooms) {
        if (typeof room === 'string' && !validRoom(room) && !rooms.includes(room)) rooms.push(room);
      }
      return { rooms: rooms.slice(0, MAX_SAVED_ROOMS), active: typeof d.active === 'string' ? d.active : '' };
    }
    return null;
  }

  function validSaved(m) {
    return !!m && typeof m === 'object' && typeof m.id === 'string' && m.id !== '' &&
      typeof m.from === 'string' && typeof m.text === 'string' && typeof m.ts === 'number' &&
      (m.seq === undefined || (Number.isSafeInteger(m.seq) && m.seq > 0)) &&
      (m.server === undefined || typeof m.server === 'string');
  }

  // restoreRoom shows what was saved for the room and sets its last seq.
  function restoreRoom(r) {
    let d;
    try { d = JSON.parse(load(LS_SAVED + r.name)); } catch (_) { d = null; }
    if (!d || typeof d !== 'object' || d.v !== SAVE_VERSION) return;
    const messages = (Array.isArray(d.messages) ? d.messages : []).filter(validSaved).slice(-KEEP_MESSAGES);
    let last = Number.isSafeInteger(d.seq) && d.seq > 0 ? d.seq : 0;
    for (const saved of messages) {
      const m = { id: saved.id, from: saved.from, text: saved.text, ts: saved.ts };
      if (saved.seq) m.seq = saved.seq;
      if (saved.server) m.server = saved.server;
      if (saved.system === true) m.system = true;
      if (r.seen.has(m.id)) continue;
      r.seen.add(m.id);
      if (m.seq) {
        r.seqIDs.set(m.seq, m.id);
        if (m.seq > last) last = m.seq;
      }
      r.log.push(m);
      const li = renderMessage(m);
      r.list.appendChild(li);
      regroup(li);
    }
    r.lastSeq = last;
    r.everJoined = true; // no "You joined" again
    const unsent = (Array.isArray(d.unsent) ? d.unsent : []).filter((u) => !!u && typeof u === 'object' &&
      typeof u.cid === 'string' && u.cid !== '' && u.cid.length <= 64 && typeof u.text === 'string' && u.text.trim() !== '');
    for (const u of unsent.slice(-KEEP_UNSENT)) {
      if (r.pending.has(u.cid)) continue;
      const li = renderMessage({ from: state.name, text: u.text, ts: typeof u.ts === 'number' ? u.ts : Date.now() });
      li.dataset.cid = u.cid;
      r.pending.set(u.cid, { text: u.text, li: li, status: 'queued', ts: u.ts });
      setStatus(li, 'queued');
      r.list.appendChild(li);
      regroup(li);
    }
  }

  // restore brings back the rooms saved by the last page and connects;
  // false when there are none (the join screen stays).
  function restore() {
    const saved = readRoomList();
    const name = load(LS_NAME) || '';
    if (!saved || saved.rooms.length === 0 || validName(name)) return false;
    state.name = name;
    for (const room of saved.rooms) {
      const r = newRoom(room);
      state.rooms.set(room, r);
      restoreRoom(r);
    }
    ui.joinScreen.hidden = true;
    ui.chatScreen.hidden = false;
    showRoom(state.rooms.has(saved.active) ? saved.active : saved.rooms[0]);
    connect();
    return true;
  }

  // ---- start ----------------------------------------------------------------

  function init() {
    bindUI();
    const q = new URLSearchParams(location.search);
    ui.name.value = q.get('name') || load(LS_NAME) || '';
    ui.room.value = q.get('room') || load(LS_ROOM) || 'general';
    ui.joinForm.addEventListener('submit', onJoinSubmit);
    ui.name.addEventListener('input', () => { ui.nameError.textContent = ''; });
    ui.room.addEventListener('input', () => { ui.roomError.textContent = ''; });
    ui.sendForm.addEventListener('submit', (ev) => { ev.preventDefault(); sendText(); ui.text.focus(); });
    ui.text.addEventListener('input', onInput);
    // Enter sends, Shift+Enter is a new line. Some input paths (automation,
    // some IMEs) deliver the line break separately from the keydown, so the
    // break that follows a sending Enter is swallowed too.
    let swallowBreak = false;
    ui.text.addEventListener('keydown', (ev) => {
      if (ev.key === 'Enter' && !ev.shiftKey && !ev.isComposing) {
        ev.preventDefault();
        swallowBreak = true;
        setTimeout(() => { swallowBreak = false; }, 0);
        sendText();
      }
    });
    ui.text.addEventListener('beforeinput', (ev) => {
      if (swallowBreak && (ev.inputType === 'insertLineBreak' || ev.inputType === 'insertParagraph' ||
          (ev.inputType === 'insertText' && (ev.data === '\n' || ev.data === '\r')))) {
        ev.preventDefault();
      }
    });
    ui.addRoomForm.addEventListener('submit', onAddRoom);
    ui.addRoom.addEventListener('keydown', (ev) => {
      if (ev.key === 'Escape') { ui.addRoom.value = ''; ui.addRoomForm.classList.remove('open'); }
    });
    ui.leave.addEventListener('click', () => leaveRoom(state.active));
    ui.membersToggle.addEventListener('click', toggleMembers);
    ui.state.addEventListener('click', () => { if (state.conn === 'reconnecting' || state.conn === 'offline') reconnectNow(); });
    ui.jump.addEventListener('click', scrollToBottom);
    ui.messages.addEventListener('scroll', onScroll);
    window.addEventListener('online', reconnectNow);
    window.addEventListener('offline', () => { if (state.ws) state.ws.close(4000, 'offline'); });
    setInterval(renderTyping, 1000);
    // Saves wait SAVE_DELAY_MS; a page going away writes them at once.
    window.addEventListener('pagehide', flushSaves);
    document.addEventListener('visibilitychange', () => { if (document.visibilityState === 'hidden') flushSaves(); });
    updateComposer();
    const restored = restore();
    if (q.get('join') === '1' && ui.name.value && ui.room.value) ui.join.click();
    else if (restored) ui.text.focus();
    else (ui.name.value ? ui.room : ui.name).focus();
  }

  // Exposed for debugging and automated tests; not an API.
  window.livechat = { state: state, validName: validName, validRoom: validRoom, wsURL: wsURL };

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', init);
  else init();
})();

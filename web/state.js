// state.js: what the page knows, without a DOM: the rooms it is in, their
// members and messages (ordered by seq), the sends not acknowledged yet, and
// what is saved for a reload. Nothing here touches document or window; the
// storage and the clock are injected, so node's test runner can load it.

import { systemClock } from './clock.js';
import { fileList } from './files.js';

export const MAX_MESSAGES = 500;   // entries (messages and notices) kept per room
export const TYPING_SHOW_MS = 3000; // show "x is typing" this long after the last frame
export const LS_NAME = 'livechat.name';
export const LS_ROOM = 'livechat.room';
// What a reload brings back (see Saver).
export const LS_ROOMS = 'livechat.rooms';  // {v, rooms, active}: the rooms the page is in
export const LS_SAVED = 'livechat.saved.'; // + room: {v, seq, messages, unsent}
export const SAVE_VERSION = 1;
export const KEEP_MESSAGES = 100;          // messages kept per room for a reload
export const KEEP_CHARS = 100000;          // and at most this much JSON per room (~200 KB)
export const KEEP_UNSENT = 50;             // unsent messages kept per room
export const MAX_SAVED_ROOMS = 20;         // rooms brought back (the server's default max_rooms)
export const SAVE_DELAY_MS = 500;          // saves are batched this long

const ROOM_RE = /^[A-Za-z0-9_-]{1,64}$/;
const NAME_CHAR_RE = /^[\p{L}\p{Nd} _.'-]$/u;

// validRoom mirrors protocol.ValidRoom: '' when valid, else what is wrong.
export function validRoom(room) {
  return ROOM_RE.test(room) ? '' : 'Room must be 1-64 characters: letters, digits, - and _.';
}

// validName mirrors protocol.ValidName: 1-32 characters (code points) of
// letters, digits, space and - _ . ', no leading or trailing space.
export function validName(name) {
  const chars = Array.from(name);
  if (chars.length === 0) return 'Enter a name.';
  if (chars.length > 32) return 'Name must be at most 32 characters.';
  if (name.trim() !== name) return 'Name must not start or end with a space.';
  for (const c of chars) {
    if (!NAME_CHAR_RE.test(c)) return 'Name may only use letters, digits, spaces and - _ . \' (not "' + c + '").';
  }
  return '';
}

// An entry is one line of a room's list: a message
//   {kind: 'msg', id, from, text, files, ts, seq, server, system, guest, user, cid, status, why}
// (id is '' until the server confirms an own message; seq 0: none; status
// of an own message: 'queued' | 'sent' | 'failed' | '' once confirmed;
// files: the checked files it carries, see files.js fileList) or a
// notice {kind: 'notice', text}. Every entry also gets a sort key (see
// Room.place).

// msgEntry makes a message entry from a message frame (or a saved message).
export function msgEntry(f) {
  return {
    kind: 'msg',
    id: typeof f.id === 'string' ? f.id : '',
    from: typeof f.from === 'string' ? f.from : '',
    text: typeof f.text === 'string' ? f.text : '',
    files: fileList(f.files),
    ts: typeof f.ts === 'number' ? f.ts : undefined,
    seq: typeof f.seq === 'number' && f.seq > 0 ? f.seq : 0,
    server: typeof f.server === 'string' ? f.server : '',
    system: !!f.system,
    guest: f.guest === true, // sent by a guest: shown as "(guest)"
    user: typeof f.user === 'string' ? f.user : '',
    cid: '',
    status: '',
    why: '',
    key: 0,
  };
}

// Room is one room the page is in. Its entries are what the room's list
// shows, in order: messages with a seq sorted by seq, and messages without
// one (no history on the server, own messages not confirmed yet) and notices
// where they arrived. The view keeps one node per entry in the same order.
export class Room {
  constructor(name) {
    this.name = name;
    this.joined = false;      // the server confirmed our membership on this connection
    this.everJoined = false;  // "You joined" was said (or the room came back from a reload)
    this.members = [];        // names known, sorted
    this.memberCount = 0;     // the room's size (may exceed members.length)
    this.entries = [];        // what the list shows, in order (see place)
    this.byId = new Map();    // message id -> entry, for the entries kept
    this.seen = new Set();    // message ids already shown (kept after trimming)
    this.seqIDs = new Map();  // seq -> message id, to tell a restarted history
    this.log = [];            // the latest message frames, by seq, saved for a reload
    this.lastSeq = 0;         // highest seq of a message frame: "since" on re-join
    this.sinceSent = null;    // the since of the join in flight (null: none sent)
    this.recovering = null;   // {upTo, count}: replay after a re-join being counted
    this.hole = null;         // {low, before}: missed seqs still held, fetched by history requests
    this.historyBusy = false; // a history request is in flight
    this.moreHistory = true;  // the server may hold older messages than the oldest shown
    this.pending = new Map(); // cid -> own message entry not confirmed yet
    this.typers = new Map();  // name -> when to stop showing "is typing" (ms)
    this.unread = 0;          // messages that came while another room was shown
    this.guests = new Set();  // names seen sending as guests (no direct chat with them)
    this.dropped = false;     // the page left the room
    // The view's own: the room's list element and where it was scrolled.
    // The state never reads them.
    this.list = null;
    this.scrollTop = null;
  }

  // place inserts e into entries and returns its index. A message with a
  // seq goes after every entry whose key is at most its seq (binary search);
  // anything else goes at the end. The key of a message with a seq is its
  // seq, of anything else the key of the entry before it, so entries stay
  // sorted by key and a message without a seq keeps its arrival place.
  place(e) {
    const es = this.entries;
    let at = es.length;
    if (e.kind === 'msg' && e.seq > 0) {
      e.key = e.seq;
      let lo = 0;
      let hi = es.length;
      while (lo < hi) {
        const mid = (lo + hi) >> 1;
        if (es[mid].key <= e.key) lo = mid + 1; else hi = mid;
      }
      at = lo;
    } else {
      e.key = at > 0 ? es[at - 1].key : 0;
    }
    es.splice(at, 0, e);
    if (e.kind === 'msg' && e.id) this.byId.set(e.id, e);
    return at;
  }

  // addMessage places a message entry unless its id was shown before;
  // -1 for a duplicate.
  addMessage(e) {
    if (e.id) {
      if (this.seen.has(e.id)) return -1;
      this.seen.add(e.id);
    }
    return this.place(e);
  }

  // setID gives an own message its id once the server confirmed it.
  setID(e, id) {
    e.id = id;
    this.seen.add(id);
    this.byId.set(id, e);
  }

  // setSeq records a message's seq learnt after it was placed (an ack, or a
  // copy that fills in what the ack lacked). The entry moves only in the
  // sort: it takes the seq as its key when that keeps entries sorted, and
  // otherwise keeps its place and key.
  setSeq(e, seq) {
    e.seq = seq;
    const i = this.entries.lastIndexOf(e);
    if (i < 0) return;
    const prev = this.entries[i - 1];
    const next = this.entries[i + 1];
    if ((!prev || prev.key <= seq) && (!next || seq <= next.key)) e.key = seq;
  }

  // remove takes an entry out; its former index, or -1.
  remove(e) {
    const i = this.entries.lastIndexOf(e);
    if (i < 0) return -1;
    this.entries.splice(i, 1);
    if (e.id && this.byId.get(e.id) === e) this.byId.delete(e.id);
    return i;
  }

  // trim drops the oldest entries beyond max and returns them.
  trim(max) {
    if (this.entries.length <= max) return [];
    const gone = this.entries.splice(0, this.entries.length - max);
    for (const e of gone) if (e.id && this.byId.get(e.id) === e) this.byId.delete(e.id);
    return gone;
  }

  // forgetOrder makes the entries shown the old history: later seqs go
  // after all of them. With dropSeqs (the server's history was reset) they
  // also lose their seqs; the entries changed are returned.
  forgetOrder(dropSeqs) {
    const changed = [];
    for (const e of this.entries) {
      e.key = 0;
      if (dropSeqs && e.kind === 'msg' && e.seq) {
        e.seq = 0;
        changed.push(e);
      }
    }
    return changed;
  }

  // oldestSeq is the seq of the first message shown with one (0: none).
  oldestSeq() {
    for (const e of this.entries) if (e.kind === 'msg' && e.seq > 0) return e.seq;
    return 0;
  }

  // noteSeq tracks the last seq for "since" on re-join; true when the last
  // seq changed. Duplicates are dropped by id (a replayed message keeps its
  // id); a seq seen before under another id means the server's history
  // restarted, so the count restarts and the saved messages are forgotten.
  // Only message frames raise the last seq (raise): they come in seq order
  // with no gap, while an ack can overtake another sender's earlier message.
  noteSeq(seq, id, raise) {
    let changed = false;
    const prev = this.seqIDs.get(seq);
    if (prev !== undefined && prev !== id) {
      this.seqIDs.clear();
      this.lastSeq = 0;
      this.log = [];
      this.forgetOrder(false);
      changed = true;
    }
    this.seqIDs.set(seq, id);
    if (this.seqIDs.size > 2 * MAX_MESSAGES) this.seqIDs.delete(this.seqIDs.keys().next().value);
    if (raise && seq > this.lastSeq) {
      this.lastSeq = seq;
      changed = true;
    }
    return changed;
  }

  // remember adds a message frame to the messages saved for a reload (in
  // seq order, the latest KEEP_MESSAGES); false when it was there already.
  remember(f) {
    if (!f || typeof f.id !== 'string' || typeof f.text !== 'string') return false;
    const log = this.log;
    for (let i = log.length - 1; i >= 0 && i >= log.length - KEEP_MESSAGES; i--) {
      if (log[i].id === f.id) return false;
    }
    const m = { id: f.id, from: typeof f.from === 'string' ? f.from : '', text: f.text, ts: typeof f.ts === 'number' ? f.ts : 0 };
    if (typeof f.seq === 'number' && f.seq > 0) m.seq = f.seq;
    if (typeof f.server === 'string' && f.server) m.server = f.server;
    if (f.system) m.system = true;
    if (f.guest === true) m.guest = true;
    const files = fileList(f.files);
    if (files.length) m.files = files;
    let at = log.length;
    if (m.seq) while (at > 0 && log[at - 1].seq > m.seq) at--;
    log.splice(at, 0, m);
    if (log.length > KEEP_MESSAGES) log.splice(0, log.length - KEEP_MESSAGES);
    return true;
  }

  // setMembers stores the names known and the room's member count (from
  // member_count; servers older than it send none, then it is the list's
  // length).
  setMembers(members, count) {
    this.members = members.filter((n) => typeof n === 'string').sort((a, b) => a.localeCompare(b));
    this.memberCount = typeof count === 'number' && count >= this.members.length ? count : this.members.length;
  }

  // applyPresence updates the members with a presence frame: its full list
  // when it has one, else its joined and left names (the server leaves out
  // the list in big rooms, and after a burst of joins only the count).
  applyPresence(f) {
    if (Array.isArray(f.members)) {
      this.setMembers(f.members, f.member_count);
      return;
    }
    const set = new Set(this.members);
    for (const n of Array.isArray(f.left) ? f.left : []) set.delete(n);
    for (const n of Array.isArray(f.joined) ? f.joined : []) set.add(n);
    this.setMembers(Array.from(set), f.member_count);
  }

  // typingNames is who is typing at now (expired names are dropped).
  typingNames(now) {
    const names = [];
    for (const [n, until] of this.typers) {
      if (until > now) names.push(n); else this.typers.delete(n);
    }
    return names;
  }
}

// ChatState is the whole page's state. window.livechat.state exposes it for
// debugging and the browser tests.
export class ChatState {
  constructor() {
    this.name = '';          // the user's name (as the server confirmed it)
    this.user = null;        // who the server says we are: {id, name, guest} (null: not known)
    this.guests = true;      // the server lets guests in (GET /api/account/me)
    this.accounts = true;    // the server has accounts (false: an older server, guests only)
    this.sidebar = new Sidebar(); // public rooms, private rooms, direct chats, invitations
    this.rooms = new Map();  // room name -> Room, in tab order
    this.active = '';        // the room shown
    this.serverID = '';      // the server of the current connection (welcome)
    this.limits = null;      // the welcome's limits
    this.uploadToken = '';   // a guest's upload token (the welcome's upload_token)
    this.conn = 'offline';   // offline | connecting | connected | reconnecting
    this.heartbeatMs = 0;    // the welcome's heartbeat_ms (0: the server sends none)
    this.closes = [];        // why the last connections ended (close code, 'silent', 'no-welcome')
  }

  // signedIn: the user has an account session (not a guest, not unknown).
  signedIn() {
    return !!this.user && !this.user.guest && !!this.user.id;
  }

  // canUpload: the user may attach files: signed in, or a guest whose
  // server gave it an upload token (its welcome's upload_token).
  canUpload() {
    return this.signedIn() || (!!this.user && this.user.guest && this.uploadToken !== '');
  }

  // owner is whose saved rooms the page may bring back: the account's id,
  // or '' for a guest (guest ids change with every connection).
  owner() {
    return this.signedIn() ? this.user.id : '';
  }

  // title is what the page calls a room (never a server-made id).
  title(id) {
    return this.sidebar.title(id);
  }

  // maxText is the longest message the server takes, in bytes.
  maxText() {
    return (this.limits && this.limits.max_text) || 4000;
  }

  // roomOfCID is the room with an unconfirmed send of that cid, or null.
  roomOfCID(cid) {
    for (const r of this.rooms.values()) if (r.pending.has(cid)) return r;
    return null;
  }
}

// memoryStorage is a Storage-like map, for a page without storage and for tests.
export function memoryStorage() {
  const m = new Map();
  return {
    getItem: (k) => (m.has(k) ? m.get(k) : null),
    setItem: (k, v) => { m.set(k, String(v)); },
    removeItem: (k) => { m.delete(k); },
    get length() { return m.size; },
  };
}

// validSaved says whether a saved message can be shown.
function validSaved(m) {
  return !!m && typeof m === 'object' && typeof m.id === 'string' && m.id !== '' &&
    typeof m.from === 'string' && typeof m.text === 'string' && typeof m.ts === 'number' &&
    (m.seq === undefined || (Number.isSafeInteger(m.seq) && m.seq > 0)) &&
    (m.server === undefined || typeof m.server === 'string') &&
    (m.guest === undefined || typeof m.guest === 'boolean') &&
    (m.files === undefined || Array.isArray(m.files));
}

// Saver saves what a reload brings back and reads it again.
//
// A reload (or reopening the tab) brings back the rooms the page was in:
// LS_ROOMS lists them (in sessionStorage for this tab, so two tabs in
// different rooms each get their own back, and in localStorage for a new
// tab), and LS_SAVED + room holds the room's last seq, its latest messages
// and the messages not sent yet. The page shows the saved messages at once
// and joins with since = the last seq, so the server sends only what came
// after: nothing missed, nothing twice. Anything unreadable (corrupt,
// another version, another program's data) is ignored. Storage that throws
// (private mode, full) only means less comes back.
export class Saver {
  // local and session are Storage-like (getItem, setItem, removeItem).
  constructor({ local, session, clock } = {}) {
    this.local = local || memoryStorage();
    this.session = session || memoryStorage();
    this.clock = clock || systemClock;
    this.queue = new Set(); // rooms with changes not saved yet
    this.timer = 0;
  }

  store(key, value) { try { this.local.setItem(key, value); } catch (_) { /* private mode */ } }
  load(key) { try { return this.local.getItem(key); } catch (_) { return null; } }
  forget(key) { try { this.local.removeItem(key); } catch (_) { /* private mode */ } }

  // schedule saves the room within SAVE_DELAY_MS (with others changed meanwhile).
  schedule(r) {
    this.queue.add(r);
    if (!this.timer) this.timer = this.clock.setTimeout(() => this.flush(), SAVE_DELAY_MS);
  }

  // flush saves the scheduled rooms now (the page is going away).
  flush() {
    this.clock.clearTimeout(this.timer);
    this.timer = 0;
    for (const r of this.queue) if (!r.dropped) this.saveRoom(r);
    this.queue.clear();
  }

  // saveRoom writes the room's last seq, latest messages and unsent
  // messages, dropping the oldest messages until it fits KEEP_CHARS (and the
  // browser's quota).
  saveRoom(r) {
    const unsent = [];
    for (const [cid, p] of r.pending) {
      const u = { cid: cid, text: p.text, ts: p.ts || this.clock.now() };
      if (p.files && p.files.length) u.files = p.files;
      unsent.push(u);
    }
    let messages = r.log;
    for (;;) {
      const json = JSON.stringify({ v: SAVE_VERSION, seq: r.lastSeq, messages: messages, unsent: unsent.slice(-KEEP_UNSENT) });
      if (json.length <= KEEP_CHARS || messages.length === 0) {
        try {
          this.local.setItem(LS_SAVED + r.name, json);
          return;
        } catch (_) {
          if (messages.length === 0) return; // no room at all: the reload shows less
        }
      }
      messages = messages.slice(Math.ceil(messages.length / 2));
    }
  }

  // saveRoomList writes the rooms the page is in, the one shown, and whose
  // they are (state.owner(): another account signing in on this browser
  // does not get them).
  saveRoomList(state) {
    const d = { v: SAVE_VERSION, rooms: Array.from(state.rooms.keys()), active: state.active };
    const owner = typeof state.owner === 'function' ? state.owner() : '';
    if (owner) d.user = owner;
    const json = JSON.stringify(d);
    try { this.session.setItem(LS_ROOMS, json); } catch (_) { /* private mode */ }
    this.store(LS_ROOMS, json);
  }

  // readRoomList returns the saved room list ({rooms, active}) of owner
  // ('' for a guest) or null: the tab's own first, else the last one any
  // tab saved.
  readRoomList(owner = '') {
    let tab = null;
    try { tab = this.session.getItem(LS_ROOMS); } catch (_) { tab = null; }
    for (const raw of [tab, this.load(LS_ROOMS)]) {
      let d;
      try { d = JSON.parse(raw); } catch (_) { continue; }
      if (!d || typeof d !== 'object' || d.v !== SAVE_VERSION || !Array.isArray(d.rooms)) continue;
      if ((typeof d.user === 'string' ? d.user : '') !== owner) continue;
      const rooms = [];
      for (const room of d.rooms) {
        if (typeof room === 'string' && !validRoom(room) && !rooms.includes(room)) rooms.push(room);
      }
      return { rooms: rooms.slice(0, MAX_SAVED_ROOMS), active: typeof d.active === 'string' ? d.active : '' };
    }
    return null;
  }

  // readRoom returns what was saved for the room, checked: {seq, messages,
  // unsent} (an unsent message may have files and no text), or null when there is nothing usable.
  readRoom(name) {
    let d;
    try { d = JSON.parse(this.load(LS_SAVED + name)); } catch (_) { d = null; }
    if (!d || typeof d !== 'object' || d.v !== SAVE_VERSION) return null;
    const messages = (Array.isArray(d.messages) ? d.messages : []).filter(validSaved).slice(-KEEP_MESSAGES);
    const unsent = (Array.isArray(d.unsent) ? d.unsent : []).filter((u) => !!u && typeof u === 'object' &&
      typeof u.cid === 'string' && u.cid !== '' && u.cid.length <= 64 && typeof u.text === 'string' && (u.text.trim() !== '' || fileList(u.files).length > 0));
    return {
      seq: Number.isSafeInteger(d.seq) && d.seq > 0 ? d.seq : 0,
      messages: messages,
      unsent: unsent.slice(-KEEP_UNSENT),
    };
  }
}

// ---- rooms beyond the public ones (CONTRACT.md, "Rooms") -----------------

// Room ids starting with '_' are made by the server: '_p…' a private room,
// '_d…' a direct chat. Any other valid id is a public room, named by its id.
export const RESERVED_PREFIX = '_';
export const PRIVATE_PREFIX = '_p';
export const DIRECT_PREFIX = '_d';

// roomKind is 'public', 'private' or 'direct' by the id alone.
export function roomKind(id) {
  if (typeof id !== 'string' || !id.startsWith(RESERVED_PREFIX)) return 'public';
  return id.startsWith(DIRECT_PREFIX) ? 'direct' : 'private';
}

// roomTitle is what the page calls a room: '#' + id for a public room, the
// peer's name for a direct chat, the title for a private room. A
// server-made id is never shown: without what the server said of it
// (conv), a private room is "Private room" and a direct chat "Direct chat".
export function roomTitle(id, conv) {
  const kind = (conv && conv.kind) || roomKind(id);
  if (kind === 'direct') return (conv && conv.peer && conv.peer.name) || 'Direct chat';
  if (kind === 'private') return (conv && conv.name) || 'Private room';
  return '#' + id;
}

function text(v, max) {
  return typeof v === 'string' ? Array.from(v).slice(0, max).join('') : '';
}

// convEntry reads one item of GET /api/conversations ({room, role, peer})
// or of a POST answer; null when it is not usable. The result is
// {id, kind, name, role, peer: {id, name} | null, lastActive, title}.
export function convEntry(c) {
  if (!c || typeof c !== 'object' || !c.room || typeof c.room !== 'object') return null;
  const id = c.room.id;
  if (typeof id !== 'string' || validRoom(id)) return null;
  const kind = c.room.kind === 'public' || c.room.kind === 'private' || c.room.kind === 'direct' ? c.room.kind : roomKind(id);
  const role = c.role === 'owner' || c.role === 'member' || c.role === 'invited' ? c.role : 'member';
  const peer = c.peer && typeof c.peer === 'object' && typeof c.peer.name === 'string'
    ? { id: typeof c.peer.id === 'string' ? c.peer.id : '', name: text(c.peer.name, 64) } : null;
  const e = {
    id: id,
    kind: kind,
    name: text(c.room.name, 64),
    role: role,
    peer: peer,
    lastActive: typeof c.room.last_active === 'number' ? c.room.last_active : 0,
    title: '',
  };
  e.title = roomTitle(id, e);
  return e;
}

// Sidebar is the page's list of rooms: the public directory (GET
// /api/rooms) and the user's private rooms, direct chats and invitations
// (GET /api/conversations, kept in the server's order: most recently
// active first).
export class Sidebar {
  constructor() {
    this.publicRooms = [];   // [{id, title}]
    this.convs = new Map();  // room id -> convEntry
    this.loaded = false;     // the conversations came at least once
    this.error = '';         // why the last refresh failed, in words ('' none)
  }

  // setPublic takes GET /api/rooms' "rooms"; server-made ids are ignored.
  setPublic(rooms) {
    const seen = new Set();
    this.publicRooms = [];
    for (const r of Array.isArray(rooms) ? rooms : []) {
      if (!r || typeof r.id !== 'string' || validRoom(r.id) || roomKind(r.id) !== 'public' || seen.has(r.id)) continue;
      seen.add(r.id);
      this.publicRooms.push({ id: r.id, title: '#' + r.id });
    }
  }

  // setConversations replaces the conversations with GET
  // /api/conversations' "conversations".
  setConversations(list) {
    this.convs = new Map();
    for (const c of Array.isArray(list) ? list : []) {
      const e = convEntry(c);
      if (e && e.kind !== 'public' && !this.convs.has(e.id)) this.convs.set(e.id, e);
    }
    this.loaded = true;
  }

  // upsert adds (first in the list) or updates one conversation; its
  // entry, or null when c is not usable.
  upsert(c) {
    const e = convEntry(c);
    if (!e || e.kind === 'public') return null;
    const old = this.convs.get(e.id);
    if (old && !e.peer) e.peer = old.peer;
    if (old && !e.name) e.name = old.name;
    e.title = roomTitle(e.id, e);
    this.convs.delete(e.id);
    this.convs = new Map([[e.id, e], ...this.convs]);
    return e;
  }

  // setRole changes the user's role in a conversation (an accepted invitation).
  setRole(id, role) {
    const e = this.convs.get(id);
    if (e) e.role = role;
  }

  // remove forgets a conversation (left, declined, removed); true when it was listed.
  remove(id) {
    return this.convs.delete(id);
  }

  get(id) {
    return this.convs.get(id) || null;
  }

  // invitations are the rooms the user is invited to, not a member of yet.
  invitations() {
    return Array.from(this.convs.values()).filter((e) => e.role === 'invited');
  }

  // conversations are the private rooms and direct chats the user is in.
  conversations() {
    return Array.from(this.convs.values()).filter((e) => e.role !== 'invited');
  }

  // title is the room's title (see roomTitle).
  title(id) {
    return roomTitle(id, this.convs.get(id));
  }

  // canInvite: the user owns this private room.
  canInvite(id) {
    const e = this.convs.get(id);
    return !!e && e.kind === 'private' && e.role === 'owner';
  }
}

// hashRoom reads the room named by a URL hash "#room=ID" ('' for none or
// an invalid id).
export function hashRoom(hash) {
  const m = /^#?room=([^&]*)/.exec(typeof hash === 'string' ? hash : '');
  if (!m) return '';
  let id;
  try { id = decodeURIComponent(m[1]); } catch (_) { return ''; }
  return validRoom(id) ? '' : id;
}

// roomHash is the URL hash naming a room.
export function roomHash(id) {
  return '#room=' + encodeURIComponent(id);
}

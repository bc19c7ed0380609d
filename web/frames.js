// frames.js: turns the server's frames and the user's actions into changes
// of the state (state.js), without a DOM. What the page must redraw is
// reported to a view object (view.js in the page, a recorder in the tests);
// frames go out through the connection (connection.js), which is injected.

import { systemClock } from './clock.js';
import { fileList } from './files.js';
import { Outbox, heartbeatOf, identityClose } from './connection.js';
import { MAX_MESSAGES, TYPING_SHOW_MS, LS_NAME, LS_ROOM, LS_SAVED, KEEP_MESSAGES, Room, Sidebar, msgEntry, validName, roomKind } from './state.js';

export const TYPING_SEND_MS = 2000; // send "typing" at most this often
export const HISTORY_PAGE = 50;     // messages asked per history request (server cap: 100)
export const JOIN_RETRY_MS = 2000;  // a join refused as unavailable is tried again after this

// View lists what Chat reports; every method may be a no-op.
//   inserted(room, index, entry, how)  an entry is at index of room.entries;
//                                      how: 'live' | 'history' | 'restore'
//   updated(room, entry)               an entry's id, seq, ts, server, files or status changed
//   removed(room, entry)               an entry left room.entries
//   trimmed(room, entries)             the oldest entries were dropped
//   olderStart(room), olderEnd(room)   a page of older messages is inserted between them
//   members(room), typing(), tabs(), composer()
//   toast(text, kind)
//   roomDropped(name, next)            the page left a room; next is the room to show ('' none)
//   backToJoin(errors)                 no room left: {name, room, form} say why
//   sidebar()                          the rooms list (state.sidebar) or who the user is changed
//   signedOut(text)                    the session ended: show signing in, with text saying why
//   enterChat(room)                    signed in (or back as a guest): show the chat and room ('' none)
//   openRoom(room)                     enter the room (if not in it) and show it
export const viewMethods = ['inserted', 'updated', 'removed', 'trimmed', 'olderStart', 'olderEnd', 'members',
  'typing', 'tabs', 'composer', 'toast', 'roomDropped', 'backToJoin', 'sidebar', 'signedOut', 'enterChat', 'openRoom'];

// joinRefusals are the error codes that refuse a join: the page leaves
// the room. The value says which field of the join form the words go to.
const joinRefusals = {
  invalid_name: 'name',
  name_taken: 'name',
  forbidden_name: 'name',
  invalid_room: 'room',
  not_found: 'form',
  too_many_rooms: 'form',
};

// sendErrors says in a few words why a message was not sent, by error code.
const sendErrors = {
  rate_limited: 'you are sending too fast',
  invalid_text: 'it is empty or too long',
  unavailable: 'the chat is having trouble, try again',
  not_joined: 'you are not in this room',
  invalid_files: 'a file could not be attached: upload it again',
};

// plainError says what an error frame means for the user. The server's
// own message is written for developers and only goes to the console.
export function plainError(f) {
  switch (f.code) {
    case 'rate_limited': return 'You are sending too fast: wait a moment.';
    case 'invalid_text': return 'This message cannot be sent: it is empty or too long.';
    case 'invalid_name': return 'This name cannot be used: use letters, digits, spaces and - _ . \' (up to 32).';
    case 'invalid_room': return 'This room name cannot be used: use letters, digits, - and _ (up to 64).';
    case 'too_many_rooms': return 'You are in too many rooms: leave one first.';
    case 'not_found': return 'This conversation does not exist or you do not have access to it.';
    case 'name_taken': return 'That name belongs to an account: sign in, or pick another name.';
    case 'forbidden_name': return 'You cannot use another name here.';
    case 'auth_required': return 'Sign in to chat.';
    case 'invalid_token': return 'Could not sign in to the chat.';
    case 'unavailable': return 'The chat is having trouble right now. Try again in a moment.';
    case 'invalid_files': return 'A file could not be attached: upload it again.';
    default: return 'Something went wrong. Reloading the page may help.';
  }
}

const utf8 = new TextEncoder();

// byteLen is the length of s in UTF-8 bytes (what the server counts).
export function byteLen(s) { return utf8.encode(s).length; }

// Chat applies frames and actions to a ChatState. Not safe for use from
// several threads (a page has one).
export class Chat {
  // state: ChatState; saver: Saver; conn: {send(frame) -> bool, ws,
  // idle(), connect(), close()}; view: see viewMethods; clock; newCID()
  // makes a client id for a send; log(...) gets the server's own error
  // messages.
  // checkSession() is called when a signed-in page's connection ended
  // before its welcome (the server may have refused an ended session).
  constructor({ state, saver, conn, view, clock, newCID, log, checkSession }) {
    this.state = state;
    this.saver = saver;
    this.conn = conn;
    this.view = view;
    this.clock = clock || systemClock;
    this.newCID = newCID;
    this.log = log || (() => {});
    this.checkSession = checkSession || (() => {});
    this.lastTypingSent = 0;
    this.outbox = new Outbox({ conn: conn, clock: this.clock, onChange: (r, e) => this.view.updated(r, e) });
  }

  send(frame) { return this.conn.send(frame); }

  // ---- frames from the server ----------------------------------------

  // onFrame applies one parsed frame. Unknown types are ignored: later
  // protocol versions may add some.
  onFrame(f) {
    switch (f.type) {
      case 'welcome': this.onWelcome(f); break;
      case 'joined': this.onJoined(f); break;
      case 'message': this.onMessage(f); break;
      case 'ack': this.onAck(f); break;
      case 'presence': this.onPresence(f); break;
      case 'typing': this.onTyping(f); break;
      case 'history': this.onHistory(f); break;
      case 'error': this.onError(f); break;
      case 'left': this.onLeft(f); break;
      default: break; // authed; heartbeat only keeps the connection from going quiet
    }
  }

  onWelcome(f) {
    const s = this.state;
    s.serverID = String(f.server || '?');
    s.limits = f.limits || null;
    s.heartbeatMs = heartbeatOf(f);
    s.uploadToken = typeof f.upload_token === 'string' ? f.upload_token : '';
    if (f.auth_required) {
      // The server wants credentials this page does not have (it lets no
      // guests in and the session is gone).
      this.endSession(s.signedIn() ? 'Your session expired. Sign in again.' : 'Sign in to chat.');
      return;
    }
    const u = f.user;
    if (u && typeof u === 'object' && typeof u.id === 'string') {
      if (s.signedIn() && u.id !== s.user.id) {
        // The browser's session is someone else's now (signed in again in
        // another tab): this page's rooms and saved messages are not theirs.
        this.endSession('Someone else signed in on this browser (in another tab). Sign in again.');
        return;
      }
      const name = typeof u.name === 'string' ? u.name : '';
      s.user = { id: u.id, name: name || (s.user ? s.user.name : ''), guest: u.guest === true };
      if (!s.user.guest && name) s.name = name;
      this.view.sidebar();
    }
    for (const r of s.rooms.values()) this.joinFrame(r);
  }

  // joinFrame (re)joins a room, with since = the last seq seen. A signed-in
  // user's name is the server's to say: only a guest (or a page on a
  // server without accounts) names itself.
  joinFrame(r) {
    r.joined = false;
    const f = { type: 'join', room: r.name };
    if (!this.state.signedIn()) f.name = this.state.name;
    if (r.lastSeq > 0) f.since = r.lastSeq;
    r.sinceSent = r.lastSeq > 0 ? r.lastSeq : null;
    r.historyBusy = false;
    this.send(f);
  }

  onJoined(f) {
    const s = this.state;
    const r = s.rooms.get(f.room);
    if (!r) return;
    const first = !r.everJoined;
    r.joined = true;
    r.everJoined = true;
    if (typeof f.name === 'string' && f.name) s.name = f.name;
    r.setMembers(Array.isArray(f.members) ? f.members : [], f.member_count);
    this.view.members(r);
    if (first) {
      this.notice(r, roomKind(r.name) === 'public' ? 'You joined #' + r.name + ' as ' + s.name + '.' : (roomKind(r.name) === 'direct' ? 'Direct chat with ' : 'You joined ') + s.title(r.name) + '.');
    }
    this.joinedHistory(r, f);
    // Sends typed while disconnected, and sends that were never
    // acknowledged, go out again with their original cid.
    this.outbox.resend(r);
    this.view.composer();
  }

  // joinedHistory reads the history fields of a joined frame: what the
  // replay that follows covers, and what could not be recovered.
  joinedHistory(r, f) {
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
      for (const e of r.forgetOrder(true)) this.view.updated(r, e);
      this.saver.schedule(r);
      this.notice(r, 'The older messages of #' + r.name + ' are no longer available.');
    } else if (since !== null && f.truncated) {
      const first = f.first_seq || 0;
      const replayFrom = f.replay_from || (f.last_seq + 1);
      const lostTo = Math.min(first > 0 ? first - 1 : f.last_seq, replayFrom - 1);
      const lost = Math.max(0, lostTo - since);
      if (lost > 0) this.notice(r, lost + (lost === 1 ? ' message you missed is' : ' messages you missed are') + ' no longer available.');
      const low = Math.max(since + 1, first);
      if (low < replayFrom) {
        r.hole = { low: low, before: replayFrom };
        this.notice(r, 'Loading ' + (replayFrom - low) + ' more messages you missed…');
      }
    }
    if (since !== null && !f.reset && f.last_seq > since) {
      r.recovering = { upTo: f.last_seq, count: 0 };
    }
    this.requestHistory(r);
  }

  // requestHistory asks for the next page of the missed-messages hole, or,
  // when the user scrolled to the top (scrolled), for older messages.
  requestHistory(r, scrolled) {
    if (r.historyBusy || !r.joined) return;
    let before = 0;
    if (r.hole) {
      before = r.hole.before;
    } else if (scrolled && r.moreHistory) {
      before = r.oldestSeq();
      if (before <= 1) { r.moreHistory = false; return; }
    } else {
      return;
    }
    if (this.send({ type: 'history', room: r.name, before: before, limit: HISTORY_PAGE })) r.historyBusy = true;
  }

  onHistory(f) {
    const r = this.state.rooms.get(f.room);
    if (!r) return;
    r.historyBusy = false;
    const msgs = Array.isArray(f.messages) ? f.messages : [];
    const wasHole = r.hole !== null;
    // Older messages come in above what the user looks at: the view keeps it in place.
    if (!wasHole) this.view.olderStart(r);
    let oldest = 0;
    let remembered = false;
    for (const m of msgs) {
      if (!m || typeof m.id !== 'string' || typeof m.seq !== 'number') continue;
      if (!oldest || m.seq < oldest) oldest = m.seq;
      if (r.remember(m)) remembered = true;
      const e = msgEntry(m);
      const at = r.addMessage(e);
      if (at >= 0) this.view.inserted(r, at, e, 'history');
    }
    if (remembered) this.saver.schedule(r);
    if (wasHole) {
      if (!oldest || oldest <= r.hole.low || !f.more) r.hole = null;
      else r.hole.before = oldest;
    } else if (!f.more || msgs.length === 0) {
      r.moreHistory = false;
    }
    if (!wasHole) this.view.olderEnd(r);
    if (r.hole) this.requestHistory(r);
  }

  onPresence(f) {
    const s = this.state;
    const r = s.rooms.get(f.room);
    if (!r) return;
    const joined = (Array.isArray(f.joined) ? f.joined : []).filter((n) => n !== s.name);
    const left = (Array.isArray(f.left) ? f.left : []).filter((n) => n !== s.name);
    if (joined.length) this.notice(r, joined.join(', ') + ' joined.');
    if (left.length) this.notice(r, left.join(', ') + ' left.');
    for (const n of left) r.typers.delete(n);
    // Big rooms: only the changes; after a burst of joins (names_omitted)
    // only the count, and the names we have stay; after a burst with
    // leaves, the first names of the list, which replace ours.
    r.applyPresence(f);
    this.view.members(r);
    this.view.typing();
  }

  onTyping(f) {
    const r = this.state.rooms.get(f.room);
    if (!r || typeof f.name !== 'string' || f.name === this.state.name) return;
    r.typers.set(f.name, this.clock.now() + TYPING_SHOW_MS);
    this.view.typing();
    this.clock.setTimeout(() => this.view.typing(), TYPING_SHOW_MS + 50);
  }

  onMessage(f) {
    const s = this.state;
    const r = s.rooms.get(f.room);
    if (!r || typeof f.id !== 'string') return;
    let away = 0; // a re-join's replay ends with this message: say how many came
    if (typeof f.seq === 'number' && f.seq > 0) {
      // A seq already shown under the same id is a duplicate: the seen
      // check below drops it (after filling in what an ack lacked).
      if (r.noteSeq(f.seq, f.id, true)) this.saver.schedule(r);
      const rec = r.recovering;
      if (rec) {
        if (f.seq <= rec.upTo && !r.seen.has(f.id)) rec.count += 1;
        if (f.seq >= rec.upTo) {
          r.recovering = null;
          away = rec.count;
        }
      }
    }
    r.typers.delete(f.from);
    this.view.typing();
    if (typeof f.from === 'string' && f.from && !f.system) {
      const was = r.guests.has(f.from);
      if (f.guest === true) r.guests.add(f.from); else if (f.user) r.guests.delete(f.from);
      if (was !== r.guests.has(f.from)) this.view.members(r); // a guest is offered no direct chat
    }
    if (r.remember(f)) this.saver.schedule(r);
    this.placeMessage(r, f);
    if (away > 0) this.notice(r, away + (away === 1 ? ' message' : ' messages') + ' came in while you were away.');
  }

  // placeMessage shows a message frame: fills in an entry shown already, or
  // confirms the own send it answers, or adds it.
  placeMessage(r, f) {
    const s = this.state;
    if (r.seen.has(f.id)) {
      // Already shown (e.g. after the ack): fill in what the ack lacked.
      const e = r.byId.get(f.id);
      if (e) this.fill(r, e, f);
      return;
    }
    const p = f.cid ? r.pending.get(f.cid) : undefined;
    if (p && f.from === s.name) {
      this.outbox.cancel(p);
      r.pending.delete(f.cid);
      this.saver.schedule(r);
      r.setID(p, f.id);
      p.status = '';
      this.fill(r, p, f);
      return;
    }
    const e = msgEntry(f);
    const at = r.addMessage(e);
    this.live(r, at, e);
  }

  // fill copies a frame's seq, server and time into a shown entry.
  fill(r, e, f) {
    if (typeof f.seq === 'number' && f.seq > 0) r.setSeq(e, f.seq);
    if (typeof f.server === 'string' && f.server) e.server = f.server;
    if (typeof f.ts === 'number') e.ts = f.ts;
    if (Array.isArray(f.files)) e.files = fileList(f.files);
    this.view.updated(r, e);
  }

  onAck(f) {
    const s = this.state;
    const r = s.rooms.get(f.room) || s.roomOfCID(f.cid);
    if (!r) return;
    const p = r.pending.get(f.cid);
    if (!p) return;
    this.outbox.cancel(p);
    r.pending.delete(f.cid);
    this.saver.schedule(r);
    const seq = typeof f.seq === 'number' && f.seq > 0 ? f.seq : 0;
    if (seq) r.noteSeq(seq, f.id, false);
    if (r.seen.has(f.id)) { // the message itself was already shown separately
      if (r.remove(p) >= 0) this.view.removed(r, p);
      return;
    }
    if (typeof f.id === 'string') r.setID(p, f.id);
    if (typeof f.ts === 'number') p.ts = f.ts;
    if (seq) r.setSeq(p, seq);
    p.status = '';
    this.view.updated(r, p);
  }

  onError(f) {
    const s = this.state;
    const msg = plainError(f);
    if (f.message) this.log('livechat: server error', f.code, f.message);
    if (f.cid) {
      const r = s.rooms.get(f.room) || s.roomOfCID(f.cid);
      const p = r && r.pending.get(f.cid);
      if (p) {
        this.outbox.cancel(p);
        p.status = 'failed';
        p.why = sendErrors[f.code] || 'something went wrong';
        this.view.updated(r, p);
        return;
      }
    }
    if (f.room && s.rooms.has(f.room)) {
      const r = s.rooms.get(f.room);
      const field = joinRefusals[f.code];
      if (!r.joined && field) {
        // The join was refused.
        const where = f.code === 'not_found' ? '' : s.title(f.room) + ': ';
        this.dropRoom(f.room);
        if (f.code === 'not_found') {
          s.sidebar.remove(f.room);
          this.view.sidebar();
        }
        if (s.rooms.size === 0) {
          this.backToJoin({ [field]: msg });
        } else {
          this.view.toast(where + msg, 'error');
        }
        return;
      }
      if (!r.joined && f.code === 'unavailable') {
        // The server could not subscribe us (its broker is down): try again shortly.
        this.clock.setTimeout(() => {
          if (s.conn === 'connected' && s.rooms.get(r.name) === r && !r.joined) this.joinFrame(r);
        }, JOIN_RETRY_MS);
      }
      if (f.code === 'not_joined' && s.conn === 'connected') {
        this.joinFrame(r); // the server forgot us (e.g. it restarted the room): join again
      }
    }
    this.view.toast((f.room && f.code !== 'not_found' ? s.title(f.room) + ': ' : '') + msg, 'error');
  }

  // onLeft: the server took the page out of a room. Reason "removed": the
  // user was removed from the private room (or the invitation withdrawn);
  // the room leaves the page and the sidebar.
  onLeft(f) {
    const s = this.state;
    if (f.reason !== 'removed' || typeof f.room !== 'string') return;
    const title = s.title(f.room);
    const listed = s.sidebar.remove(f.room);
    if (listed) this.view.sidebar();
    if (!s.rooms.has(f.room)) return;
    const msg = 'You were removed from ' + title + '.';
    this.dropRoom(f.room);
    if (s.rooms.size === 0) this.backToJoin({ form: msg });
    else this.view.toast(msg, 'error');
  }

  // connectionLost notes why a connection ended; every room waits for its
  // re-join.
  connectionLost(ev) {
    const s = this.state;
    s.closes.push(ev.tag || String(ev.code));
    if (s.closes.length > 10) s.closes.shift();
    const why = identityClose(ev.code);
    if (why) {
      this.endSession(why);
      return;
    }
    if (!ev.welcomed && !ev.tag && s.signedIn()) this.checkSession();
    for (const r of s.rooms.values()) {
      r.joined = false;
      r.typers.clear();
    }
    this.view.typing();
  }

  // ---- entries -------------------------------------------------------

  // live shows an entry that just came (not from history): the oldest are
  // dropped beyond MAX_MESSAGES, and a message in a room not shown counts
  // as unread.
  live(r, at, e) {
    if (at < 0) return;
    this.view.inserted(r, at, e, 'live');
    const gone = r.trim(MAX_MESSAGES);
    if (gone.length) this.view.trimmed(r, gone);
    if (e.kind === 'msg' && r.name !== this.state.active) {
      r.unread += 1;
      this.view.tabs();
    }
  }

  notice(r, text) {
    const e = { kind: 'notice', text: text, key: 0 };
    this.live(r, r.place(e), e);
  }

  // ---- the user's actions --------------------------------------------

  // sendText sends text to the room shown (or keeps it until the room is
  // joined), with files (the finished uploads' {id, type, size, name,
  // width, height}; the text may then be empty); false when there is
  // nothing to send or the text is too long.
  sendText(text, files) {
    const s = this.state;
    const r = s.rooms.get(s.active);
    const attached = fileList(files);
    if (!r || (text.trim() === '' && attached.length === 0)) return false;
    if (byteLen(text) > s.maxText()) return false;
    const e = msgEntry({ from: s.name, text: text, files: attached, ts: this.clock.now() });
    e.cid = this.newCID();
    e.status = 'queued';
    r.pending.set(e.cid, e);
    this.saver.schedule(r);
    this.live(r, r.place(e), e);
    this.lastTypingSent = 0;
    if (r.joined) this.outbox.transmit(r, e);
    return true;
  }

  // retry sends a failed message again, with its cid.
  retry(cid) {
    const r = this.state.roomOfCID(cid);
    if (!r) return;
    const e = r.pending.get(cid);
    e.status = 'queued';
    e.why = '';
    this.view.updated(r, e);
    if (r.joined) this.outbox.transmit(r, e);
  }

  // typing tells the room shown that the user types, at most every
  // TYPING_SEND_MS.
  typing() {
    const s = this.state;
    const r = s.rooms.get(s.active);
    if (!r || !r.joined) return;
    const now = this.clock.now();
    if (now - this.lastTypingSent >= TYPING_SEND_MS) {
      this.lastTypingSent = now;
      this.send({ type: 'typing', room: r.name });
    }
  }

  // addRoom enters a room (joined at once when connected, else when the
  // connection comes); false when the page is in it already.
  addRoom(name) {
    const s = this.state;
    if (s.rooms.has(name)) return false;
    const r = new Room(name);
    s.rooms.set(name, r);
    if (s.conn === 'connected') this.joinFrame(r);
    else if (this.conn.idle()) this.conn.connect();
    return true;
  }

  // setActive makes a room the one shown; it is saved for a reload.
  setActive(name) {
    const s = this.state;
    const r = s.rooms.get(name);
    if (!r) return null;
    s.active = name;
    r.unread = 0;
    this.saver.store(LS_ROOM, name);
    this.saver.saveRoomList(s);
    return r;
  }

  // dropRoom forgets a room (left, or the join was refused).
  dropRoom(name) {
    const s = this.state;
    const r = s.rooms.get(name);
    if (r) r.dropped = true;
    s.rooms.delete(name);
    this.saver.forget(LS_SAVED + name);
    this.saver.saveRoomList(s);
    let next = '';
    if (s.active === name) {
      s.active = '';
      const first = s.rooms.keys().next();
      if (!first.done) next = first.value;
    }
    this.view.roomDropped(name, next);
  }

  // leaveRoom leaves a room; after the last one the page goes offline and
  // back to the join form.
  leaveRoom(name) {
    this.send({ type: 'leave', room: name });
    this.dropRoom(name);
    if (this.state.rooms.size === 0) {
      this.conn.close();
      this.backToJoin({});
    }
  }

  // endSession forgets the signed-in (or guest) page: every room is left
  // and its saved messages forgotten, the connection closed, and the view
  // goes back to signing in, saying why (text).
  endSession(text) {
    const s = this.state;
    this.clearRooms();
    s.user = null;
    s.name = '';
    s.sidebar = new Sidebar();
    this.view.signedOut(text || '');
    this.view.sidebar();
  }

  // clearRooms leaves every room at once (forgetting what was saved of
  // them) and closes the connection.
  clearRooms() {
    const s = this.state;
    for (const [name, r] of s.rooms) {
      r.dropped = true;
      this.saver.forget(LS_SAVED + name);
    }
    s.rooms.clear();
    s.active = '';
    this.saver.saveRoomList(s);
    this.saver.flush();
    this.conn.close();
    this.view.tabs();
  }

  backToJoin(errors) {
    if (this.state.rooms.size === 0 && this.conn.ws) this.conn.close();
    this.view.backToJoin(errors);
  }

  // restore brings back the rooms saved by the last page of the same user
  // (a signed-in account, or a guest with its saved name); the room to
  // show, or '' when there are none (the join form stays).
  restore() {
    const s = this.state;
    const saved = this.saver.readRoomList(s.owner());
    const name = s.signedIn() ? s.name : this.saver.load(LS_NAME) || '';
    if (!saved || saved.rooms.length === 0 || validName(name)) return '';
    s.name = name;
    for (const room of saved.rooms) {
      const r = new Room(room);
      s.rooms.set(room, r);
      this.restoreRoom(r);
    }
    return s.rooms.has(saved.active) ? saved.active : saved.rooms[0];
  }

  // restoreRoom shows what was saved for the room and sets its last seq.
  restoreRoom(r) {
    const d = this.saver.readRoom(r.name);
    if (!d) return;
    let last = d.seq;
    for (const saved of d.messages) {
      const m = { id: saved.id, from: saved.from, text: saved.text, ts: saved.ts };
      if (saved.seq) m.seq = saved.seq;
      if (saved.server) m.server = saved.server;
      if (saved.system === true) m.system = true;
      if (saved.guest === true) m.guest = true;
      if (saved.files) m.files = saved.files;
      const e = msgEntry(m);
      const at = r.addMessage(e);
      if (at < 0) continue;
      if (m.seq) {
        r.seqIDs.set(m.seq, m.id);
        if (m.seq > last) last = m.seq;
      }
      r.log.push(m);
      this.view.inserted(r, at, e, 'restore');
    }
    if (r.log.length > KEEP_MESSAGES) r.log.splice(0, r.log.length - KEEP_MESSAGES);
    r.lastSeq = last;
    r.everJoined = true; // no "You joined" again
    for (const u of d.unsent) {
      if (r.pending.has(u.cid)) continue;
      const e = msgEntry({ from: this.state.name, text: u.text, files: u.files, ts: typeof u.ts === 'number' ? u.ts : this.clock.now() });
      e.cid = u.cid;
      e.status = 'queued';
      r.pending.set(u.cid, e);
      this.view.inserted(r, r.place(e), e, 'restore');
    }
  }
}

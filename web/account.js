// account.js: who the user is and which rooms the user has, over the HTTP
// API (api.js), without a DOM. Account signs in, up and out, brings back a
// signed-in (or guest) page on load, and keeps state.sidebar (public rooms,
// private rooms, direct chats, invitations); it reports to the same view
// as Chat (frames.js, viewMethods). Its actions resolve to '' when they
// worked, else to what went wrong in the page's words.

import { systemClock } from './clock.js';
import { errorText } from './api.js';
import { hashRoom, validName } from './state.js';

export const DEFAULT_ROOM = 'general';   // a signed-in page with no room opens this one
export const REFRESH_MS = 30000;         // the rooms list is asked again this often
export const CHECK_SESSION_MS = 10000;   // the session is checked at most this often after failed connects
export const MAX_TITLE = 64;             // a private room's title, in characters

// Account drives signing in and the rooms list. Not safe for use from
// several threads (a page has one).
export class Account {
  // api: Api; state: ChatState; chat: Chat; view: see viewMethods; clock;
  // hash(): the page's URL hash (for #room=ID).
  constructor({ api, state, chat, view, clock, hash }) {
    this.api = api;
    this.state = state;
    this.chat = chat;
    this.view = view;
    this.clock = clock || systemClock;
    this.hash = hash || (() => '');
    this.lastCheck = -Infinity;
  }

  // start asks the server who the page is. Signed in: the chat opens (the
  // rooms of the last page, the room of the URL hash, or DEFAULT_ROOM). A
  // guest whose last page was in rooms gets them back. Otherwise the page
  // shows signing in. Resolves to 'chat' or 'signin'. A server without
  // the account API (404) is an older one: guests only.
  async start() {
    const s = this.state;
    let me;
    try {
      me = await this.api.me();
    } catch (e) {
      if (e.code === 'not_found') {
        s.accounts = false;
        me = { user: null, guests: true };
      } else if (e.code === 'signed_out') {
        me = { user: null, guests: true }; // the session ended: signed out
      } else {
        this.view.signedOut(errorText(e));
        return 'signin';
      }
    }
    s.guests = me.guests !== false;
    // The room of the URL, kept for the sign-in: the sign-in screen
    // clears the hash, and a link opened while signed out must still lead
    // there once signed in.
    this.wanted = hashRoom(this.hash());
    const u = me.user;
    if (u && typeof u === 'object' && typeof u.id === 'string' && typeof u.name === 'string') {
      this.signedInAs(u);
      return 'chat';
    }
    if (s.guests) {
      let active = this.chat.restore();
      const want = hashRoom(this.hash());
      if (active && want) {
        this.chat.addRoom(want);
        active = want;
      }
      if (active) {
        this.view.enterChat(active);
        this.refresh();
        return 'chat';
      }
    }
    this.view.signedOut('');
    return 'signin';
  }

  // signedInAs opens the chat for the account u ({id, name}).
  signedInAs(u) {
    const s = this.state;
    // A guest page signing in: its rooms and connection (named at the
    // handshake) are the guest's.
    if (s.rooms.size > 0) this.chat.clearRooms();
    else if (this.chat.conn.ws) this.chat.conn.close();
    s.user = { id: u.id, name: u.name, guest: false };
    s.name = u.name;
    let active = this.chat.restore();
    const want = hashRoom(this.hash()) || this.wanted;
    this.wanted = '';
    if (want) {
      this.chat.addRoom(want);
      active = want;
    }
    if (!active) {
      this.chat.addRoom(DEFAULT_ROOM);
      active = DEFAULT_ROOM;
    }
    this.view.enterChat(active);
    this.refresh();
  }

  // signIn signs in (create: signs up) with a name and a password.
  async signIn(name, password, create) {
    const n = (name || '').trim();
    if (n === '') return 'Enter your name.';
    if (create) {
      const bad = validName(n);
      if (bad) return bad;
    }
    if (!password) return 'Enter your password.';
    let d;
    try {
      d = create ? await this.api.signUp(n, password) : await this.api.signIn(n, password);
    } catch (e) {
      return errorText(e);
    }
    const u = d && d.user;
    if (!u || typeof u.id !== 'string' || typeof u.name !== 'string') return errorText(null);
    this.signedInAs(u);
    return '';
  }

  // signOut ends the session on the server, then the page's.
  async signOut() {
    const had = this.state.rooms.size > 0;
    this.chat.conn.close(); // first: the server's "signed out" close is not for this tab to explain
    try {
      await this.api.signOut();
    } catch (e) {
      if (e.code !== 'signed_out') {
        if (had) this.chat.conn.connect();
        return errorText(e);
      }
    }
    this.chat.endSession('You signed out.');
    return '';
  }

  // fail turns a failed request into words; a session that ended on the
  // server sends the page back to signing in.
  fail(e, words) {
    if (e && e.code === 'signed_out' && this.state.signedIn()) {
      this.chat.endSession('Your session expired. Sign in again.');
    }
    return errorText(e, words);
  }

  // refresh asks for the public rooms and (signed in) the conversations
  // and shows them. A failure is kept in state.sidebar.error.
  async refresh() {
    const s = this.state;
    if (!s.accounts) return; // an older server has no rooms list
    const user = s.user;
    const sidebar = s.sidebar;
    const jobs = [this.api.publicRooms().then((d) => sidebar.setPublic(d.rooms))];
    if (s.signedIn()) jobs.push(this.api.conversations().then((d) => sidebar.setConversations(d.conversations)));
    const results = await Promise.allSettled(jobs);
    if (s.user !== user || s.sidebar !== sidebar) return; // signed out meanwhile
    sidebar.error = '';
    for (const r of results) {
      if (r.status === 'rejected') {
        sidebar.error = this.fail(r.reason, { not_found: 'The rooms list is not available.' });
        if (s.sidebar !== sidebar) return;
      }
    }
    this.view.sidebar();
  }

  // checkSession: a signed-in page could not connect. When the server no
  // longer knows the session, the page goes back to signing in.
  async checkSession() {
    const s = this.state;
    const now = this.clock.now();
    if (!s.signedIn() || now - this.lastCheck < CHECK_SESSION_MS) return;
    this.lastCheck = now;
    const user = s.user;
    let me;
    try {
      me = await this.api.me();
    } catch (e) {
      if (e.code !== 'signed_out' && e.code !== 'account_closed') return; // the server is away: keep trying
      me = { user: null };
    }
    if (s.user !== user) return;
    if (!me.user || me.user.id !== user.id) this.chat.endSession('Your session expired. Sign in again.');
  }

  // createPrivate makes a private room with a title and opens it.
  async createPrivate(title) {
    const t = (title || '').trim();
    if (t === '') return 'Give the room a name.';
    if (Array.from(t).length > MAX_TITLE) return 'A room name has at most ' + MAX_TITLE + ' characters.';
    if (!this.state.signedIn()) return 'Sign in to make a private room.';
    let d;
    try {
      d = await this.api.createRoom(t, 'private');
    } catch (e) {
      return this.fail(e);
    }
    const e = this.state.sidebar.upsert({ room: d.room, role: 'owner' });
    if (!e) return errorText(null);
    this.view.sidebar();
    this.view.openRoom(e.id);
    return '';
  }

  // invite invites the account named to a private room the user owns.
  async invite(room, name) {
    const n = (name || '').trim();
    if (n === '') return 'Enter the name of who to invite.';
    try {
      await this.api.invite(room, n);
    } catch (e) {
      return this.fail(e, { exists: n + ' is already in this room or invited.' });
    }
    return '';
  }

  // accept joins a room the user is invited to and opens it.
  async accept(room) {
    try {
      await this.api.accept(room);
    } catch (e) {
      if (e.code === 'not_found') {
        this.state.sidebar.remove(room);
        this.view.sidebar();
      }
      return this.fail(e);
    }
    this.state.sidebar.setRole(room, 'member');
    this.view.sidebar();
    this.view.openRoom(room);
    return '';
  }

  // decline turns an invitation down (the same request leaves a room).
  async decline(room) {
    const s = this.state;
    if (!s.signedIn()) return 'Sign in first.';
    try {
      await this.api.removeMember(room, s.user.id);
    } catch (e) {
      if (e.code !== 'not_found') return this.fail(e);
    }
    s.sidebar.remove(room);
    if (s.rooms.has(room)) this.chat.dropRoom(room);
    this.view.sidebar();
    return '';
  }

  // canDirect says whether the page offers a direct chat with name (a
  // member of room): signed in, not the user, not seen as a guest.
  canDirect(name, room) {
    const s = this.state;
    if (!s.signedIn() || !s.accounts || typeof name !== 'string' || name === '' || name === s.name) return false;
    const r = room ? s.rooms.get(room) : null;
    return !(r && r.guests.has(name));
  }

  // direct opens the direct chat with the account named (made on first use).
  async direct(name) {
    const s = this.state;
    if (!s.signedIn()) return 'Sign in to start a direct chat.';
    if (name === s.name) return 'You cannot start a direct chat with yourself.';
    let d;
    try {
      d = await this.api.direct(name);
    } catch (e) {
      return this.fail(e, { bad_request: 'You cannot start a direct chat with yourself.' });
    }
    const e = s.sidebar.upsert({ room: d.room, role: 'member', peer: d.peer });
    if (!e) return errorText(null);
    this.view.sidebar();
    this.view.openRoom(e.id);
    return '';
  }

  // openHash opens the room the URL hash names (#room=ID), if any.
  openHash() {
    const id = hashRoom(this.hash());
    if (id && id !== this.state.active) this.view.openRoom(id);
  }
}

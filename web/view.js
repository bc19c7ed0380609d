// view.js: the page. It draws the state (state.js) as frames.js reports
// its changes, and turns the user's input into Chat actions. It is the only
// module that touches the DOM. User text (and file names) is only ever put
// into the page with textContent.

import { LS_NAME, LS_ROOM, validName, validRoom, roomKind, roomHash } from './state.js';
import { byteLen } from './frames.js';
import { REFRESH_MS } from './account.js';
import { MAX_FILES, fileKind, fileURL, thumbURL, fitBox, formatSize } from './files.js';

const SCROLL_LOAD_PX = 60;           // scrolled this close to the top: load older messages
const GROUP_GAP_MS = 5 * 60 * 1000;  // a sender's messages this close in time share one header
const NEAR_BOTTOM_PX = 80;           // this close to the bottom: new messages scroll into view
const TOAST_MS = 6000;
const MAX_TOASTS = 4;
const ERROR_LINE_MS = 20000;         // the error line under the header clears itself after this

const timeFmt = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit' });
const fullFmt = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'medium' });

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined && text !== null) e.textContent = String(text);
  return e;
}

function clear(node) {
  while (node.firstChild) node.removeChild(node.firstChild);
}

// createView binds the page's elements. Its methods are the view Chat
// reports to (frames.js, viewMethods), plus setConn for the connection's
// status and start, which wires the page's events once chat and conn exist.
export function createView(state, saver) {
  let chat = null;
  let conn = null;
  let account = null;
  let uploads = null;
  const nodes = new WeakMap(); // entry -> its <li>
  const older = new Map();     // room -> {height, top} while a page of older messages goes in

  const ui = {};
  for (const id of ['auth-screen', 'loading', 'auth-form', 'auth-name', 'auth-password', 'signin', 'signup',
    'auth-error', 'join-form', 'guest-title', 'name', 'room', 'join', 'name-error', 'room-error',
    'join-error', 'chat-screen', 'rooms-toggle', 'room-name', 'state', 'me', 'signout', 'members-toggle',
    'member-count', 'member-count-2', 'leave', 'tabs', 'error', 'error-text', 'error-close', 'rooms-panel',
    'invitations-section', 'invitations', 'conversations-section', 'conversations', 'create-room-form',
    'create-room', 'public-rooms', 'add-room-form', 'add-room', 'rooms-error', 'empty', 'sidebar', 'members',
    'invite-form', 'invite-name', 'messages', 'jump', 'typing', 'send-form', 'text', 'send', 'composer-note',
    'toasts', 'drop-zone', 'uploads', 'attach-input', 'attach', 'viewer', 'viewer-name', 'viewer-open',
    'viewer-close', 'viewer-img']) {
    ui[id.replace(/-(.)/g, (_, c) => c.toUpperCase())] = document.getElementById(id);
  }

  // ---- messages ------------------------------------------------------

  // listOf is the room's own <ol>; the one shown is #messages.
  function listOf(r) {
    if (!r.list) r.list = el('ol', 'messages');
    return r.list;
  }

  // render builds an entry's element. A message is li.msg[data-id]
  // [data-from] with a .meta header (.from and .time, hidden on a group's
  // later messages), .text, .files (when it carries some) and .status; the
  // full time and the server that took it are in the bubble's tooltip. A
  // notice is li.notice.
  function render(e) {
    if (e.kind !== 'msg') return el('li', 'notice', e.text);
    const li = el('li', 'msg');
    li.dataset.from = e.from;
    if (e.cid) li.dataset.cid = e.cid;
    if (!e.system && e.from === state.name) li.classList.add('own');
    if (e.system) li.classList.add('system');
    const meta = el('div', 'meta');
    const from = el('span', 'from', e.system ? (e.from ? 'Announcement · ' + e.from : 'Announcement') : e.from);
    meta.append(from);
    if (e.guest && !e.system) {
      li.dataset.guest = 'true';
      meta.append(el('span', 'guest-mark', '(guest)'));
    }
    meta.append(el('time', 'time'));
    li.append(meta, el('div', 'text', e.text), el('div', 'status'));
    fill(li, e);
    return li;
  }

  // setFiles shows the files a message carries (again when they changed):
  // a .files block before its .status.
  function setFiles(li, e) {
    const ids = (e.files || []).map((f) => f.id).join(' ');
    if ((li.dataset.files || '') === ids) return;
    const old = li.querySelector(':scope > .files');
    if (old) old.remove();
    if (ids) {
      li.dataset.files = ids;
      li.insertBefore(renderFiles(e.files), li.querySelector(':scope > .status'));
    } else {
      delete li.dataset.files;
    }
  }

  // renderFiles builds div.files: pictures as a.thumb > img.thumb (its box
  // reserved by width/height before it loads; a click opens the viewer),
  // other files as div.file-card[data-kind] with an icon, the name, the
  // size and a.file-download.
  function renderFiles(files) {
    const box = el('div', 'files');
    for (const f of files) {
      const kind = fileKind(f.type);
      if (kind === 'image') {
        const a = el('a', 'thumb');
        a.href = fileURL(f.id);
        a.dataset.file = f.id;
        a.title = f.name + ' (' + formatSize(f.size) + ')';
        const img = el('img', 'thumb');
        img.src = thumbURL(f.id);
        img.alt = f.name;
        img.loading = 'lazy';
        img.decoding = 'async';
        const fit = fitBox(f.width, f.height);
        if (fit) {
          img.width = fit.width;
          img.height = fit.height;
        }
        a.appendChild(img);
        a.addEventListener('click', (ev) => {
          if (ev.button !== 0 || ev.ctrlKey || ev.metaKey || ev.shiftKey || !ui.viewer || !ui.viewer.showModal) return;
          ev.preventDefault();
          openViewer(f);
        });
        box.appendChild(a);
        continue;
      }
      const card = el('div', 'file-card');
      card.dataset.kind = kind;
      card.dataset.file = f.id;
      card.appendChild(el('span', 'file-icon', kind === 'pdf' ? 'PDF' : (kind === 'text' ? 'TXT' : 'FILE')));
      const info = el('div', 'file-info');
      const name = el('span', 'file-name', f.name);
      name.title = f.name;
      info.append(name, el('span', 'file-size', formatSize(f.size)));
      const dl = el('a', 'file-download', 'Download');
      dl.href = fileURL(f.id);
      dl.download = f.name;
      dl.setAttribute('aria-label', 'Download ' + f.name);
      card.append(info, dl);
      box.appendChild(card);
    }
    return box;
  }

  // openViewer shows a picture at full size in the #viewer dialog.
  function openViewer(f) {
    ui.viewerImg.alt = f.name;
    ui.viewerImg.src = fileURL(f.id);
    ui.viewerName.textContent = f.name;
    ui.viewerName.title = f.name;
    ui.viewerOpen.href = fileURL(f.id);
    if (!ui.viewer.open) ui.viewer.showModal();
    ui.viewerClose.focus();
  }

  // fill writes what may change after a message is shown: its id, seq,
  // server, time and status.
  function fill(li, e) {
    if (e.id) li.dataset.id = e.id;
    if (e.seq > 0) li.dataset.seq = String(e.seq);
    else delete li.dataset.seq;
    if (e.server) li.dataset.server = e.server;
    if (typeof e.ts === 'number') setTime(li, e.ts);
    else setTitle(li);
    setFiles(li, e);
    setStatus(li, e);
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

  // setStatus shows an own message's status: waiting, sending, or not sent
  // with a Retry button.
  function setStatus(li, e) {
    li.classList.remove('pending', 'failed');
    const s = li.querySelector('.status');
    if (!s) return;
    clear(s);
    if (e.status === 'sent' || e.status === 'queued') {
      li.classList.add('pending');
      s.textContent = e.status === 'queued' ? 'Waiting for the connection…' : 'Sending…';
    } else if (e.status === 'failed') {
      li.classList.add('failed');
      s.appendChild(el('span', 'why', 'Not sent: ' + (e.why || 'something went wrong')));
      const b = el('button', 'retry', 'Retry');
      b.type = 'button';
      b.addEventListener('click', () => chat.retry(e.cid));
      s.appendChild(b);
    }
  }

  // removeNode takes an element out of its list; the one below it may now
  // start a group.
  function removeNode(li) {
    const next = li.nextElementSibling;
    li.remove();
    regroup(next);
  }

  function nearBottom() {
    const m = ui.messages;
    return m.scrollHeight - m.scrollTop - m.clientHeight < NEAR_BOTTOM_PX;
  }

  function scrollToBottom() {
    ui.messages.scrollTop = ui.messages.scrollHeight;
    ui.jump.hidden = true;
  }

  // ---- the rest of the page ------------------------------------------

  let errorTimer = 0;

  // showError puts a failure on the error line under the header (#error),
  // where it stays a while; '' clears it.
  function showError(text) {
    clearTimeout(errorTimer);
    ui.errorText.textContent = text;
    ui.error.hidden = !text;
    if (text) errorTimer = setTimeout(() => { ui.error.hidden = true; ui.errorText.textContent = ''; }, ERROR_LINE_MS);
  }

  function toast(text, kind) {
    if (kind === 'error') showError(text);
    const t = el('div', 'toast' + (kind ? ' ' + kind : ''), text);
    ui.toasts.appendChild(t);
    while (ui.toasts.children.length > MAX_TOASTS) ui.toasts.removeChild(ui.toasts.firstChild);
    setTimeout(() => { if (t.parentNode) t.parentNode.removeChild(t); }, TOAST_MS);
  }

  function setConn(c, text) {
    ui.state.dataset.state = c;
    ui.state.textContent = text;
    ui.state.title = c === 'connected' ? 'Connected to server ' + state.serverID : 'Connection';
    document.body.dataset.conn = c;
    updateComposer();
  }

  function renderMembers() {
    const r = state.rooms.get(state.active);
    clear(ui.members);
    const members = r ? r.members : [];
    for (const n of members) {
      const li = el('li', n === state.name ? 'me' : '');
      li.dataset.name = n;
      if (r && r.guests.has(n)) li.dataset.guest = 'true';
      if (account && account.canDirect(n, r && r.name)) {
        // A name is a button: it opens the direct chat with them.
        const b = el('button', 'member-btn', n);
        b.type = 'button';
        b.title = 'Start a direct chat with ' + n;
        b.setAttribute('aria-label', 'Start a direct chat with ' + n);
        b.addEventListener('click', () => act(account.direct(n)));
        li.appendChild(b);
      } else {
        li.textContent = n;
        if (n === state.name) li.title = 'you';
        else if (r && r.guests.has(n)) li.title = 'guest';
      }
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
    const names = r ? r.typingNames(Date.now()) : [];
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
      li.dataset.room = r.name;
      b.appendChild(el('span', 'tab-name', state.title(r.name)));
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
    chat.setActive(name);
    const list = listOf(r);
    if (ui.messages !== list) {
      list.id = 'messages';
      list.setAttribute('aria-live', 'polite');
      list.setAttribute('aria-relevant', 'additions');
      if (ui.messages.parentNode) ui.messages.parentNode.replaceChild(list, ui.messages);
      if (prev && prev.list && prev.list !== list) prev.list.removeAttribute('id');
      ui.messages = list;
      ui.messages.addEventListener('scroll', onScroll);
    }
    if (r.scrollTop === null) scrollToBottom(); else ui.messages.scrollTop = r.scrollTop;
    ui.empty.hidden = true;
    ui.messages.hidden = false;
    renderTitle();
    setHash(name);
    renderTabs();
    renderMembers();
    renderTyping();
    renderSidebar();
    renderUploads();
  }

  // renderTitle names the room shown in the header and the window title.
  function renderTitle() {
    const name = state.active;
    const title = name ? state.title(name) : '';
    ui.roomName.textContent = title;
    document.title = (title ? title + ' · ' : '') + 'livechat';
  }

  // setHash makes the URL name the room shown (#room=ID), so a reload
  // comes back to it; without a new history entry.
  function setHash(name) {
    const hash = name ? roomHash(name) : '';
    if (location.hash === hash || (!hash && !location.hash)) return;
    try { history.replaceState(null, '', location.pathname + location.search + hash); } catch (_) { /* file: pages */ }
  }

  // showEmpty: no room is shown (a signed-in user left them all).
  function showEmpty(text) {
    state.active = '';
    const list = el('ol', 'messages');
    list.id = 'messages';
    if (ui.messages.parentNode) ui.messages.parentNode.replaceChild(list, ui.messages);
    ui.messages = list;
    list.hidden = true;
    ui.empty.hidden = false;
    renderTitle();
    setHash('');
    renderTabs();
    renderMembers();
    renderTyping();
    renderSidebar();
    updateComposer();
    if (text) showError(text);
  }

  // roomItem is one room of the sidebar: li[data-room] with a button
  // showing its title.
  function roomItem(id, title, extra) {
    const li = el('li', 'room-item');
    li.dataset.room = id;
    const b = el('button', 'open', title);
    b.type = 'button';
    if (id === state.active) {
      li.classList.add('active');
      b.setAttribute('aria-current', 'page');
    }
    b.addEventListener('click', () => openRoom(id));
    li.appendChild(b);
    if (extra) extra(li);
    return li;
  }

  // renderSidebar draws the rooms list (state.sidebar), who the user is,
  // and what may be done in the room shown.
  function renderSidebar() {
    const sb = state.sidebar;
    const signedIn = state.signedIn();
    clear(ui.publicRooms);
    const listed = new Set();
    for (const p of sb.publicRooms) {
      listed.add(p.id);
      ui.publicRooms.appendChild(roomItem(p.id, p.title));
    }
    // Public rooms the page is in that the directory does not list yet.
    for (const id of state.rooms.keys()) {
      if (roomKind(id) === 'public' && !listed.has(id)) ui.publicRooms.appendChild(roomItem(id, '#' + id));
    }
    clear(ui.conversations);
    for (const c of sb.conversations()) {
      ui.conversations.appendChild(roomItem(c.id, c.title, (li) => {
        li.dataset.kind = c.kind;
        li.dataset.role = c.role;
      }));
    }
    clear(ui.invitations);
    for (const c of sb.invitations()) {
      const li = el('li', 'room-item invitation');
      li.dataset.room = c.id;
      li.dataset.kind = c.kind;
      li.appendChild(el('span', 'invite-title', c.title));
      const yes = el('button', 'accept icon-btn', 'Accept');
      yes.type = 'button';
      yes.setAttribute('aria-label', 'Accept the invitation to ' + c.title);
      yes.addEventListener('click', () => act(account.accept(c.id)));
      const no = el('button', 'decline icon-btn', 'Decline');
      no.type = 'button';
      no.setAttribute('aria-label', 'Decline the invitation to ' + c.title);
      no.addEventListener('click', () => act(account.decline(c.id)));
      li.append(yes, no);
      ui.invitations.appendChild(li);
    }
    ui.invitationsSection.hidden = sb.invitations().length === 0;
    ui.conversationsSection.hidden = !signedIn;
    ui.roomsError.textContent = sb.error || '';
    // Who the user is.
    const u = state.user;
    const name = (u && u.name) || state.name;
    ui.me.textContent = name ? name + (u && u.guest ? ' (guest)' : '') : '';
    ui.me.title = name ? 'You are ' + name : '';
    ui.signout.hidden = !signedIn;
    ui.attach.hidden = !signedIn; // uploads need an account
    ui.inviteForm.hidden = !(signedIn && state.active && sb.canInvite(state.active));
    if (state.active) {
      renderTitle();
      renderTabs();
      renderMembers();
    }
  }

  // act runs an Account action and shows its failure.
  function act(p) {
    return p.then((err) => {
      if (err) toast(err, 'error');
      return err;
    });
  }

  // openRoom enters a room (when the page is not in it) and shows it.
  function openRoom(id) {
    document.body.classList.remove('rooms-open');
    ui.roomsToggle.setAttribute('aria-expanded', 'false');
    if (!state.rooms.has(id)) {
      const max = state.limits && state.limits.max_rooms;
      if (max && state.rooms.size >= max) {
        toast('You can be in at most ' + max + ' rooms.', 'error');
        return;
      }
      chat.addRoom(id);
    }
    ui.authScreen.hidden = true;
    ui.chatScreen.hidden = false;
    showRoom(id);
  }

  // enterChat shows the chat with the room given ('' none) and connects.
  function enterChat(active) {
    ui.authScreen.hidden = true;
    ui.authScreen.removeAttribute('aria-busy');
    ui.chatScreen.hidden = false;
    ui.authPassword.value = '';
    if (active && state.rooms.has(active)) showRoom(active); else showEmpty('');
    renderSidebar();
    if (state.rooms.size > 0) conn.connect();
    if (state.canUpload() && uploads) uploads.loadLimits();
    renderUploads();
    if (active) ui.text.focus();
  }

  // signedOut shows signing in, with text saying why.
  function signedOut(text) {
    if (uploads) for (const u of uploads.items.slice()) uploads.cancel(u.key);
    document.body.classList.remove('rooms-open', 'members-open');
    showEmpty('');
    showError('');
    ui.chatScreen.hidden = true;
    ui.authScreen.hidden = false;
    ui.authScreen.removeAttribute('aria-busy');
    ui.loading.hidden = true;
    ui.authForm.hidden = !state.accounts;
    ui.joinForm.hidden = !state.guests;
    ui.guestTitle.textContent = state.accounts ? 'Continue as a guest' : 'livechat';
    ui.join.textContent = state.accounts ? 'Continue as guest' : 'Join';
    ui.authError.textContent = state.accounts ? text : '';
    ui.joinError.textContent = state.accounts ? '' : text;
    ui.nameError.textContent = '';
    ui.roomError.textContent = '';
    ui.authPassword.value = '';
    document.title = 'livechat';
    if (state.accounts) ui.authName.focus(); else (ui.name.value ? ui.room : ui.name).focus();
  }

  async function onAuthSubmit(create) {
    ui.authError.textContent = '';
    ui.authPassword.autocomplete = create ? 'new-password' : 'current-password'; // password managers
    ui.signin.disabled = true;
    ui.signup.disabled = true;
    try {
      const err = await account.signIn(ui.authName.value, ui.authPassword.value, create);
      if (err) {
        ui.authError.textContent = err;
        ui.authPassword.focus();
      }
    } finally {
      ui.signin.disabled = false;
      ui.signup.disabled = false;
    }
  }

  function toggleRooms() {
    const open = !document.body.classList.contains('rooms-open');
    document.body.classList.toggle('rooms-open', open);
    ui.roomsToggle.setAttribute('aria-expanded', open ? 'true' : 'false');
  }

  function onScroll() {
    if (nearBottom()) ui.jump.hidden = true;
    if (ui.messages.scrollTop < SCROLL_LOAD_PX) {
      const r = state.rooms.get(state.active);
      if (r) chat.requestHistory(r, true);
    }
  }

  function updateComposer() {
    if (!ui.text) return;
    const r = state.rooms.get(state.active);
    ui.text.disabled = !r;
    ui.leave.disabled = !r;
    ui.attach.hidden = !state.canUpload();
    ui.attach.disabled = !r;
    const busy = !!r && !!uploads && uploads.busy(r.name);
    const ready = r && uploads ? uploads.ready(r.name).length : 0;
    let note = '';
    if (r && state.conn !== 'connected') note = 'Not connected: your messages will be sent when the connection is back.';
    else if (r && !r.joined) note = 'Joining…';
    if (busy) note = 'Uploading… the message can be sent when the files are up.';
    const len = byteLen(ui.text.value);
    const max = state.maxText();
    if (len > max) note = 'Too long: ' + len + ' of ' + max + ' allowed (some symbols count more than one).';
    else if (len > max * 0.8) note = len + ' of ' + max;
    ui.composerNote.textContent = note;
    ui.send.disabled = !r || busy || (ui.text.value.trim() === '' && ready === 0) || len > max;
  }

  // renderUploads draws the chips of the room shown's uploads (#uploads):
  // li.upload[data-key][data-state=uploading|done|error] with .upload-name,
  // .upload-size, progress.upload-progress (while uploading), .upload-error
  // and button.upload-cancel (cancel, or remove).
  function renderUploads() {
    if (!ui.uploads || !uploads) return;
    const list = state.active ? uploads.list(state.active) : [];
    // Chips are kept (and only moved when they must), so a focused cancel
    // button keeps the focus while the progress moves.
    const keep = new Map();
    for (const li of Array.from(ui.uploads.children)) keep.set(li.dataset.key, li);
    let at = ui.uploads.firstElementChild;
    for (const u of list) {
      let li = keep.get(String(u.key));
      keep.delete(String(u.key));
      if (li && li.dataset.state !== u.state) {
        const fresh = uploadChip(u);
        const focused = li.contains(document.activeElement);
        li.replaceWith(fresh);
        if (at === li) at = fresh;
        li = fresh;
        if (focused) li.querySelector('.upload-cancel').focus();
      } else if (!li) {
        li = uploadChip(u);
      }
      if (li !== at) ui.uploads.insertBefore(li, at);
      else at = at.nextElementSibling;
      const bar = li.querySelector('.upload-progress');
      if (bar) {
        bar.max = u.size || 1;
        bar.value = Math.min(u.loaded, u.size || 1);
        bar.textContent = Math.floor(100 * bar.value / bar.max) + '%';
        bar.setAttribute('aria-label', 'Uploading ' + u.name);
      }
    }
    for (const li of keep.values()) li.remove();
    ui.uploads.hidden = list.length === 0;
    updateComposer();
  }

  function uploadChip(u) {
    const li = el('li', 'upload');
    li.dataset.key = String(u.key);
    li.dataset.state = u.state;
    const top = el('div', 'upload-top');
    const name = el('span', 'upload-name', u.name);
    name.title = u.name;
    top.append(name, el('span', 'upload-size', formatSize(u.size)));
    const x = el('button', 'upload-cancel', '×');
    x.type = 'button';
    const label = (u.state === 'uploading' ? 'Cancel the upload of ' : 'Remove ') + u.name;
    x.setAttribute('aria-label', label);
    x.title = u.state === 'uploading' ? 'Cancel' : 'Remove';
    x.addEventListener('click', () => { uploads.cancel(u.key); ui.text.focus(); });
    top.appendChild(x);
    li.appendChild(top);
    if (u.state === 'uploading') li.appendChild(el('progress', 'upload-progress'));
    if (u.state === 'error') {
      const why = el('span', 'upload-error', u.error);
      why.setAttribute('role', 'alert');
      li.appendChild(why);
    }
    return li;
  }

  // attachFiles starts uploading files into the room shown.
  function attachFiles(files) {
    const r = state.rooms.get(state.active);
    if (!r || !uploads || !state.canUpload() || files.length === 0) return;
    uploads.add(r.name, files);
  }

  // dragFiles: a drag carries files (not text or a link).
  function dragFiles(ev) {
    const dt = ev.dataTransfer;
    return !!dt && Array.from(dt.types || []).includes('Files');
  }

  function autosize() {
    const t = ui.text;
    t.style.height = 'auto';
    t.style.height = Math.min(t.scrollHeight, 160) + 'px';
  }

  function sendText() {
    const r = state.rooms.get(state.active);
    if (r && uploads && uploads.busy(r.name)) {
      ui.composerNote.textContent = 'Wait for the upload to finish (or cancel it) before sending.';
      return;
    }
    const files = r && uploads ? uploads.ready(r.name).slice(0, MAX_FILES) : [];
    if (chat.sendText(ui.text.value, files)) {
      if (files.length) uploads.take(r.name);
      scrollToBottom();
      ui.text.value = '';
      autosize();
    }
    updateComposer();
  }

  function onInput() {
    autosize();
    updateComposer();
    if (ui.text.value.trim() !== '') chat.typing();
  }

  function addRoom(name) {
    openRoom(name);
  }

  // backToJoin: the page is in no room. A signed-in user stays in the chat
  // (with the rooms list); a guest goes back to the join form, errors
  // ({name, room, form}) saying why.
  function backToJoin(errors) {
    if (state.signedIn()) {
      showEmpty(errors.form || errors.room || errors.name || '');
      return;
    }
    signedOut('');
    ui.nameError.textContent = errors.name || '';
    ui.roomError.textContent = errors.room || '';
    ui.joinError.textContent = errors.form || '';
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
    saver.store(LS_NAME, name);
    saver.store(LS_ROOM, room);
    state.name = name;
    state.user = null; // the server's welcome says who the guest is
    chat.addRoom(room);
    enterChat(room);
    account.refresh();
  }

  function onAddRoom(ev) {
    ev.preventDefault();
    const room = ui.addRoom.value.trim().replace(/^#/, '');
    if (room === '') { ui.addRoom.focus(); return; }
    const err = validRoom(room);
    if (err) { toast(err, 'error'); ui.addRoom.focus(); return; }
    if (roomKind(room) !== 'public') { toast('A room name cannot start with _.', 'error'); ui.addRoom.focus(); return; }
    ui.addRoom.value = '';
    addRoom(room);
    if (state.active === room) ui.text.focus();
  }

  function toggleMembers() {
    const open = !document.body.classList.contains('members-open');
    document.body.classList.toggle('members-open', open);
    ui.membersToggle.setAttribute('aria-expanded', open ? 'true' : 'false');
  }

  // startFiles wires attaching (the paperclip, drag and drop onto the
  // conversation, pasting into the composer) and the picture viewer.
  function startFiles() {
    ui.attach.addEventListener('click', () => ui.attachInput.click());
    ui.attachInput.addEventListener('change', () => {
      attachFiles(Array.from(ui.attachInput.files || []));
      ui.attachInput.value = '';
      ui.text.focus();
    });
    ui.text.addEventListener('paste', (ev) => {
      const cd = ev.clipboardData;
      if (!cd) return;
      let files = Array.from(cd.files || []);
      if (files.length === 0) {
        for (const it of Array.from(cd.items || [])) {
          const f = it.kind === 'file' ? it.getAsFile() : null;
          if (f) files.push(f);
        }
      }
      if (files.length === 0 || !state.canUpload()) return;
      ev.preventDefault(); // the text of a pasted picture (its name) stays out
      attachFiles(files);
    });
    const area = ui.dropZone.parentNode;
    let depth = 0;
    const hide = () => { depth = 0; ui.dropZone.hidden = true; };
    area.addEventListener('dragenter', (ev) => {
      if (!dragFiles(ev) || !state.active || !state.canUpload()) return;
      ev.preventDefault();
      depth += 1;
      ui.dropZone.hidden = false;
    });
    area.addEventListener('dragover', (ev) => {
      if (!dragFiles(ev) || !state.active || !state.canUpload()) return;
      ev.preventDefault();
      ev.dataTransfer.dropEffect = 'copy';
    });
    area.addEventListener('dragleave', () => {
      depth = Math.max(0, depth - 1);
      if (depth === 0) ui.dropZone.hidden = true;
    });
    area.addEventListener('drop', (ev) => {
      if (!dragFiles(ev)) return;
      ev.preventDefault();
      hide();
      attachFiles(Array.from(ev.dataTransfer.files || []));
    });
    // A file dropped anywhere else must not replace the page.
    window.addEventListener('dragover', (ev) => { if (dragFiles(ev)) ev.preventDefault(); });
    window.addEventListener('drop', (ev) => { if (dragFiles(ev)) { ev.preventDefault(); hide(); } });
    window.addEventListener('dragend', hide);
    // The viewer: the close button, Escape (the dialog's own) and a click
    // outside the picture close it.
    ui.viewerClose.addEventListener('click', () => ui.viewer.close());
    ui.viewer.addEventListener('click', (ev) => { if (ev.target === ui.viewer) ui.viewer.close(); });
    ui.viewer.addEventListener('close', () => { ui.viewerImg.removeAttribute('src'); });
  }

  // start wires the page's events, brings back the rooms of the last page
  // (restore) and joins at once with ?join=1.
  function start(c, connection, acct, ups) {
    chat = c;
    conn = connection;
    account = acct;
    uploads = ups;
    const q = new URLSearchParams(location.search);
    ui.name.value = q.get('name') || saver.load(LS_NAME) || '';
    ui.room.value = q.get('room') || saver.load(LS_ROOM) || 'general';
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
    startFiles();
    ui.addRoomForm.addEventListener('submit', onAddRoom);
    ui.addRoom.addEventListener('keydown', (ev) => {
      if (ev.key === 'Escape') ui.addRoom.value = '';
    });
    ui.authForm.addEventListener('submit', (ev) => { ev.preventDefault(); onAuthSubmit(false); });
    ui.signup.addEventListener('click', () => onAuthSubmit(true));
    ui.signout.addEventListener('click', () => act(account.signOut()));
    ui.roomsToggle.addEventListener('click', toggleRooms);
    document.addEventListener('keydown', (ev) => {
      if (ev.key === 'Escape' && document.body.classList.contains('rooms-open')) {
        toggleRooms();
        ui.roomsToggle.focus();
      }
    });
    ui.errorClose.addEventListener('click', () => showError(''));
    ui.createRoomForm.addEventListener('submit', (ev) => {
      ev.preventDefault();
      act(account.createPrivate(ui.createRoom.value)).then((err) => { if (!err) ui.createRoom.value = ''; });
    });
    ui.inviteForm.addEventListener('submit', (ev) => {
      ev.preventDefault();
      const who = ui.inviteName.value.trim();
      act(account.invite(state.active, who)).then((err) => {
        if (err) return;
        ui.inviteName.value = '';
        toast('Invited ' + who + '.', '');
      });
    });
    window.addEventListener('hashchange', () => account.openHash());
    window.addEventListener('focus', () => { if (!ui.chatScreen.hidden) account.refresh(); });
    setInterval(() => { if (document.visibilityState !== 'hidden' && !ui.chatScreen.hidden) account.refresh(); }, REFRESH_MS);
    ui.leave.addEventListener('click', () => chat.leaveRoom(state.active));
    ui.membersToggle.addEventListener('click', toggleMembers);
    ui.state.addEventListener('click', () => { if (state.conn === 'reconnecting' || state.conn === 'offline') conn.reconnectNow(); });
    ui.jump.addEventListener('click', scrollToBottom);
    ui.messages.addEventListener('scroll', onScroll);
    window.addEventListener('online', () => conn.reconnectNow());
    window.addEventListener('offline', () => conn.networkLost());
    setInterval(renderTyping, 1000);
    // Saves wait a moment; a page going away writes them at once.
    window.addEventListener('pagehide', () => saver.flush());
    document.addEventListener('visibilitychange', () => { if (document.visibilityState === 'hidden') saver.flush(); });
    updateComposer();
    account.start().then((screen) => {
      if (screen === 'signin' && state.guests && q.get('join') === '1' && ui.name.value && ui.room.value) ui.join.click();
    });
  }

  return {
    start: start,
    setConn: setConn,
    uploadsChanged(room) { if (room === state.active) renderUploads(); },

    // What Chat reports (frames.js, viewMethods).
    inserted(r, at, e, how) {
      const list = listOf(r);
      const visible = r.name === state.active && list === ui.messages;
      const stick = how === 'live' && visible && nearBottom();
      const li = render(e);
      nodes.set(e, li);
      const next = r.entries[at + 1];
      list.insertBefore(li, (next && nodes.get(next)) || null);
      regroup(li);
      regroup(li.nextElementSibling);
      if (how === 'live' && visible) {
        if (stick) scrollToBottom();
        else if (e.kind === 'msg') ui.jump.hidden = false;
      }
    },
    updated(r, e) {
      const li = nodes.get(e);
      if (li) fill(li, e);
    },
    removed(r, e) {
      const li = nodes.get(e);
      if (li) removeNode(li);
      nodes.delete(e);
    },
    trimmed(r, gone) {
      for (const e of gone) {
        const li = nodes.get(e);
        if (li) li.remove();
        nodes.delete(e);
      }
      if (r.list) regroup(r.list.firstElementChild);
    },
    olderStart(r) {
      if (r.list === ui.messages) older.set(r, { height: ui.messages.scrollHeight, top: ui.messages.scrollTop });
    },
    olderEnd(r) {
      // Keep what the user looks at in place when older messages come in above.
      const o = older.get(r);
      older.delete(r);
      if (o && r.list === ui.messages) ui.messages.scrollTop = o.top + (ui.messages.scrollHeight - o.height);
    },
    members(r) { if (r.name === state.active) renderMembers(); },
    typing: renderTyping,
    tabs: renderTabs,
    composer: updateComposer,
    toast: toast,
    roomDropped(name, next) {
      if (uploads) uploads.drop(name);
      if (next) showRoom(next);
      else if (!state.active) showEmpty('');
      renderTabs();
      renderSidebar();
    },
    backToJoin: backToJoin,
    sidebar: renderSidebar,
    signedOut: signedOut,
    enterChat: enterChat,
    openRoom: openRoom,
  };
}

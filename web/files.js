// files.js: pictures and files, without a DOM. Uploads sends the files the
// user attaches (POST /api/files, one XMLHttpRequest each for its upload
// progress) and keeps what the composer's chips show; the helpers below
// check and describe the files a message carries. XMLHttpRequest, the Api
// and the clock are injected (web/test/ brings fakes).

import { ApiError, apiError, errorText, sentence } from './api.js';

export const MAX_FILES = 10;     // files per message (protocol.MaxFiles)
export const THUMB_BOX = 320;    // thumbnails fit this square (the server's thumb size)
export const MAX_NAME = 255;     // characters of a file name kept for showing

const ID_RE = /^[A-Za-z0-9_-]{1,128}$/;

// validFileID: the id can go into a URL path (the server's ids only).
export function validFileID(id) {
  return typeof id === 'string' && ID_RE.test(id);
}

// fileURL is where a file's bytes are; thumbURL its thumbnail (images).
export function fileURL(id) { return '/api/files/' + id; }
export function thumbURL(id) { return '/api/files/' + id + '/thumb'; }

// formatSize says a size in bytes in words: "1 byte", "900 bytes",
// "2.4 KB", "10 MB" (1 KB = 1024 bytes; one decimal below 10).
export function formatSize(n) {
  if (typeof n !== 'number' || !isFinite(n) || n < 0) return '';
  if (n < 1024) return n === 1 ? '1 byte' : Math.round(n) + ' bytes';
  const units = ['KB', 'MB', 'GB', 'TB'];
  let v = n / 1024;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) { v /= 1024; u++; }
  const s = v < 10 ? (Math.round(v * 10) / 10).toString() : Math.round(v).toString();
  return (s === '1024' && u < units.length - 1 ? '1 ' + units[u + 1] : s + ' ' + units[u]);
}

// fitBox is the size a width x height picture is shown at: fitted into
// box x box keeping its shape, never enlarged, at least 1 px; null when
// the size is unknown.
export function fitBox(width, height, box = THUMB_BOX) {
  if (!(width > 0) || !(height > 0) || !isFinite(width) || !isFinite(height)) return null;
  const scale = Math.min(1, box / width, box / height);
  return { width: Math.max(1, Math.round(width * scale)), height: Math.max(1, Math.round(height * scale)) };
}

// fileKind sorts a file by its (server-given) type: 'image' for pictures
// shown inline, else 'pdf', 'text' or 'other' (the card's icon).
export function fileKind(type) {
  const t = typeof type === 'string' ? type.toLowerCase() : '';
  if (/^image\/(png|jpeg|gif|webp)$/.test(t)) return 'image';
  if (t === 'application/pdf') return 'pdf';
  if (t.startsWith('text/')) return 'text';
  return 'other';
}

function num(v) {
  return typeof v === 'number' && isFinite(v) && v >= 0 ? v : 0;
}

// fileOf checks one file of a message frame (or of an upload's answer):
// {id, type, size, name, width, height}, or null when its id is not one
// the page may put in a URL. Names and types are only ever shown as text.
export function fileOf(f) {
  if (!f || typeof f !== 'object' || !validFileID(f.id)) return null;
  const name = typeof f.name === 'string' ? Array.from(f.name).slice(0, MAX_NAME).join('') : '';
  return {
    id: f.id,
    type: typeof f.type === 'string' ? f.type.slice(0, 100) : '',
    size: num(f.size),
    name: name || 'file',
    width: num(f.width),
    height: num(f.height),
  };
}

// fileList is the usable files of a message frame's "files" (at most
// MAX_FILES, no id twice); [] when there are none.
export function fileList(files) {
  const out = [];
  if (!Array.isArray(files)) return out;
  const seen = new Set();
  for (const f of files) {
    const c = fileOf(f);
    if (!c || seen.has(c.id)) continue;
    seen.add(c.id);
    out.push(c);
    if (out.length === MAX_FILES) break;
  }
  return out;
}

// uploadErrorText says why an upload failed, in the page's words; maxBytes
// is the server's limit (0: not known). Codes the page has no words for
// show the server's own message.
export function uploadErrorText(err, maxBytes) {
  const code = err && err.code ? err.code : '';
  const words = {
    too_large: maxBytes > 0 ? 'Too big: the limit is ' + formatSize(maxBytes) + '.' : 'Too big: the file is over the limit.',
    not_found: 'You cannot send files to this conversation.',
    too_many_files: 'At most ' + MAX_FILES + ' files per message.',
  };
  const known = ['too_large', 'type_refused', 'bad_image', 'bad_name', 'quota_exceeded', 'too_many_uploads',
    'signed_out', 'not_found', 'timeout', 'network', 'unavailable', 'cross_origin', 'too_many_files'];
  if (!known.includes(code) && err && err.message) return sentence(err.message);
  return errorText(err, words);
}

// An upload is one chip above the composer:
//   {key, room, name, size, loaded, state, file, error, xhr}
// state: 'uploading' | 'done' (file is the server's {id, type, size, name,
// width, height}) | 'error' (error says why, in words).

// Uploads sends the files the user attaches and keeps them per room until
// they go with a message (take) or the user removes them (cancel).
export class Uploads {
  // XHR: the XMLHttpRequest constructor; api: an Api (fileLimits,
  // deleteFile); onChange(room) is called whenever the room's uploads
  // change (progress included); log(...) gets what the user need not see.
  constructor({ XHR, api, onChange, log, token }) {
    this.XHR = XHR;
    this.api = api;
    // token() is a guest's upload token ('' for a signed-in user).
    this.token = token || (() => '');
    this.onChange = onChange || (() => {});
    this.log = log || (() => {});
    this.maxBytes = 0;       // the server's limit (GET /api/files); 0: not known, not checked here
    this.limitsAsked = false;
    this.items = [];         // every upload, in the order attached
    this.nextKey = 1;
  }

  // loadLimits asks the server's limits once (the chat opened for a
  // signed-in user); a failure only means the size is not checked before
  // uploading.
  async loadLimits() {
    if (this.limitsAsked) return;
    this.limitsAsked = true;
    try {
      const l = await this.api.fileLimits(this.token());
      if (l && typeof l.max_bytes === 'number' && l.max_bytes > 0) this.maxBytes = l.max_bytes;
    } catch (err) {
      this.limitsAsked = false; // asked again next time the chat opens
      this.log('livechat: file limits', err);
    }
  }

  // list is the room's uploads, in order.
  list(room) { return this.items.filter((u) => u.room === room); }

  // busy: an upload of the room is still going.
  busy(room) { return this.items.some((u) => u.room === room && u.state === 'uploading'); }

  // ready is the room's finished uploads (the server's files).
  ready(room) { return this.items.filter((u) => u.room === room && u.state === 'done').map((u) => u.file); }

  get(key) { return this.items.find((u) => u.key === key) || null; }

  // add attaches files (File or Blob with a name) to a room: each starts
  // uploading at once, or shows at once why it cannot (too big, too many).
  add(room, files) {
    for (const f of files) {
      const u = { key: this.nextKey++, room: room, name: String(f.name || 'file'), size: num(f.size), loaded: 0,
        state: 'uploading', file: null, error: '', xhr: null };
      this.items.push(u);
      const kept = this.list(room).filter((x) => x.state !== 'error').length;
      if (kept > MAX_FILES) this.fail(u, new ApiError('too_many_files', '', 0, 0));
      else if (this.maxBytes > 0 && u.size > this.maxBytes) this.fail(u, new ApiError('too_large', '', 413, 0));
      else this.send(u, f);
    }
    this.onChange(room);
  }

  fail(u, err) {
    u.state = 'error';
    u.error = uploadErrorText(err, this.maxBytes);
    u.xhr = null;
  }

  // send uploads one file: POST /api/files?room=&name=, the file as the body.
  send(u, f) {
    const xhr = new this.XHR();
    u.xhr = xhr;
    xhr.open('POST', '/api/files?room=' + encodeURIComponent(u.room) + '&name=' + encodeURIComponent(u.name));
    xhr.setRequestHeader('Accept', 'application/json');
    const tok = this.token();
    if (tok) xhr.setRequestHeader('Authorization', 'Bearer ' + tok);
    const done = (err, file) => {
      if (u.xhr !== xhr) return; // cancelled
      u.xhr = null;
      if (err) this.fail(u, err);
      else {
        u.state = 'done';
        u.file = file;
        u.loaded = u.size;
      }
      this.onChange(u.room);
    };
    if (xhr.upload) {
      xhr.upload.onprogress = (ev) => {
        if (u.xhr !== xhr || !ev.lengthComputable) return;
        u.loaded = ev.loaded;
        if (ev.total > 0) u.size = ev.total;
        this.onChange(u.room);
      };
    }
    xhr.onload = () => {
      let body = null;
      try { body = JSON.parse(xhr.responseText); } catch (_) { body = null; }
      if (xhr.status >= 200 && xhr.status < 300) {
        const file = fileOf(body && body.file);
        if (file) done(null, file);
        else done(new ApiError('bad_answer', 'the server sent no file id', xhr.status, 0));
        return;
      }
      const ra = typeof xhr.getResponseHeader === 'function' ? xhr.getResponseHeader('Retry-After') : null;
      done(apiError(xhr.status, body, ra));
    };
    xhr.onerror = () => done(new ApiError('network', '', 0, 0));
    xhr.ontimeout = () => done(new ApiError('timeout', '', 0, 0));
    xhr.onabort = () => { /* cancel removed it already */ };
    xhr.send(f);
  }

  // cancel removes an upload: a running one is aborted; a finished one
  // (not sent yet) is withdrawn on the server too (DELETE /api/files/{id}).
  cancel(key) {
    const u = this.get(key);
    if (!u) return;
    this.items.splice(this.items.indexOf(u), 1);
    const xhr = u.xhr;
    u.xhr = null;
    if (xhr) {
      try { xhr.abort(); } catch (_) { /* done already */ }
    }
    if (u.state === 'done' && u.file) {
      this.api.deleteFile(u.file.id, this.token()).catch((err) => this.log('livechat: withdraw upload', err));
    }
    this.onChange(u.room);
  }

  // take removes the room's finished uploads (they go with a message) and
  // returns their files; the failed ones stay to be read and removed.
  take(room) {
    const files = this.ready(room);
    this.items = this.items.filter((u) => !(u.room === room && u.state === 'done'));
    if (files.length) this.onChange(room);
    return files;
  }

  // drop forgets a room's uploads (the page left it): running ones are
  // aborted, finished ones withdrawn.
  drop(room) {
    for (const u of this.list(room)) this.cancel(u.key);
  }
}

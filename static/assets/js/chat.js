// The chat panel: messages to everyone and private ones, the choice of
// recipient, and the unread count on the chat button. Messages live in this
// page only (the server passes them on and forgets them), so they are gone
// when the page is; names and text always go in as text, never as markup.

import { $, announce } from './dom.js';
import { currentLang, onLangChange, setText } from './i18n.js';

const MAX_CHARS = 2000; // docs/protocol.md, `chat`
const ANNOUNCE_CHARS = 200; // a screen reader reads a long message in the panel, not in a notification

function clockTime(date) {
  return date.toLocaleTimeString(currentLang(), { hour: '2-digit', minute: '2-digit' });
}

export class Chat {
  /**
   * @param {object} opts
   * @param {(msg: object) => void} opts.send
   * @param {(id: string) => string|null} opts.nameOf  a participant's name (null: unknown or gone)
   * @param {AbortSignal} opts.signal                  removes every listener when the meeting ends
   */
  constructor({ send, nameOf, signal }) {
    this.send = send;
    this.nameOf = nameOf;
    this.log = $('chat-log');
    this.empty = $('chat-empty');
    this.form = $('chat-form');
    this.to = $('chat-to');
    this.input = $('chat-input');
    this.error = $('chat-error');
    this.count = $('ctl-chat-count');
    this.unreadText = $('ctl-chat-unread');
    this.open = false;
    this.unread = 0;
    this.names = new Map(); // id → name of everyone met, so a message outlives its sender's departure
    this.form.addEventListener(
      'submit',
      (ev) => {
        ev.preventDefault();
        this.submit();
      },
      { signal },
    );
    this.input.addEventListener(
      'keydown',
      (ev) => {
        // Enter sends, Shift+Enter starts a new line (as in every chat).
        if (ev.key === 'Enter' && !ev.shiftKey && !ev.isComposing) {
          ev.preventDefault();
          this.submit();
        }
      },
      { signal },
    );
    this.input.addEventListener('input', () => this.showError(null), { signal });
    // Times are written the way the chosen language writes them (14:05, 2:05 PM).
    const stop = onLangChange(() => {
      for (const time of this.log.querySelectorAll('time')) time.textContent = clockTime(new Date(time.dateTime));
    });
    signal.addEventListener('abort', stop);
    this.to.addEventListener('change', () => this.showError(null), { signal });
    this.clear();
  }

  /** The panel was opened (true) or closed (false). */
  setOpen(open) {
    this.open = open;
    if (open) {
      this.setUnread(0);
      this.log.scrollTop = this.log.scrollHeight;
    }
  }

  setUnread(n) {
    this.unread = n;
    this.count.textContent = n ? String(Math.min(n, 99)) : '';
    if (n) setText(this.unreadText, n === 1 ? 'chat.unreadOne' : 'chat.unread', { n });
    else {
      this.unreadText.removeAttribute('data-i18n');
      this.unreadText.textContent = '';
    }
  }

  /** The people one can write to privately: `people` is [{id, name}], everyone but us. */
  setPeople(people) {
    const chosen = this.to.value;
    for (const p of people) this.names.set(p.id, p.name);
    const options = [this.to.options[0]];
    const sorted = [...people].sort((a, b) => a.name.localeCompare(b.name, currentLang()));
    for (const p of sorted) {
      const opt = document.createElement('option');
      opt.value = p.id;
      opt.textContent = p.name;
      options.push(opt);
    }
    // Someone chosen who has left stays, marked: the message must not quietly go to everyone.
    if (chosen && !people.some((p) => p.id === chosen)) {
      const opt = document.createElement('option');
      opt.value = chosen;
      setText(opt, 'chat.left', { name: this.names.get(chosen) || '?' });
      options.push(opt);
    }
    this.to.replaceChildren(...options);
    this.to.value = chosen;
  }

  /** Chooses the recipient (a participant id, or '' for everyone). */
  writeTo(id) {
    this.to.value = id;
    if (this.to.value !== id) this.to.value = '';
    this.showError(null);
  }

  focusInput() {
    this.input.focus();
  }

  receive({ from, text, private: isPrivate }) {
    if (typeof text !== 'string' || !text) return;
    const name = this.nameOf(from) || this.names.get(from) || '?';
    this.append({ name, text, isPrivate: !!isPrivate, own: false, from });
    if (!this.open) {
      this.setUnread(this.unread + 1);
      const short = Array.from(text).length > ANNOUNCE_CHARS ? `${Array.from(text).slice(0, ANNOUNCE_CHARS).join('')}…` : text;
      announce(isPrivate ? 'live.chatPrivate' : 'live.chat', { name, text: short });
    }
  }

  submit() {
    const text = this.input.value.trim();
    if (!text) {
      this.showError('chat.empty');
      return;
    }
    if (Array.from(text).length > MAX_CHARS) {
      this.showError('chat.long');
      return;
    }
    const to = this.to.value;
    const toName = to ? this.nameOf(to) : null;
    if (to && !toName) {
      this.showError('chat.recipientGone', { name: this.names.get(to) || '?' });
      return;
    }
    const msg = { type: 'chat', text };
    if (to) msg.to = to;
    this.send(msg);
    // The server sends a message to everyone but its author: we show our own here.
    this.append({ name: toName, text, isPrivate: !!to, own: true, from: null });
    this.input.value = '';
    this.input.focus();
  }

  append({ name, text, isPrivate, own, from }) {
    const li = document.createElement('li');
    li.className = `chat-msg${own ? ' chat-own' : ''}${isPrivate ? ' chat-private' : ''}`;
    if (from) li.dataset.from = from;
    const meta = document.createElement('p');
    meta.className = 'chat-meta';
    const who = document.createElement('span');
    who.className = 'chat-from';
    if (own) setText(who, isPrivate ? 'chat.youTo' : 'chat.you', { name });
    else if (isPrivate) setText(who, 'chat.privateFrom', { name });
    else who.textContent = name;
    const time = document.createElement('time');
    const now = new Date();
    time.dateTime = now.toISOString();
    time.textContent = clockTime(now);
    meta.append(who, time);
    const body = document.createElement('p');
    body.className = 'chat-text';
    body.textContent = text;
    li.append(meta, body);
    // Stay at the bottom only if the reader was there: never yank someone reading back.
    const atBottom = this.log.scrollHeight - this.log.scrollTop - this.log.clientHeight < 40;
    this.log.appendChild(li);
    this.empty.hidden = true;
    if (atBottom || own) this.log.scrollTop = this.log.scrollHeight;
  }

  showError(key, params) {
    if (!key) {
      this.error.hidden = true;
      this.input.removeAttribute('aria-invalid');
      return;
    }
    setText(this.error, key, params);
    this.error.hidden = false;
    this.input.setAttribute('aria-invalid', 'true');
    this.input.focus();
  }

  clear() {
    this.log.replaceChildren();
    this.empty.hidden = false;
    this.input.value = '';
    this.to.replaceChildren(this.to.options[0]);
    this.to.value = '';
    this.showError(null);
    this.setUnread(0);
    this.names.clear();
  }
}

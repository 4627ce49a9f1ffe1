// What moderators see besides the tiles: the moderation panel (room lock,
// lobby, unmute locks, password, ending the meeting) and the stack of
// notifications for people knocking in the lobby and participants asking to
// unmute. The panel only shows the server's `room-state`: a switch changes
// when the server says the room changed, never before.

import { $ } from './dom.js';
import { confirmDialog } from './dialog.js';
import { icon } from './icons.js';
import { setAria, setText } from './i18n.js';

const SWITCHES = [
  // element id, room-state getter, message for a new value
  ['mod-lock', (s) => s.locked, (on) => ({ type: 'lock-room', locked: on })],
  ['mod-lobby', (s) => s.lobby, (on) => ({ type: 'set-lobby', enabled: on })],
  ['mod-lock-audio', (s) => s.unmuteLocked.audio, (on) => ({ type: 'lock-unmute', kind: 'audio', locked: on })],
  ['mod-lock-video', (s) => s.unmuteLocked.video, (on) => ({ type: 'lock-unmute', kind: 'video', locked: on })],
];

/** `joined.room` / `room-state` with every field present. */
export function normalizeRoomState(s) {
  const src = s && typeof s === 'object' ? s : {};
  const locks = src.unmuteLocked && typeof src.unmuteLocked === 'object' ? src.unmuteLocked : {};
  return {
    locked: !!src.locked,
    lobby: !!src.lobby,
    passwordSet: !!src.passwordSet,
    unmuteLocked: { audio: !!locks.audio, video: !!locks.video },
  };
}

export class ModerationPanel {
  /**
   * @param {object} opts
   * @param {(msg: object) => void} opts.send
   * @param {() => void} opts.onEndConference   called after the moderator confirmed
   * @param {AbortSignal} opts.signal            removes every listener when the meeting ends
   */
  constructor({ send, onEndConference, signal }) {
    this.send = send;
    this.state = normalizeRoomState(null);
    for (const [id, get, message] of SWITCHES) {
      $(id).addEventListener('click', () => this.send(message(!get(this.state))), { signal });
    }
    this.passwordInput = $('mod-password');
    this.passwordError = $('mod-password-error');
    this.passwordInput.addEventListener(
      'input',
      () => {
        this.passwordError.hidden = true;
        this.passwordInput.removeAttribute('aria-invalid');
      },
      { signal },
    );
    $('mod-password-form').addEventListener(
      'submit',
      (ev) => {
        ev.preventDefault();
        const password = this.passwordInput.value;
        const length = Array.from(password).length;
        if (!password.trim() || length > 64) {
          setText(this.passwordError, length > 64 ? 'mod.passwordLong' : 'mod.passwordEmpty');
          this.passwordError.hidden = false;
          this.passwordInput.setAttribute('aria-invalid', 'true');
          this.passwordInput.focus();
          return;
        }
        this.send({ type: 'set-password', password });
        this.passwordInput.value = '';
      },
      { signal },
    );
    $('mod-password-clear').addEventListener('click', () => this.send({ type: 'set-password', password: null }), { signal });
    $('mod-end').addEventListener(
      'click',
      async () => {
        const yes = await confirmDialog({ title: 'mod.endConfirm.title', text: 'mod.endConfirm.text', confirm: 'mod.endConfirm.button' });
        if (yes) onEndConference();
      },
      { signal },
    );
    this.reset();
  }

  update(state) {
    this.state = normalizeRoomState(state);
    for (const [id, get] of SWITCHES) $(id).setAttribute('aria-checked', get(this.state) ? 'true' : 'false');
    setText($('mod-password-state'), this.state.passwordSet ? 'mod.passwordIsSet' : 'mod.passwordNone');
    const clear = $('mod-password-clear');
    if (!this.state.passwordSet && document.activeElement === clear) this.passwordInput.focus();
    clear.hidden = !this.state.passwordSet;
  }

  reset() {
    this.passwordInput.value = '';
    this.passwordError.hidden = true;
    this.update(null);
  }
}

/**
 * Notifications for moderators: one card per lobby request and per unmute
 * request, each with its buttons, until the server says it is settled.
 */
export class Notices {
  /** @param {HTMLElement} container  @param {() => HTMLElement} fallbackFocus where focus goes when the last card goes */
  constructor(container, fallbackFocus) {
    this.container = container;
    this.fallbackFocus = fallbackFocus;
    this.cards = new Map();
  }

  /** @param {{text: string, params: object, iconName: string, actions: {key: string, aria: string, primary?: boolean, action: string, onClick: () => void}[]}} card */
  add(key, { text, params, iconName, actions }) {
    if (this.cards.has(key)) return;
    const card = document.createElement('div');
    card.className = 'notice-card';
    card.setAttribute('role', 'group');
    card.dataset.key = key;
    const textId = `notice-${this.cards.size}-${Date.now()}`;
    card.setAttribute('aria-labelledby', textId);
    const head = document.createElement('div');
    head.className = 'notice-head';
    const ic = document.createElement('span');
    ic.className = 'notice-icon';
    ic.appendChild(icon(iconName));
    const p = document.createElement('p');
    p.id = textId;
    setText(p, text, params);
    head.append(ic, p);
    const row = document.createElement('div');
    row.className = 'notice-actions';
    for (const a of actions) {
      const b = document.createElement('button');
      b.type = 'button';
      b.className = a.primary ? 'btn btn-small btn-primary' : 'btn btn-small';
      b.dataset.action = a.action;
      setText(b, a.key);
      setAria(b, a.aria, params);
      b.addEventListener('click', a.onClick);
      row.appendChild(b);
    }
    card.append(head, row);
    this.container.appendChild(card);
    this.cards.set(key, card);
    this.container.hidden = false;
  }

  remove(key) {
    const card = this.cards.get(key);
    if (!card) return;
    const hadFocus = card.contains(document.activeElement);
    const next = card.nextElementSibling || card.previousElementSibling;
    card.remove();
    this.cards.delete(key);
    this.container.hidden = this.cards.size === 0;
    if (hadFocus) {
      const target = next ? next.querySelector('button') : this.fallbackFocus();
      if (target) target.focus();
    }
  }

  has(key) {
    return this.cards.has(key);
  }

  clear() {
    this.cards.clear();
    this.container.replaceChildren();
    this.container.hidden = true;
  }
}

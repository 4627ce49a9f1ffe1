// The participant list panel: everyone in the meeting, you included, with
// role, raised hand (and its place in the queue), microphone and camera
// state, a shared screen, and a menu button per person (for moderators with
// their actions). Rows are kept per
// participant and updated in place, so a focused menu button keeps its focus
// while the list changes around it.

import { icon } from './icons.js';
import { setAria, setText } from './i18n.js';
import { initials } from './tiles.js';

function el(tag, className) {
  const e = document.createElement(tag);
  if (className) e.className = className;
  return e;
}

function stateIcon(name, key) {
  const span = el('span', 'plist-icon');
  span.setAttribute('role', 'img');
  span.appendChild(icon(name));
  setAria(span, key);
  return span;
}

class Row {
  constructor(id) {
    this.li = el('li', 'plist-item');
    this.li.dataset.participant = id;
    this.avatar = el('span', 'plist-avatar');
    this.avatar.setAttribute('aria-hidden', 'true');
    const main = el('span', 'plist-main');
    this.name = el('span', 'plist-name');
    this.badge = el('span', 'badge');
    setText(this.badge, 'role.moderator');
    main.append(this.name, this.badge);
    const icons = el('span', 'plist-icons');
    this.hand = el('span', 'plist-icon plist-hand');
    this.hand.setAttribute('role', 'img');
    this.hand.appendChild(icon('hand'));
    this.handNumber = el('span', 'plist-hand-n');
    this.handNumber.setAttribute('aria-hidden', 'true');
    this.hand.appendChild(this.handNumber);
    this.mic = stateIcon('mic-off', 'tile.micOff');
    this.cam = stateIcon('video-off', 'tile.cameraOff');
    this.screen = stateIcon('monitor', 'tile.sharing');
    this.screen.classList.add('plist-screen');
    icons.append(this.hand, this.screen, this.mic, this.cam);
    this.menuButton = el('button', 'icon-btn plist-menu');
    this.menuButton.type = 'button';
    this.menuButton.setAttribute('aria-haspopup', 'menu');
    this.menuButton.setAttribute('aria-expanded', 'false');
    this.menuButton.appendChild(icon('more'));
    this.onMenu = null;
    this.menuButton.addEventListener('click', () => {
      if (this.onMenu) this.onMenu(this.menuButton);
    });
    this.li.append(this.avatar, main, icons, this.menuButton);
  }

  update(p) {
    if (p.self) setText(this.name, 'tile.you', { name: p.name });
    else {
      this.name.removeAttribute('data-i18n');
      this.name.textContent = p.name;
    }
    this.avatar.textContent = initials(p.name);
    this.badge.hidden = p.role !== 'moderator';
    this.hand.hidden = !p.handPosition;
    if (p.handPosition) {
      this.handNumber.textContent = String(p.handPosition);
      setAria(this.hand, 'hand.raisedN', { n: p.handPosition });
    }
    this.mic.hidden = !p.audioMuted;
    this.cam.hidden = !p.videoMuted;
    this.screen.hidden = !p.screen;
    this.onMenu = p.menu || null;
    this.menuButton.hidden = !p.menu;
    setAria(this.menuButton, 'menu.for', { name: p.name });
  }
}

export class ParticipantList {
  constructor(list, count) {
    this.list = list;
    this.count = count;
    this.rows = new Map();
  }

  /**
   * @param {{id: string, name: string, self: boolean, role: string, audioMuted: boolean,
   *          videoMuted: boolean, screen: boolean, handPosition: number|null,
   *          menu: ((button: HTMLElement) => void)|null}[]} entries
   *        in display order
   */
  render(entries) {
    const seen = new Set();
    const focused = document.activeElement;
    let changedOrder = false;
    entries.forEach((p, index) => {
      seen.add(p.id);
      let row = this.rows.get(p.id);
      if (!row) {
        row = new Row(p.id);
        this.rows.set(p.id, row);
      }
      row.update(p);
      if (this.list.children[index] !== row.li) {
        this.list.insertBefore(row.li, this.list.children[index] || null);
        changedOrder = true;
      }
    });
    for (const [id, row] of this.rows) {
      if (!seen.has(id)) {
        row.li.remove();
        this.rows.delete(id);
      }
    }
    // Moving a row takes the focus out of it: put it back.
    if (changedOrder && focused && focused !== document.activeElement && focused.isConnected) focused.focus();
    this.count.textContent = `(${entries.length})`;
  }

  clear() {
    this.rows.clear();
    this.list.replaceChildren();
  }
}

// A small popup menu (the ARIA menu-button pattern): opened from a button,
// arrow keys move between items, Escape closes it and returns focus to the
// button, a click elsewhere closes it. One menu is open at a time. It lives at
// the end of <body> with fixed positioning, so a tile's rounded, clipped box
// never cuts it off.

import { setAria, setText } from './i18n.js';

let current = null; // {menu, anchor, owner, cleanup}

/**
 * Opens a menu under (or above) `anchor`.
 * @param {HTMLElement} anchor  the button; gets aria-expanded
 * @param {{label: string, params?: object}} name  i18n key of the menu's accessible name
 * @param {{key: string, params?: object, danger?: boolean, action: string, onSelect: () => void}[]} items
 * @param {string} [owner]  who the menu is about (closeMenuOf(owner) closes it when they leave)
 */
export function openMenu(anchor, name, items, owner = null) {
  const wasOpenHere = current && current.anchor === anchor;
  closeMenu(false);
  if (wasOpenHere || !items.length) return;

  const menu = document.createElement('div');
  menu.className = 'menu';
  menu.setAttribute('role', 'menu');
  menu.id = 'popup-menu';
  setAria(menu, name.label, name.params);
  for (const item of items) {
    const button = document.createElement('button');
    button.type = 'button';
    button.className = item.danger ? 'menu-item menu-item-danger' : 'menu-item';
    button.setAttribute('role', 'menuitem');
    button.tabIndex = -1;
    button.dataset.action = item.action;
    setText(button, item.key, item.params);
    button.addEventListener('click', () => {
      closeMenu(true);
      item.onSelect();
    });
    menu.appendChild(button);
  }
  document.body.appendChild(menu);
  anchor.setAttribute('aria-expanded', 'true');
  anchor.setAttribute('aria-controls', menu.id);
  place(menu, anchor);

  const entries = () => [...menu.querySelectorAll('[role="menuitem"]')];
  const move = (delta, absolute) => {
    const list = entries();
    const at = list.indexOf(document.activeElement);
    const next = absolute !== undefined ? absolute : (at + delta + list.length) % list.length;
    list[(next + list.length) % list.length].focus();
  };
  menu.addEventListener('keydown', (ev) => {
    if (ev.key === 'ArrowDown') move(1);
    else if (ev.key === 'ArrowUp') move(-1);
    else if (ev.key === 'Home') move(0, 0);
    else if (ev.key === 'End') move(0, -1);
    else if (ev.key === 'Escape') closeMenu(true);
    else if (ev.key === 'Tab') {
      closeMenu(true);
    } else return;
    ev.preventDefault();
    ev.stopPropagation();
  });
  const onPointer = (ev) => {
    if (!menu.contains(ev.target) && !anchor.contains(ev.target)) closeMenu(false);
  };
  const onResize = () => closeMenu(false);
  document.addEventListener('pointerdown', onPointer, true);
  window.addEventListener('resize', onResize);
  current = {
    menu,
    anchor,
    owner,
    cleanup: () => {
      document.removeEventListener('pointerdown', onPointer, true);
      window.removeEventListener('resize', onResize);
    },
  };
  entries()[0].focus();
}

function place(menu, anchor) {
  const r = anchor.getBoundingClientRect();
  const w = menu.offsetWidth;
  const h = menu.offsetHeight;
  const vw = document.documentElement.clientWidth;
  const vh = document.documentElement.clientHeight;
  const margin = 8;
  let left = Math.min(r.right - w, vw - w - margin);
  left = Math.max(margin, left);
  let top = r.bottom + 4;
  if (top + h > vh - margin && r.top - h - 4 >= margin) top = r.top - h - 4;
  top = Math.max(margin, Math.min(top, vh - h - margin));
  menu.style.left = `${Math.round(left)}px`;
  menu.style.top = `${Math.round(top)}px`;
}

/** Closes the open menu, if any; `returnFocus` puts the focus back on its button. */
export function closeMenu(returnFocus) {
  if (!current) return;
  const { menu, anchor, cleanup } = current;
  current = null;
  cleanup();
  const hadFocus = menu.contains(document.activeElement);
  menu.remove();
  anchor.setAttribute('aria-expanded', 'false');
  anchor.removeAttribute('aria-controls');
  if ((returnFocus || hadFocus) && anchor.isConnected) anchor.focus();
}

/** Closes the menu if it is about `owner` (who just left, for instance). */
export function closeMenuOf(owner) {
  if (current && current.owner === owner) closeMenu(false);
}

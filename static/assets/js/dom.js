// Small DOM helpers shared by the pages.

import { t } from './i18n.js';

export const $ = (id) => document.getElementById(id);

/** Shows the one <section data-screen> whose id is `screen-${name}`; hides the others. */
export function showScreen(name) {
  for (const el of document.querySelectorAll('section[data-screen]')) {
    el.hidden = el.id !== `screen-${name}`;
  }
  document.body.dataset.view = name;
  // Move focus to the screen's first field when it has one to fill in (marked
  // data-autofocus), else to its heading, so keyboard and screen-reader users land there.
  const screen = document.getElementById(`screen-${name}`);
  const heading = screen && (screen.querySelector('[data-autofocus]') || screen.querySelector('h1, h2'));
  if (heading) {
    if (!heading.hasAttribute('tabindex') && !/^(INPUT|BUTTON|SELECT|A)$/.test(heading.tagName)) {
      heading.setAttribute('tabindex', '-1');
    }
    heading.focus({ preventScroll: false });
  }
}

let liveTimer = 0;

/** Says `key` politely through the page's aria-live region (id "live"). */
export function announce(key, params) {
  const live = $('live');
  if (!live) return;
  const msg = t(key, params);
  // Appending (rather than replacing) lets quick successive events all be read.
  const p = document.createElement('p');
  p.textContent = msg;
  live.appendChild(p);
  clearTimeout(liveTimer);
  liveTimer = setTimeout(() => live.replaceChildren(), 10000);
}

/** True when keyboard input is meant for a text field rather than for shortcuts. */
export function isTyping(target) {
  if (!(target instanceof Element)) return false;
  if (target.isContentEditable) return true;
  if (target.tagName === 'TEXTAREA' || target.tagName === 'SELECT') return true;
  if (target.tagName === 'INPUT') {
    return !['button', 'checkbox', 'radio', 'submit', 'reset', 'range', 'color', 'file'].includes(target.type);
  }
  return false;
}

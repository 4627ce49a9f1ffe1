// Dutch and English for every visible string and every aria-label.
//
// Static HTML carries English text plus data-i18n* attributes naming the key;
// text set from JavaScript goes through setText()/setAria(), which record the
// key on the element too. Switching language then simply re-translates every
// marked element, so no screen has to know how to redraw itself.

import en from '../i18n/en.js';
import nl from '../i18n/nl.js';
import * as storage from './storage.js';

const dictionaries = { en, nl };
const listeners = new Set();
let lang = initialLang();

function initialLang() {
  const saved = storage.get('lang');
  if (saved && saved in dictionaries) return saved;
  const nav = (navigator.language || '').toLowerCase();
  return nav.startsWith('nl') ? 'nl' : 'en';
}

export function currentLang() {
  return lang;
}

/**
 * Translates `key`, filling `{placeholders}` from `params`. Falls back to English, then to the key.
 * A parameter may itself be a string to translate, given as `{ key }`: it follows a language switch too.
 */
export function t(key, params = {}) {
  const template = dictionaries[lang][key] ?? en[key] ?? key;
  return template.replace(/\{(\w+)\}/g, (m, name) => {
    if (!(name in params)) return m;
    const value = params[name];
    return value && typeof value === 'object' && typeof value.key === 'string' ? t(value.key) : String(value);
  });
}

function readArgs(el, attr) {
  const raw = el.getAttribute(attr);
  if (!raw) return {};
  try {
    return JSON.parse(raw);
  } catch {
    return {};
  }
}

function mark(el, keyAttr, argsAttr, key, params) {
  el.setAttribute(keyAttr, key);
  if (params && Object.keys(params).length) el.setAttribute(argsAttr, JSON.stringify(params));
  else el.removeAttribute(argsAttr);
}

export function setText(el, key, params) {
  mark(el, 'data-i18n', 'data-i18n-args', key, params);
  el.textContent = t(key, params);
}

export function setAria(el, key, params) {
  mark(el, 'data-i18n-aria', 'data-i18n-aria-args', key, params);
  el.setAttribute('aria-label', t(key, params));
}

export function setTitle(el, key, params) {
  mark(el, 'data-i18n-title', 'data-i18n-title-args', key, params);
  el.title = t(key, params);
}

/** Translates every marked element under `root` (the whole document by default). */
export function applyTranslations(root = document) {
  document.documentElement.lang = lang;
  for (const el of root.querySelectorAll('[data-i18n]')) {
    el.textContent = t(el.getAttribute('data-i18n'), readArgs(el, 'data-i18n-args'));
  }
  for (const el of root.querySelectorAll('[data-i18n-aria]')) {
    el.setAttribute('aria-label', t(el.getAttribute('data-i18n-aria'), readArgs(el, 'data-i18n-aria-args')));
  }
  for (const el of root.querySelectorAll('[data-i18n-title]')) {
    el.title = t(el.getAttribute('data-i18n-title'), readArgs(el, 'data-i18n-title-args'));
  }
  for (const el of root.querySelectorAll('[data-i18n-placeholder]')) {
    el.placeholder = t(el.getAttribute('data-i18n-placeholder'));
  }
  // The privacy statement is rendered by the server, which cannot read our
  // stored choice: tell it in the link.
  for (const el of root.querySelectorAll('a[href^="/privacy"]')) {
    el.setAttribute('href', `/privacy?lang=${lang}`);
  }
}

export function setLang(next) {
  if (!(next in dictionaries) || next === lang) return;
  lang = next;
  storage.set('lang', lang);
  // What the live region holds was already read out, in the old language;
  // left there it would be the only text on the page in that language.
  const live = document.getElementById('live');
  if (live) live.replaceChildren();
  applyTranslations();
  listeners.forEach((fn) => fn(lang));
}

/**
 * Calls `fn(lang)` after every language switch (for text that is not a marked
 * element, e.g. document.title). Returns a function that stops the calls.
 */
export function onLangChange(fn) {
  listeners.add(fn);
  return () => listeners.delete(fn);
}

/**
 * Translates the page and wires the language <select> that every page has
 * (id "lang"). Called once by each page's entry module.
 */
export function initI18n() {
  applyTranslations();
  const select = document.getElementById('lang');
  if (select) {
    select.value = lang;
    select.addEventListener('change', () => setLang(select.value));
    onLangChange((l) => {
      select.value = l;
    });
  }
}

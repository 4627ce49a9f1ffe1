// Browser test of the meeting itself (issue 5): chat, screen sharing, hands and
// mute indicators, getting back in after a dropped connection, the keyboard,
// a phone-sized screen and the Dutch interface — the real `zaal` server and
// the real web client in headless Chromium.
//
//   node --test tests/browser/meeting.test.mjs
//
// Environment and set-up: as zaal.test.mjs (see harness.mjs); run it in a
// network namespace that has only `lo`:
//
//   unshare --net sh -c 'ip link set lo up; node --test tests/browser/meeting.test.mjs'
//
// Three pages (Alice the host, Bob, Carol) stay in one room for the whole
// file: every scenario builds on the meeting the one before left, which keeps
// the file fast on a small machine. Screenshots go to $ZAAL_SCREENSHOTS
// (default: the system temp dir), for a human look.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import en from '../../static/assets/i18n/en.js';
import nl from '../../static/assets/i18n/nl.js';
import { Browser, Zaal, log, remoteTiles, videoFramesFrom, waitForMedia, waitUntil } from './harness.mjs';

const ROOM = 'meeting-test';
const HOST_USER = 'teacher';
const HOST_PASSWORD = 'correct horse battery';
const SCREENSHOTS = process.env.ZAAL_SCREENSHOTS || path.join(os.tmpdir(), 'zaal-screenshots');
const VISIBLE = { state: 'visible', timeout: 15000 };
const NAMES = ['Alice', 'Bob', 'Carol'];

let zaal = null;
let browser = null;
let session = null;
const pages = new Map(); // name → page

const page = (name) => pages.get(name);
const tileOf = (p, name) => p.locator('#tiles .tile[data-participant]', { hasText: name });
/** An English string with its {placeholders} filled, as the page shows it. */
const english = (key, params = {}) => en[key].replace(/\{(\w+)\}/g, (m, k) => (k in params ? String(params[k]) : m));

async function enter(name, { host = false, camera = 'on', mic = 'on', hash = null, viewport } = {}) {
  const { page: p } = await browser.open(name, { session: host ? session : null, viewport });
  const fragment = hash ?? `name=${encodeURIComponent(name)}&autojoin=1&camera=${camera}&mic=${mic}`;
  await p.goto(`${zaal.base}/${ROOM}#${fragment}`);
  log(`${name} opened ${ROOM}${host ? ' as the host' : ''}`);
  return p;
}

/** Polls every 100 ms until `probe(page)` is truthy on each of `names`; resolves to the ms each took. */
async function everywhere(what, names, probe, timeout) {
  const started = Date.now();
  const pending = new Set(names);
  const seen = {};
  while (pending.size) {
    for (const name of [...pending]) {
      if (await probe(page(name), name)) {
        seen[name] = Date.now() - started;
        pending.delete(name);
      }
    }
    if (!pending.size) break;
    if (Date.now() - started > timeout) throw new Error(`${what}: not on ${[...pending].join(', ')} within ${timeout} ms (seen: ${JSON.stringify(seen)})`);
    await new Promise((r) => setTimeout(r, 100));
  }
  return seen;
}

/** The chat messages the page shows: [{from, text, private, own, markup}]. */
function chatLog(p) {
  return p.evaluate(() =>
    [...document.querySelectorAll('#chat-log .chat-msg')].map((li) => ({
      from: li.querySelector('.chat-from').textContent,
      text: li.querySelector('.chat-text').textContent,
      private: li.classList.contains('chat-private'),
      own: li.classList.contains('chat-own'),
      markup: li.querySelector('.chat-text').children.length,
    })),
  );
}

async function sendChat(p, text, to = '') {
  if ((await p.locator('#ctl-chat').getAttribute('aria-expanded')) !== 'true') await p.click('#ctl-chat');
  await p.locator('#chat-to').selectOption(to ? { label: to } : { value: '' });
  await p.fill('#chat-input', text);
  await p.press('#chat-input', 'Enter');
}

/** Records, in the page, every removal of the tile of participant `id` and every live-region line. */
function watchFor(p, id) {
  return p.evaluate((who) => {
    for (const o of window.__watchers || []) o.disconnect();
    const watch = { removed: 0, live: [] };
    window.__watch = watch;
    window.__watchers = [
      new MutationObserver((records) => {
        for (const r of records) for (const n of r.removedNodes) if (n.dataset && n.dataset.participant === who) watch.removed += 1;
      }),
      new MutationObserver((records) => {
        for (const r of records) for (const n of r.addedNodes) watch.live.push(n.textContent);
      }),
    ];
    window.__watchers[0].observe(document.getElementById('tiles'), { childList: true });
    window.__watchers[1].observe(document.getElementById('live'), { childList: true });
  }, id);
}

before(async () => {
  zaal = await Zaal.start({ hosts: { [HOST_USER]: HOST_PASSWORD } });
  session = await zaal.login(HOST_USER, HOST_PASSWORD);
  await zaal.createRoom(session, ROOM);
  browser = await Browser.launch(zaal.base);
  fs.mkdirSync(SCREENSHOTS, { recursive: true });
}, { timeout: 120000 });

after(async () => {
  if (browser) await browser.close();
  if (zaal) await zaal.stop();
});

test('A: chat to everyone reaches everyone; a private message only its addressee', { timeout: 90000 }, async () => {
  pages.set('Alice', await enter('Alice', { host: true }));
  for (const name of ['Bob', 'Carol']) pages.set(name, await enter(name));
  for (const name of NAMES) await waitForMedia(name, page(name), 2);
  log('Alice, Bob and Carol see and hear each other');

  // Markup in a message must arrive as the characters typed, never as elements.
  const hello = 'Goedemorgen <b>allemaal</b> <img src=x>';
  await sendChat(page('Alice'), hello);
  await everywhere('the message to everyone', ['Bob', 'Carol'], async (p) => (await chatLog(p)).some((m) => m.text === hello), 10000);
  for (const name of ['Bob', 'Carol']) {
    const [msg] = await chatLog(page(name));
    assert.deepEqual(msg, { from: 'Alice', text: hello, private: false, own: false, markup: 0 }, `${name} shows the message as text`);
    assert.equal(await page(name).locator('#ctl-chat-count').textContent(), '1', `${name}'s chat button counts one unread message`);
  }
  log('Alice’s message reached Bob and Carol, as text, with an unread badge');

  const secret = 'Only for Bob';
  await sendChat(page('Alice'), secret, 'Bob');
  // A message to everyone after the private one: Carol has it only once the private one
  // (sent first, over the same connection) would have arrived too.
  const later = 'And this is for everyone again';
  await sendChat(page('Alice'), later);
  await everywhere('the later message', ['Bob', 'Carol'], async (p) => (await chatLog(p)).some((m) => m.text === later), 10000);
  const bob = await chatLog(page('Bob'));
  const privateOne = bob.find((m) => m.text === secret);
  assert.ok(privateOne && privateOne.private, 'Bob shows the private message, marked private');
  assert.equal(privateOne.from, english('chat.privateFrom', { name: 'Alice' }));
  const carol = await chatLog(page('Carol'));
  assert.deepEqual(carol.map((m) => m.text), [hello, later], 'Carol never got the private message');
  const own = await chatLog(page('Alice'));
  assert.deepEqual(own.map((m) => [m.text, m.private, m.own]), [[hello, false, true], [secret, true, true], [later, false, true]]);

  await page('Bob').click('#ctl-chat');
  assert.equal(await page('Bob').locator('#ctl-chat-count').textContent(), '', 'opening the chat clears the unread badge');
  await page('Bob').click('#ctl-chat');
  await page('Alice').click('#ctl-chat');
  log('the private message reached Bob alone; the badge cleared when Bob opened the chat');
});

test('B: a raised hand and a mute on Alice show on Bob and Carol within 1 s', { timeout: 30000 }, async () => {
  const alice = page('Alice');
  await alice.click('#ctl-hand');
  const hand = await everywhere('Alice’s raised hand', ['Bob', 'Carol'], (p) => tileOf(p, 'Alice').locator('.tile-hand').isVisible(), 1000);
  await alice.click('#ctl-mic');
  const mute = await everywhere('Alice’s muted microphone', ['Bob', 'Carol'], (p) => tileOf(p, 'Alice').locator('.tile-mic-off').isVisible(), 1000);
  log(`hand shown after ${JSON.stringify(hand)} ms, mute after ${JSON.stringify(mute)} ms`);
  // Both are said in the live region too, for screen readers.
  const live = await page('Bob').locator('#live').textContent();
  assert.ok(live.includes(english('live.handRaised', { name: 'Alice' })), `Bob's live region: ${live}`);
  assert.ok(live.includes(english('live.micOff', { name: 'Alice' })), `Bob's live region: ${live}`);

  await alice.click('#ctl-hand');
  await alice.click('#ctl-mic');
  await everywhere('Alice’s hand down and microphone on', ['Bob', 'Carol'], async (p) => {
    const tile = tileOf(p, 'Alice');
    return !(await tile.locator('.tile-hand').isVisible()) && !(await tile.locator('.tile-mic-off').isVisible());
  }, 5000);
});

test('C: Alice’s shared screen is decoded by Bob and Carol and shown large', { timeout: 60000 }, async () => {
  const alice = page('Alice');
  const aliceId = await tileOf(page('Bob'), 'Alice').getAttribute('data-participant');
  await alice.click('#ctl-screen');
  await alice.locator('#ctl-screen[aria-pressed="true"]').waitFor(VISIBLE);
  await alice.locator('#stage[data-kind="own-screen"]').waitFor(VISIBLE);

  for (const name of ['Bob', 'Carol']) {
    const p = page(name);
    await p.locator(`#stage[data-kind="screen"][data-participant="${aliceId}"][data-video="on"]`).waitFor(VISIBLE);
    // The screen's own track (stream `<id>~screen`), not the camera, must be decoding, and keep on.
    const screenFrames = () =>
      p.evaluate(async (stream) => {
        const ids = (window.__tracks || []).filter((t) => t.streams.includes(stream)).map((t) => t.track);
        const pc = (window.__pcs || []).filter((c) => c.connectionState !== 'closed').pop();
        let frames = null;
        (await pc.getStats()).forEach((s) => {
          if (s.type === 'inbound-rtp' && ids.includes(s.trackIdentifier)) frames = Math.max(frames ?? 0, s.framesDecoded || 0);
        });
        return frames;
      }, `${aliceId}~screen`);
    const first = await waitUntil(`${name} to decode Alice’s screen`, async () => {
      const n = await screenFrames();
      return { ok: n > 0, state: n };
    }, { timeout: 15000 });
    await waitUntil(`${name} to keep decoding Alice’s screen`, async () => {
      const n = await screenFrames();
      return { ok: n > first, state: { first, now: n } };
    }, { timeout: 5000 });
    const sizes = await p.evaluate(() => {
      const stage = document.getElementById('stage').getBoundingClientRect();
      const video = document.getElementById('stage-video');
      const tiles = [...document.querySelectorAll('#tiles .tile')].map((t) => t.getBoundingClientRect());
      return { stage: stage.width * stage.height, largestTile: Math.max(...tiles.map((t) => t.width * t.height)), videoWidth: video.videoWidth };
    });
    assert.ok(sizes.videoWidth > 0, `${name}'s stage plays the screen`);
    assert.ok(sizes.stage > 2 * sizes.largestTile, `${name} shows the screen larger than any tile: ${JSON.stringify(sizes)}`);
    log(`${name} decodes Alice’s screen (${first}+ frames, ${sizes.videoWidth} px wide) on the stage`);
  }
  await page('Bob').screenshot({ path: path.join(SCREENSHOTS, 'zaal-screen-share-640x480.png') });

  await alice.click('#ctl-screen');
  await everywhere('the stage to go when Alice stops sharing', ['Bob', 'Carol'], (p) => p.locator('#stage').isHidden(), 5000);
  log('Alice stopped sharing: the stage went away for Bob and Carol');
});

/**
 * Breaks Alice's connection with `breakIt` (run in her page), then checks she
 * is back within 10 s, without a reload: a new peer connection that decodes
 * Bob and Carol, and Bob and Carol decoding Alice's new camera track, while
 * neither ever showed her leaving. Resolves to what Alice's page recorded.
 */
async function backWithin10s(what, breakIt) {
  const alice = page('Alice');
  const aliceId = await tileOf(page('Bob'), 'Alice').getAttribute('data-participant');
  const before = {};
  for (const name of ['Bob', 'Carol']) {
    await watchFor(page(name), aliceId);
    before[name] = (await videoFramesFrom(page(name), 'Alice')).track;
  }
  let navigations = 0;
  const onNavigated = (frame) => {
    if (frame === alice.mainFrame()) navigations += 1;
  };
  alice.on('framenavigated', onNavigated);
  await alice.evaluate(() => {
    window.__marker = 'still this page';
    for (const o of window.__watchers || []) o.disconnect();
    const banner = document.getElementById('reconnecting');
    const seen = { banner: [], live: [] };
    window.__seen = seen;
    window.__watchers = [
      new MutationObserver(() => seen.banner.push(banner.hidden ? 'hidden' : 'shown')),
      new MutationObserver((records) => {
        for (const r of records) for (const n of r.addedNodes) seen.live.push(n.textContent);
      }),
    ];
    window.__watchers[0].observe(banner, { attributes: true, attributeFilter: ['hidden'] });
    window.__watchers[1].observe(document.getElementById('live'), { childList: true });
  });
  const pcsBefore = await alice.evaluate(() => window.__pcs.length);

  await alice.evaluate(breakIt);
  const broken = Date.now();
  log(`Alice: ${what}`);
  const left = () => Math.max(0, 10000 - (Date.now() - broken));

  await waitUntil('Alice to build a new peer connection', async () => {
    const n = await alice.evaluate(() => window.__pcs.length);
    return { ok: n > pcsBefore, state: n };
  }, { timeout: left() });
  await waitForMedia('Alice', alice, 2, left());
  for (const name of ['Bob', 'Carol']) {
    // Frames from Alice's new camera track (not the one from before), and more of them.
    const first = await waitUntil(`${name} to decode Alice’s new track`, async () => {
      const v = await videoFramesFrom(page(name), 'Alice');
      return { ok: !!v && v.track !== before[name] && v.framesDecoded > 0, state: v };
    }, { timeout: left() });
    await waitUntil(`${name} to keep decoding Alice`, async () => {
      const v = await videoFramesFrom(page(name), 'Alice');
      return { ok: !!v && v.track === first.track && v.framesDecoded > first.framesDecoded, state: { first, now: v } };
    }, { timeout: left() });
  }
  const took = Date.now() - broken;
  assert.ok(took <= 10000, `media flowed both ways again only after ${took} ms`);
  log(`Alice was back, sending and receiving, ${took} ms later`);

  alice.off('framenavigated', onNavigated);
  assert.equal(navigations, 0, 'Alice’s page navigated');
  assert.equal(await alice.evaluate(() => window.__marker), 'still this page', 'Alice’s page was reloaded');
  await waitUntil('Alice to show Bob and Carol', async () => {
    const names = (await remoteTiles(alice)).map((t) => t.name).sort();
    return { ok: JSON.stringify(names) === JSON.stringify(['Bob', 'Carol']), state: names };
  }, { timeout: 5000 });
  for (const name of ['Bob', 'Carol']) {
    const watch = await page(name).evaluate(() => window.__watch);
    assert.equal(watch.removed, 0, `${name} removed Alice’s tile`);
    assert.deepEqual(watch.live.filter((l) => l.includes('Alice')), [], `${name} announced something about Alice`);
    assert.equal(await tileOf(page(name), 'Alice').getAttribute('data-participant'), aliceId, `${name} shows Alice with the same identity`);
  }
  log('Bob and Carol never saw Alice leave');
  return alice.evaluate(() => window.__seen);
}

test('D: after a dropped WebSocket Alice is back, media flowing both ways, within 10 s and without a reload', { timeout: 60000 }, async () => {
  const seen = await backWithin10s('her WebSocket was closed under her', () => window.__sockets[window.__sockets.length - 1].close());
  assert.deepEqual(seen.banner, ['shown', 'hidden'], 'the "reconnecting" banner came and went');
  assert.ok(seen.live.includes(english('live.reconnecting')) && seen.live.includes(english('live.reconnected')), `Alice's live region: ${seen.live}`);
});

test('E: when Alice’s media connection fails she restarts it, and is back within 10 s', { timeout: 60000 }, async () => {
  // The browser's word that ICE failed, as it would say it: nothing else on this machine can
  // cut one page's UDP alone. The server hears of it only through the page's `restart-media`.
  const seen = await backWithin10s('her media connection reported failure', () => {
    const pc = window.__pcs.filter((c) => c.connectionState !== 'closed').pop();
    Object.defineProperty(pc, 'connectionState', { get: () => 'failed', configurable: true });
    pc.dispatchEvent(new Event('connectionstatechange'));
  });
  assert.deepEqual(seen.banner, [], 'the signalling connection stayed up: no "reconnecting" banner');
  assert.ok(seen.live.includes(english('live.mediaRestart')), `Alice's live region: ${seen.live}`);
});

test('F: keyboard only: join, mute and unmute (M, Tab+Enter), camera (V) and leave', { timeout: 60000 }, async () => {
  const p = await enter('Kim', { hash: 'camera=off&mic=on' });
  const focused = () => p.evaluate(() => document.activeElement && document.activeElement.id);
  /** Tabs (at most 40 times) until the element with `id` has the focus, and checks its focus ring. */
  async function tabTo(id) {
    for (let i = 0; i < 40; i++) {
      if ((await focused()) === id) {
        const ring = await p.evaluate(() => {
          const s = getComputedStyle(document.activeElement);
          return { style: s.outlineStyle, width: parseFloat(s.outlineWidth) };
        });
        assert.ok(ring.style !== 'none' && ring.width >= 2, `#${id} shows no focus ring: ${JSON.stringify(ring)}`);
        return;
      }
      await p.keyboard.press('Tab');
    }
    throw new Error(`Tab never reached #${id} (last: ${await focused()})`);
  }

  await p.locator('#screen-prejoin').waitFor(VISIBLE);
  // The pre-join screen puts the focus in the name field, the one thing to fill in.
  await waitUntil('the name field to have the focus', async () => ({ ok: (await focused()) === 'prejoin-name', state: await focused() }), { timeout: 5000 });
  await p.keyboard.type('Kim');
  await tabTo('prejoin-join');
  await p.keyboard.press('Enter');
  await p.locator('#screen-meeting').waitFor(VISIBLE);
  await p.locator('#ctl-mic[aria-pressed="true"]').waitFor(VISIBLE);
  log('Kim joined with the keyboard alone');

  await p.keyboard.press('m');
  await p.locator('#ctl-mic[aria-pressed="false"]').waitFor(VISIBLE);
  await tileOf(page('Bob'), 'Kim').locator('.tile-mic-off').waitFor(VISIBLE);
  await tabTo('ctl-mic');
  await p.keyboard.press('Enter');
  await p.locator('#ctl-mic[aria-pressed="true"]').waitFor(VISIBLE);
  await tileOf(page('Bob'), 'Kim').locator('.tile-mic-off').waitFor({ state: 'hidden', timeout: 5000 });
  log('M muted Kim, Tab and Enter on the microphone unmuted her; Bob saw both');

  await p.keyboard.press('v');
  await p.locator('#ctl-camera[aria-pressed="true"]').waitFor(VISIBLE);
  await p.keyboard.press('v');
  await p.locator('#ctl-camera[aria-pressed="false"]').waitFor(VISIBLE);

  await tabTo('ctl-leave');
  await p.keyboard.press('Enter');
  await p.locator('#screen-left').waitFor(VISIBLE);
  await tileOf(page('Bob'), 'Kim').waitFor({ state: 'detached', timeout: 10000 });
  log('V switched the camera on and off; Tab and Enter on Leave left the meeting');
});

test('G: on a 390×844 phone the controls are all visible and usable', { timeout: 60000 }, async () => {
  const p = page('Bob');
  await p.setViewportSize({ width: 390, height: 844 });
  const controls = async () =>
    p.evaluate(() =>
      [...document.querySelectorAll('.controls button')]
        .filter((b) => !b.hidden)
        .map((b) => {
          const r = b.getBoundingClientRect();
          const hit = document.elementFromPoint(r.x + r.width / 2, r.y + r.height / 2);
          return {
            id: b.id,
            inside: r.left >= 0 && r.top >= 0 && r.right <= innerWidth && r.bottom <= innerHeight,
            reachable: !!hit && b.contains(hit),
            big: r.width >= 44 && r.height >= 44,
          };
        }),
    );
  const phone = await waitUntil('the controls to fit a phone', async () => {
    const c = await controls();
    return { ok: c.length >= 7 && c.every((b) => b.inside && b.reachable && b.big), state: c };
  }, { timeout: 5000 });
  log(`at 390×844 Bob has ${phone.length} controls, all on screen, reachable and at least 44 px`);
  const header = await p.evaluate(() => {
    const lang = document.getElementById('lang').getBoundingClientRect();
    return { pageWidth: document.documentElement.scrollWidth, langRight: lang.right };
  });
  assert.ok(header.pageWidth <= 390 && header.langRight <= 390, `the page is wider than the phone: ${JSON.stringify(header)}`);
  await p.screenshot({ path: path.join(SCREENSHOTS, 'zaal-meeting-390x844.png') });

  // They work, too: the chat opens over the meeting with its field on screen, and closes.
  await p.click('#ctl-chat');
  const input = await p.locator('#chat-input').boundingBox();
  assert.ok(input && input.y >= 0 && input.y + input.height <= 844 && input.x + input.width <= 390, `chat field off screen: ${JSON.stringify(input)}`);
  await p.screenshot({ path: path.join(SCREENSHOTS, 'zaal-chat-390x844.png') });
  await p.click('#panel-chat [data-close-panel]');
  await p.locator('#panel-chat').waitFor({ state: 'hidden', timeout: 5000 });
  await p.click('#ctl-mic');
  await p.locator('#ctl-mic[aria-pressed="false"]').waitFor(VISIBLE);
  await p.click('#ctl-mic');
  await p.locator('#ctl-mic[aria-pressed="true"]').waitFor(VISIBLE);

  // The grid itself, from 1 to 50 tiles on this screen: never wider than the
  // screen, never smaller than a recognisable face, and scrolled, not cut off,
  // when it is longer than the screen.
  const grid = await p.evaluate(async () => {
    const { TileGrid } = await import('/assets/js/tiles.js');
    const box = document.createElement('div');
    box.className = 'tiles';
    box.style.cssText = 'position:fixed;left:0;top:0;width:390px;height:600px;z-index:100';
    document.body.appendChild(box);
    const g = new TileGrid(box);
    g.addSelf('Me', new MediaStream(), true, true);
    const problems = [];
    for (let n = 2; n <= 50; n++) {
      g.add({ id: `p${n}`, name: `Person ${n}`, audioMuted: true, videoMuted: true, role: 'participant' });
      g.layout();
      const tiles = [...box.children].map((t) => t.getBoundingClientRect());
      const narrowest = Math.min(...tiles.map((t) => t.width));
      if (box.scrollWidth > box.clientWidth) problems.push(`${n}: wider than the screen`);
      if (narrowest < 150) problems.push(`${n}: tiles ${narrowest} px wide`);
      box.scrollTop = 0;
      const first = box.children[0].getBoundingClientRect();
      if (first.top < 0) problems.push(`${n}: the first tile is cut off at the top`);
      box.scrollTop = box.scrollHeight;
      const last = box.children[box.children.length - 1].getBoundingClientRect();
      if (last.bottom > 600.5) problems.push(`${n}: the last tile cannot be scrolled to`);
    }
    g.clear();
    box.remove();
    return problems;
  });
  assert.deepEqual(grid, [], 'the tile grid fits 1–50 tiles on a phone');
  await p.setViewportSize({ width: 640, height: 480 });
});

test('H: the language switch renders the whole meeting in Dutch', { timeout: 60000 }, async () => {
  const p = page('Carol');
  await p.locator('#lang').selectOption('nl');
  await p.waitForFunction(() => document.documentElement.lang === 'nl', null, { timeout: 5000 });
  const label = (id) => p.locator(`#${id} .ctl-label`).textContent();
  assert.equal(await label('ctl-mic'), nl['control.mic']);
  assert.equal(await label('ctl-screen'), nl['control.screen']);
  assert.equal(await label('ctl-hand'), nl['control.hand']);
  assert.equal(await label('ctl-participants'), nl['control.participants']);
  assert.equal(await label('ctl-layout'), nl['control.layout']);
  assert.equal(await label('ctl-leave'), nl['control.leave']);
  assert.equal(await tileOf(p, 'Alice').locator('.tile-menu-btn').getAttribute('aria-label'), nl['menu.for'].replace('{name}', 'Alice'));

  // Everything a person can see or hear read out, against every English string that is not also Dutch.
  const fill = (s) => new RegExp(`^${s.replace(/[.*+?^$()|[\]\\]/g, '\\$&').replace(/\{\w+\}/g, '.+')}$`, 's');
  const onlyEnglish = Object.keys(en).filter((k) => en[k] !== nl[k]).map((k) => ({ key: k, re: fill(en[k]) }));
  async function englishShown(where) {
    const shown = await p.evaluate(() => {
      const out = [];
      for (const el of document.querySelectorAll('body *')) {
        if (!el.checkVisibility({ visibilityProperty: true }) && !el.closest('.visually-hidden, #live')) continue;
        if (el.closest('[hidden]')) continue;
        const own = [...el.childNodes].filter((n) => n.nodeType === 3).map((n) => n.textContent).join('').trim();
        if (own) out.push(own);
        for (const a of ['aria-label', 'title', 'placeholder']) if (el.getAttribute(a)) out.push(el.getAttribute(a));
      }
      out.push(document.title);
      return out;
    });
    const found = shown.flatMap((text) => onlyEnglish.filter((e) => e.re.test(text)).map((e) => `${e.key}: "${text}"`));
    assert.deepEqual(found, [], `English text in the Dutch ${where}`);
    return shown.length;
  }
  let n = await englishShown('meeting');
  // What happens from now on is said in Dutch too.
  await page('Alice').click('#ctl-hand');
  await waitUntil('Carol to announce Alice’s hand in Dutch', async () => {
    const live = await p.locator('#live').textContent();
    return { ok: live.includes(nl['live.handRaised'].replace('{name}', 'Alice')), state: live };
  }, { timeout: 5000 });
  await page('Alice').click('#ctl-hand');
  await tileOf(p, 'Alice').locator('.tile-hand').waitFor({ state: 'hidden', timeout: 5000 });
  n += await englishShown('announcements');

  await p.click('#ctl-chat');
  assert.equal(await p.locator('#chat-input').getAttribute('placeholder'), nl['chat.placeholder']);
  assert.equal(await p.locator('#chat-to option[value=""]').textContent(), nl['chat.everyone']);
  assert.equal(await p.locator('label[for="chat-to"]').textContent(), nl['chat.to']);
  const times = await p.locator('#chat-log time').allTextContents();
  assert.ok(times.length && times.every((t) => /^\d\d:\d\d$/.test(t)), `chat times written the Dutch way: ${times}`);
  n += await englishShown('chat');
  await p.click('#ctl-participants');
  assert.equal(await p.locator('#panel-participants-title [data-i18n]').textContent(), nl['panel.participants']);
  n += await englishShown('participant list');
  await p.click('#ctl-participants');
  await p.click('#ctl-layout');
  await p.locator('#stage').waitFor(VISIBLE);
  n += await englishShown('stage view');
  await p.screenshot({ path: path.join(SCREENSHOTS, 'zaal-meeting-nl-640x480.png') });
  await p.click('#ctl-layout');
  log(`Carol’s meeting is Dutch: ${n} visible or spoken strings checked, none English`);
});

test('no uncaught script errors, no Content-Security-Policy violations, no request elsewhere', () => {
  assert.deepEqual(browser.scriptProblems, []);
  assert.deepEqual(browser.foreignRequests, []);
});

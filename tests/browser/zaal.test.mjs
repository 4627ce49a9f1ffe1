// Browser test: the real `zaal` server and the real web client in headless
// Chromium (fake camera and microphone), driven by playwright-core.
//
//   node --test tests/browser/zaal.test.mjs      (or: node tests/browser/zaal.test.mjs)
//
// Environment: see harness.mjs (ZAAL_BIN, CHROMIUM, ZAAL_KEEP_TMP). Meant to
// run in a network namespace that has only `lo` up, so every packet stays on
// loopback:
//
//   unshare --net sh -c 'ip link set lo up; node --test tests/browser/zaal.test.mjs'
//
// Needs `npm ci` in tests/browser first (playwright-core; never `npx playwright install`).

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import en from '../../static/assets/i18n/en.js';
import nl from '../../static/assets/i18n/nl.js';
import { Browser, Zaal, assertOnePort, log, remoteTiles, waitForMedia, waitUntil } from './harness.mjs';

const ROOM = 'browser-test';
const HOST_USER = 'teacher';
const HOST_PASSWORD = 'correct horse battery';

let zaal = null;
let browser = null;
let session = null; // the host's session cookie: Alice is the host, so nobody waits for one
const participants = new Map(); // name → {context, page}

async function join(name, { camera = 'on', mic = 'on', host = false } = {}) {
  const { context, page } = await browser.open(name, { session: host ? session : null });
  participants.set(name, { context, page });
  await page.goto(`${zaal.base}/${ROOM}#name=${encodeURIComponent(name)}&autojoin=1&camera=${camera}&mic=${mic}`);
  log(`${name} opened the room (camera ${camera}, microphone ${mic}${host ? ', as the host' : ''})`);
  return page;
}

const mediaOf = (name, n) => waitForMedia(name, participants.get(name).page, n);
const assertPort = (name, state) => assertOnePort(name, state, zaal.mediaPort);

/** Waits until `name`'s page shows exactly the tiles `expected` (names), each matching `check`. */
async function waitForTiles(name, expected, check = () => true, what = 'tiles') {
  const page = participants.get(name).page;
  await waitUntil(`${name} to show ${what} of ${expected.join(', ') || 'nobody'}`, async () => {
    const tiles = await remoteTiles(page);
    const names = tiles.map((t) => t.name).sort();
    const ok = JSON.stringify(names) === JSON.stringify([...expected].sort()) && tiles.every(check);
    return { ok, state: tiles };
  }, { timeout: 15000 });
}

// ---------------------------------------------------------------- set-up and tear-down

before(async () => {
  zaal = await Zaal.start({ hosts: { [HOST_USER]: HOST_PASSWORD } });
  session = await zaal.login(HOST_USER, HOST_PASSWORD);
  await zaal.createRoom(session, ROOM);
  browser = await Browser.launch(zaal.base);
}, { timeout: 120000 });

after(async () => {
  if (browser) await browser.close();
  if (zaal) await zaal.stop();
});

// ---------------------------------------------------------------- scenarios

test('A: three participants receive each other’s audio and video through the one media port', { timeout: 90000 }, async () => {
  await join('Alice', { host: true });
  for (const name of ['Bob', 'Carol']) await join(name);
  for (const name of ['Alice', 'Bob', 'Carol']) assertPort(name, await mediaOf(name, 2));
  for (const [name, others] of [['Alice', ['Bob', 'Carol']], ['Bob', ['Alice', 'Carol']], ['Carol', ['Alice', 'Bob']]]) {
    await waitForTiles(name, others, (t) => t.video === 'on' && t.videoWidth > 0 && t.audioTracks > 0 && t.audioPlaying, 'playing video and audio tiles');
    log(`${name} shows tiles of ${others.join(' and ')} with video and sound`);
  }
});

test('B: a participant without camera and microphone still receives everyone', { timeout: 60000 }, async () => {
  await join('Dave', { camera: 'off', mic: 'off' });
  assertPort('Dave', await mediaOf('Dave', 3));
  await waitForTiles('Dave', ['Alice', 'Bob', 'Carol'], (t) => t.video === 'on' && t.videoWidth > 0 && t.audioPlaying, 'playing tiles');
  log('Dave shows Alice, Bob and Carol with video and sound');
  for (const [name, others] of [['Alice', ['Bob', 'Carol', 'Dave']], ['Bob', ['Alice', 'Carol', 'Dave']], ['Carol', ['Alice', 'Bob', 'Dave']]]) {
    await waitForTiles(name, others, (t) => t.name !== 'Dave' || t.video === 'off', 'tiles (Dave as a placeholder)');
  }
  log('Alice, Bob and Carol show Dave’s placeholder tile');
});

test('C: a room that does not exist shows its screen, opens no socket and is not created', { timeout: 30000 }, async () => {
  const { context, page } = await browser.open('X');
  try {
    const sockets = [];
    page.on('websocket', (ws) => sockets.push(ws.url()));
    await page.goto(`${zaal.base}/no-such-room#name=X&autojoin=1`);
    await page.locator('#screen-not-found').waitFor({ state: 'visible', timeout: 10000 });
    const heading = await page.locator('#screen-not-found h1').textContent();
    assert.match(heading, /does not exist/i);
    assert.deepEqual(sockets, [], 'the page opened a WebSocket for a room that does not exist');
    const res = await fetch(`${zaal.base}/api/rooms/no-such-room`);
    assert.equal(res.status, 404, 'GET /api/rooms/no-such-room is no longer 404');
    log('no-such-room shows "does not exist", opened no WebSocket, and is still 404');
  } finally {
    await context.close();
  }
});

test('D: when a participant leaves, the others drop their tile within 10 s', { timeout: 30000 }, async () => {
  const carol = participants.get('Carol');
  participants.delete('Carol');
  await carol.context.close();
  log('Carol closed her page');
  const started = Date.now();
  for (const [name, others] of [['Alice', ['Bob', 'Dave']], ['Bob', ['Alice', 'Dave']], ['Dave', ['Alice', 'Bob']]]) {
    const page = participants.get(name).page;
    await waitUntil(`${name} to drop Carol's tile`, async () => {
      const tiles = await remoteTiles(page);
      const names = tiles.map((t) => t.name).sort();
      return { ok: JSON.stringify(names) === JSON.stringify(others), state: names };
    }, { timeout: Math.max(0, 10000 - (Date.now() - started)) });
  }
  log(`Carol's tile was gone everywhere after ${Date.now() - started} ms`);
});

test('E: every page loads everything from its own origin', { timeout: 30000 }, async () => {
  const { context, page } = await browser.open('Visitor');
  try {
    let requests = 0;
    page.on('request', () => (requests += 1));
    for (const path of ['/', '/setup', '/privacy', '/privacy?lang=nl', `/${ROOM}`]) {
      await page.goto(`${zaal.base}${path}`, { waitUntil: 'networkidle' });
    }
    assert.ok(requests >= 10, `the pages made their requests (${requests})`);
    assert.deepEqual(browser.foreignRequests, []);
    log(`${requests} requests from five pages, all to ${zaal.base}`);
  } finally {
    await context.close();
  }
});

test('F: the connection indicator names the path the media take', { timeout: 30000 }, async () => {
  const p = participants.get('Alice').page;
  // The pure function, from the local candidate's statistics to a path name.
  const cases = [
    [{ protocol: 'udp', candidateType: 'host' }, 'udp'],
    [{ protocol: 'udp', candidateType: 'srflx' }, 'udp'],
    [{ protocol: 'udp', candidateType: 'prflx' }, 'udp'],
    [{ protocol: 'tcp', candidateType: 'host' }, 'tcp'],
    [{ protocol: 'udp', candidateType: 'relay', relayProtocol: 'udp' }, 'relay-udp'],
    [{ protocol: 'udp', candidateType: 'relay', relayProtocol: 'tcp' }, 'relay-tcp'],
    [{ protocol: 'udp', candidateType: 'relay', relayProtocol: 'tls' }, 'relay-tls'],
    [{ protocol: 'udp', candidateType: 'relay' }, 'relay'],
    [{}, null],
  ];
  const got = await p.evaluate(async (inputs) => {
    const { mediaPath } = await import('/assets/js/quality.js');
    return inputs.map((stats) => mediaPath(stats));
  }, cases.map(([stats]) => stats));
  assert.deepEqual(got, cases.map(([, path]) => path));
  for (const path of got.filter(Boolean)) {
    assert.ok(en[`quality.path.${path}`] && nl[`quality.path.${path}`], `path ${path} has words in English and Dutch`);
  }

  // And on the page: Alice's media go straight over UDP, said in the details and the tooltip.
  const said = en['quality.path'].replace('{path}', en['quality.path.udp']);
  const state = await waitUntil('Alice’s indicator to name her media path', async () => {
    const s = await p.evaluate(() => ({
      details: document.querySelector('#quality .quality-details').textContent,
      title: document.getElementById('quality').title,
    }));
    return { ok: s.details.includes(said) && s.title.endsWith(` · ${en['quality.path.udp']}`), state: s };
  }, { timeout: 10000 });
  log(`Alice’s indicator: "${state.details.trim()}" (title "${state.title}")`);

  // A language switch translates the path at once, in the tooltip too, not at the next sample.
  await p.locator('#lang').selectOption('nl');
  const dutch = await p.evaluate(() => ({
    details: document.querySelector('#quality .quality-details').textContent,
    title: document.getElementById('quality').title,
  }));
  assert.ok(dutch.details.includes(nl['quality.path'].replace('{path}', nl['quality.path.udp'])), `Dutch details: ${dutch.details}`);
  assert.ok(dutch.title.endsWith(` · ${nl['quality.path.udp']}`), `Dutch title: ${dutch.title}`);
  await p.locator('#lang').selectOption('en');
});

test('G: a browser without WebRTC is told so, and opens no socket', { timeout: 30000 }, async () => {
  const { context, page } = await browser.open('NoWebRTC', { webrtc: false });
  try {
    const sockets = [];
    page.on('websocket', (ws) => sockets.push(ws.url()));
    await page.goto(`${zaal.base}/${ROOM}#name=X&autojoin=1`);
    const screen = page.locator('#screen-no-webrtc');
    await screen.waitFor({ state: 'visible', timeout: 10000 });
    assert.equal(await page.evaluate(() => typeof window.RTCPeerConnection), 'undefined', 'the page had RTCPeerConnection after all');
    assert.equal(await screen.locator('h1').textContent(), en['room.noWebRtc.heading']);
    assert.equal(await screen.locator('p').textContent(), en['room.noWebRtc.text']);
    assert.match(en['room.noWebRtc.text'], /Firefox, Chrome, Edge or Safari/);
    await page.locator('#lang').selectOption('nl');
    assert.equal(await screen.locator('h1').textContent(), nl['room.noWebRtc.heading']);
    assert.equal(await screen.locator('p').textContent(), nl['room.noWebRtc.text']);
    // Still nothing after a moment in which a join would have opened its socket.
    await page.waitForTimeout(1000);
    assert.deepEqual(sockets, [], 'the page opened a WebSocket without WebRTC');
    assert.equal(await page.evaluate(() => window.__sockets.length), 0, 'the page made a WebSocket without WebRTC');
    assert.ok(await page.locator('#screen-meeting').isHidden(), 'the meeting screen is shown');
    log('a page without RTCPeerConnection shows why it cannot join, in English and Dutch, and opened no WebSocket');
  } finally {
    await context.close();
  }
});

test('no uncaught script errors, no Content-Security-Policy violations, no request elsewhere', () => {
  assert.deepEqual(browser.scriptProblems, []);
  assert.deepEqual(browser.foreignRequests, []);
});

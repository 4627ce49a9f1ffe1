// Browser test: the real `zaal` server and the real web client in headless
// Chromium (fake camera and microphone), driven by playwright-core.
//
//   node --test tests/browser/zaal.test.mjs      (or: node tests/browser/zaal.test.mjs)
//
// Environment: ZAAL_BIN (default target/release/zaal, relative to the repo
// root), CHROMIUM (default /usr/bin/chromium), ZAAL_KEEP_TMP=1 keeps the temp
// dir (data and logs) for a look afterwards. Meant to run in a network
// namespace that has only `lo` up, so every packet stays on loopback:
//
//   unshare --net sh -c 'ip link set lo up; node --test tests/browser/zaal.test.mjs'
//
// Needs `npm ci` in tests/browser first (playwright-core; never `npx playwright install`).

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { chromium } from 'playwright-core';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const ZAAL_BIN = path.resolve(REPO, process.env.ZAAL_BIN || 'target/release/zaal');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const ROOM = 'browser-test';
const HOST_USER = 'teacher';
const HOST_PASSWORD = 'correct horse battery';
const LISTENING = /listening on (http:\/\/\S+) .*media on udp (\S+):(\d+)/i;

const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--use-fake-device-for-media-stream',
  '--use-fake-ui-for-media-stream',
  '--disable-background-timer-throttling',
  '--disable-renderer-backgrounding',
  '--disable-backgrounding-occluded-windows',
  '--autoplay-policy=no-user-gesture-required',
  '--allow-loopback-in-peer-connection',
  '--disable-features=WebRtcHideLocalIpsWithMdns',
];

// Runs in every page before its own scripts: remembers each RTCPeerConnection
// so the test can read getStats() (the product code has no test hooks).
const RECORD_PEER_CONNECTIONS = () => {
  const Original = window.RTCPeerConnection;
  window.__pcs = [];
  window.RTCPeerConnection = class extends Original {
    constructor(...args) {
      super(...args);
      window.__pcs.push(this);
    }
  };
};

const log = (...args) => console.log('[browser]', ...args);

let tmp = null;
let server = null;
let serverOutput = '';
let base = null; // e.g. http://127.0.0.1:39123
let mediaPort = null;
let browser = null;
const participants = new Map(); // name → {context, page}
const scriptProblems = []; // uncaught page errors and CSP violations, asserted at the end
const foreignRequests = []; // requests to any origin but the server's own, asserted at the end (P9)

// ---------------------------------------------------------------- helpers

function dataEnv() {
  return {
    ...process.env,
    ZAAL__DATA__DIR: path.join(tmp, 'data'),
    ZAAL__LOGS__DIR: path.join(tmp, 'logs'),
  };
}

/** Runs a command to completion (bounded), feeding `input` on stdin. */
function run(cmd, args, { env, input, timeoutMs }) {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { env, stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (out += d));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${path.basename(cmd)} ${args.join(' ')} did not finish in ${timeoutMs} ms:\n${out}`));
    }, timeoutMs);
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.on('exit', (code) => {
      clearTimeout(timer);
      if (code === 0) resolve(out);
      else reject(new Error(`${path.basename(cmd)} ${args.join(' ')} exited with ${code}:\n${out}`));
    });
    child.stdin.end(input ?? '');
  });
}

/** Starts `zaal serve` on ephemeral ports and waits for its "listening" line. */
function startServer(timeoutMs) {
  return new Promise((resolve, reject) => {
    server = spawn(ZAAL_BIN, ['serve'], {
      env: {
        ...dataEnv(),
        ZAAL__HTTP__LISTEN: '127.0.0.1:0',
        ZAAL__MEDIA__UDP_PORT: '0',
        ZAAL__MEDIA__ADVERTISE_IPS: '127.0.0.1',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let pending = '';
    let done = false;
    const timer = setTimeout(() => {
      if (done) return;
      done = true;
      reject(new Error(`server printed no "listening on" line within ${timeoutMs} ms:\n${serverOutput}`));
    }, timeoutMs);
    const onData = (d) => {
      const text = d.toString();
      serverOutput += text;
      if (done) return;
      pending += text;
      const lines = pending.split('\n');
      pending = lines.pop();
      for (const line of lines) {
        const m = LISTENING.exec(line);
        if (m) {
          done = true;
          clearTimeout(timer);
          resolve({ base: m[1].replace(/\/+$/, ''), mediaPort: Number(m[3]) });
          return;
        }
      }
    };
    server.stdout.on('data', onData);
    server.stderr.on('data', onData);
    server.on('error', (err) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      reject(err);
    });
    server.on('exit', (code, signal) => {
      server.exited = true;
      if (done) return;
      done = true;
      clearTimeout(timer);
      reject(new Error(`server exited (${code ?? signal}) before listening:\n${serverOutput}`));
    });
  });
}

async function stopServer() {
  if (!server || server.exited) return;
  const exited = new Promise((resolve) => server.once('exit', resolve));
  server.kill('SIGTERM');
  const stopped = await Promise.race([exited.then(() => true), sleep(5000).then(() => false)]);
  if (!stopped) {
    log('server did not stop within 5 s of SIGTERM; killing it');
    server.kill('SIGKILL');
    await exited;
  }
}

/** Polls `probe` (→ {ok, state}) every `interval` ms until ok, or fails after `timeout` ms with the last state. */
async function waitUntil(what, probe, { timeout = 30000, interval = 100 } = {}) {
  const deadline = Date.now() + timeout;
  let last;
  for (;;) {
    last = await probe();
    if (last.ok) return last.state;
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeout} ms waiting for ${what}; last state: ${JSON.stringify(last.state)}`);
    }
    await sleep(interval);
  }
}

async function openPage(label) {
  const context = await browser.newContext({ viewport: { width: 640, height: 480 }, locale: 'en-US' });
  await context.addInitScript(RECORD_PEER_CONNECTIONS);
  context.on('request', (request) => {
    const url = request.url();
    const own = url.startsWith(`${base}/`) || url.startsWith(base.replace(/^http/, 'ws') + '/');
    if (!own && !url.startsWith('data:') && !url.startsWith('blob:')) foreignRequests.push(`${label}: ${url}`);
  });
  const page = await context.newPage();
  page.on('pageerror', (err) => {
    scriptProblems.push(`${label}: uncaught ${err.message}`);
    log(`${label}: page error: ${err.message}`);
  });
  page.on('console', (msg) => {
    if (msg.type() !== 'error' && msg.type() !== 'warning') return;
    const text = msg.text();
    if (/Content Security Policy/i.test(text)) scriptProblems.push(`${label}: ${text}`);
    log(`${label}: console ${msg.type()}: ${text}`);
  });
  return { context, page };
}

async function join(name, { camera = 'on', mic = 'on' } = {}) {
  const { context, page } = await openPage(name);
  participants.set(name, { context, page });
  await page.goto(`${base}/${ROOM}#name=${encodeURIComponent(name)}&autojoin=1&camera=${camera}&mic=${mic}`);
  log(`${name} opened the room (camera ${camera}, microphone ${mic})`);
  return page;
}

/** Media as the page's (latest, open) peer connection sees it. */
function mediaStats(page) {
  return page.evaluate(async () => {
    const pcs = (window.__pcs || []).filter((pc) => pc.connectionState !== 'closed');
    const pc = pcs[pcs.length - 1];
    if (!pc) return { peerConnections: 0 };
    const report = await pc.getStats();
    const out = { connectionState: pc.connectionState, video: [], audio: [], pair: null };
    let transport = null;
    report.forEach((s) => {
      if (s.type === 'inbound-rtp') {
        const entry = { framesDecoded: s.framesDecoded || 0, packetsReceived: s.packetsReceived || 0 };
        (s.kind === 'video' ? out.video : out.audio).push(entry);
      }
      if (s.type === 'transport' && s.selectedCandidatePairId) transport = s;
    });
    let pair = transport ? report.get(transport.selectedCandidatePairId) : null;
    if (!pair) {
      report.forEach((s) => {
        if (s.type === 'candidate-pair' && s.nominated && s.state === 'succeeded') pair = s;
      });
    }
    if (pair) {
      const remote = report.get(pair.remoteCandidateId) || {};
      const local = report.get(pair.localCandidateId) || {};
      out.pair = {
        state: pair.state,
        local: `${local.address ?? local.ip}:${local.port}`,
        remoteAddress: remote.address ?? remote.ip,
        remotePort: remote.port,
      };
    }
    return out;
  });
}

/** The remote tiles the page shows, by participant name. */
function remoteTiles(page) {
  return page.evaluate(() =>
    [...document.querySelectorAll('#tiles .tile:not(.tile-self)')].map((tile) => {
      const video = tile.querySelector('video');
      const audio = tile.querySelector('audio');
      const audioStream = audio && audio.srcObject;
      return {
        name: (tile.querySelector('.tile-name') || {}).textContent,
        video: tile.dataset.video,
        videoWidth: video ? video.videoWidth : 0,
        audioTracks: audioStream ? audioStream.getAudioTracks().length : 0,
        audioPlaying: !!audio && !audio.paused,
      };
    }),
  );
}

/** Waits until `page` decodes ≥ n video streams and receives ≥ n audio streams. */
async function waitForMedia(name, n) {
  const page = participants.get(name).page;
  const state = await waitUntil(`${name} to decode ${n} video and receive ${n} audio streams`, async () => {
    const s = await mediaStats(page);
    const video = (s.video || []).filter((v) => v.framesDecoded > 0).length;
    const audio = (s.audio || []).filter((a) => a.packetsReceived > 0).length;
    return { ok: video >= n && audio >= n, state: { ...s, decodingVideo: video, receivingAudio: audio } };
  });
  log(`${name}: ${state.decodingVideo} video streams decoding, ${state.receivingAudio} audio streams arriving, via ${state.pair && state.pair.local} → ${state.pair && `${state.pair.remoteAddress}:${state.pair.remotePort}`}`);
  return state;
}

function assertOnePort(name, state) {
  assert.ok(state.pair, `${name}: no selected candidate pair`);
  assert.equal(state.pair.state, 'succeeded', `${name}: candidate pair not succeeded`);
  assert.equal(state.pair.remotePort, mediaPort, `${name}: media goes to port ${state.pair.remotePort}, not the server's media port ${mediaPort}`);
}

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
  if (!fs.existsSync(ZAAL_BIN)) throw new Error(`no server binary at ${ZAAL_BIN} (build it, or set ZAAL_BIN)`);
  if (!fs.existsSync(CHROMIUM)) throw new Error(`no Chromium at ${CHROMIUM} (apt-get install chromium, or set CHROMIUM)`);
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'zaal-browser-'));
  log(`temp dir ${tmp}`);

  await run(ZAAL_BIN, ['user', 'add', HOST_USER], { env: dataEnv(), input: `${HOST_PASSWORD}\n`, timeoutMs: 60000 });
  log(`host "${HOST_USER}" added`);

  ({ base, mediaPort } = await startServer(20000));
  log(`server at ${base}, media on udp port ${mediaPort}`);

  const login = await fetch(`${base}/api/login`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', Origin: base },
    body: JSON.stringify({ username: HOST_USER, password: HOST_PASSWORD }),
  });
  assert.equal(login.status, 200, `login failed: ${login.status} ${await login.text()}`);
  const cookie = login.headers.getSetCookie().map((c) => c.split(';')[0]).join('; ');
  assert.ok(cookie, 'login set no session cookie');
  const created = await fetch(`${base}/api/rooms`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', Origin: base, Cookie: cookie },
    body: JSON.stringify({ name: ROOM }),
  });
  assert.ok([200, 201].includes(created.status), `creating the room failed: ${created.status} ${await created.text()}`);
  log(`room "${ROOM}" created`);

  browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS });
  log(`Chromium ${browser.version()} started`);
}, { timeout: 120000 });

after(async () => {
  for (const { context } of participants.values()) await context.close().catch(() => {});
  if (browser) await browser.close().catch(() => {});
  await stopServer();
  if (tmp && !process.env.ZAAL_KEEP_TMP) fs.rmSync(tmp, { recursive: true, force: true });
  else if (tmp) log(`kept ${tmp}`);
});

// The server must not outlive the test, whatever happens.
process.on('exit', () => {
  if (server && !server.exited) server.kill('SIGKILL');
});
for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => {
    if (server && !server.exited) server.kill('SIGKILL');
    process.exit(130);
  });
}

// ---------------------------------------------------------------- scenarios

test('A: three participants receive each other’s audio and video through the one media port', { timeout: 90000 }, async () => {
  for (const name of ['Alice', 'Bob', 'Carol']) await join(name);
  for (const name of ['Alice', 'Bob', 'Carol']) assertOnePort(name, await waitForMedia(name, 2));
  for (const [name, others] of [['Alice', ['Bob', 'Carol']], ['Bob', ['Alice', 'Carol']], ['Carol', ['Alice', 'Bob']]]) {
    await waitForTiles(name, others, (t) => t.video === 'on' && t.videoWidth > 0 && t.audioTracks > 0 && t.audioPlaying, 'playing video and audio tiles');
    log(`${name} shows tiles of ${others.join(' and ')} with video and sound`);
  }
});

test('B: a participant without camera and microphone still receives everyone', { timeout: 60000 }, async () => {
  await join('Dave', { camera: 'off', mic: 'off' });
  assertOnePort('Dave', await waitForMedia('Dave', 3));
  await waitForTiles('Dave', ['Alice', 'Bob', 'Carol'], (t) => t.video === 'on' && t.videoWidth > 0 && t.audioPlaying, 'playing tiles');
  log('Dave shows Alice, Bob and Carol with video and sound');
  for (const [name, others] of [['Alice', ['Bob', 'Carol', 'Dave']], ['Bob', ['Alice', 'Carol', 'Dave']], ['Carol', ['Alice', 'Bob', 'Dave']]]) {
    await waitForTiles(name, others, (t) => t.name !== 'Dave' || t.video === 'off', 'tiles (Dave as a placeholder)');
  }
  log('Alice, Bob and Carol show Dave’s placeholder tile');
});

test('C: a room that does not exist shows its screen, opens no socket and is not created', { timeout: 30000 }, async () => {
  const { context, page } = await openPage('X');
  try {
    const sockets = [];
    page.on('websocket', (ws) => sockets.push(ws.url()));
    await page.goto(`${base}/no-such-room#name=X&autojoin=1`);
    await page.locator('#screen-not-found').waitFor({ state: 'visible', timeout: 10000 });
    const heading = await page.locator('#screen-not-found h1').textContent();
    assert.match(heading, /does not exist/i);
    assert.deepEqual(sockets, [], 'the page opened a WebSocket for a room that does not exist');
    const res = await fetch(`${base}/api/rooms/no-such-room`);
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
  const { context, page } = await openPage('Visitor');
  try {
    let requests = 0;
    page.on('request', () => (requests += 1));
    for (const path of ['/', '/setup', '/privacy', '/privacy?lang=nl', `/${ROOM}`]) {
      await page.goto(`${base}${path}`, { waitUntil: 'networkidle' });
    }
    assert.ok(requests >= 10, `the pages made their requests (${requests})`);
    assert.deepEqual(foreignRequests, []);
    log(`${requests} requests from five pages, all to ${base}`);
  } finally {
    await context.close();
  }
});

test('no uncaught script errors, no Content-Security-Policy violations, no request elsewhere', () => {
  assert.deepEqual(scriptProblems, []);
  assert.deepEqual(foreignRequests, []);
});
